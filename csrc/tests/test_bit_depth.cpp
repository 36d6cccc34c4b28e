#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "bit_depth.h"

using namespace pyguard;

namespace {

std::vector<Isa> simd_isas() {
    std::vector<Isa> out;
    for (Isa isa : supported_isas())
        if (isa != Isa::serial) out.push_back(isa);
    return out;
}

bool same_float(float a, float b) {
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
    uint32_t ua, ub;
    std::memcpy(&ua, &a, 4);
    std::memcpy(&ub, &b, 4);
    return ua == ub;
}

float from_bits(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

std::vector<float> special_values() {
    const float inf = std::numeric_limits<float>::infinity();
    return {0.0f, -0.0f, 1.0f, -1.0f, 0.5f, 1.0f / 62, 1.0f / 30, -1e-9f, 1e-9f, inf, -inf,
            std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::denorm_min(),
            -std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::min(),
            std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(), 3e38f, 1e30f, 255.0f, 256.0f};
}

std::vector<float> test_inputs(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> unit(-0.25f, 1.25f);
    std::vector<float> x(n);
    const std::vector<float> specials = special_values();
    for (size_t i = 0; i < n; ++i) {
        switch (rng() % 8) {
        case 0: x[i] = specials[rng() % specials.size()]; break;
        case 1: x[i] = from_bits(static_cast<uint32_t>(rng())); break;
        case 2: x[i] = static_cast<float>(rng() % 256) / 255.0f; break;
        default: x[i] = unit(rng);
        }
    }
    return x;
}

void check_f32_matches_serial(const std::vector<float> &x, int bits, double lo, double hi) {
    const size_t n = x.size();
    std::vector<float> ref(n), got(n);
    bit_depth_f32(x.data(), ref.data(), n, bits, lo, hi, Isa::serial);
    for (Isa isa : simd_isas()) {
        std::fill(got.begin(), got.end(), 7.0f);
        bit_depth_f32(x.data(), got.data(), n, bits, lo, hi, isa);
        size_t bad = 0;
        for (size_t i = 0; i < n; ++i) bad += !same_float(ref[i], got[i]);
        INFO("isa=" << isa_name(isa) << " bits=" << bits << " lo=" << lo << " hi=" << hi << " n=" << n);
        CHECK(bad == 0);
    }
}

const double kRanges[][2] = {{0.0, 1.0}, {-1.0, 1.0}, {0.1, 0.9}, {-0.0, 1.0}, {0.0, 255.0}, {-3.5, 1e6}};

} // namespace

TEST_CASE("bit_depth serial matches the formula on known values") {
    const float x[] = {0.0f, 0.5f, 1.0f, 0.49f, 0.51f, -0.0f};
    float y[6];
    bit_depth_f32(x, y, 6, 1, 0.0, 1.0, Isa::serial);
    CHECK(y[0] == 0.0f);
    CHECK(y[1] == 0.0f); // rint(0.5) = 0: half to even
    CHECK(y[2] == 1.0f);
    CHECK(y[3] == 0.0f);
    CHECK(y[4] == 1.0f);
    CHECK(!std::signbit(y[5])); // -0 - 0 ... + 0 = +0, as NumPy
    const float x3[] = {0.5f / 7.0f * 3.0f};
    bit_depth_f32(x3, y, 1, 3, 0.0, 1.0, Isa::serial);
    CHECK(y[0] == std::nearbyint(x3[0] * 7.0f) / 7.0f);
}

TEST_CASE("bit_depth float variants match serial on random data, odd sizes and special values") {
    for (int bits = 1; bits <= 8; ++bits)
        for (const auto &r : kRanges)
            for (size_t n : {size_t(0), size_t(1), size_t(3), size_t(7), size_t(15), size_t(16), size_t(17),
                             size_t(31), size_t(33), size_t(63), size_t(1000)})
                check_f32_matches_serial(test_inputs(n, static_cast<uint32_t>(n * 31 + bits)), bits, r[0], r[1]);
}

TEST_CASE("bit_depth float variants hit every rounded level, including -0, exactly") {
    for (int bits = 1; bits <= 8; ++bits) {
        const int m = (1 << bits) - 1;
        std::vector<float> x;
        for (int k = 0; k <= m; ++k) {
            float base = static_cast<float>(k) / static_cast<float>(m);
            for (float d : {0.0f, 1e-7f, -1e-7f, 0.5f / m, -0.5f / m, 0.49f / m}) x.push_back(base + d);
        }
        x.push_back(-0.0f);
        x.push_back(-1e-9f);
        for (const auto &r : kRanges) check_f32_matches_serial(x, bits, r[0], r[1]);
    }
}

TEST_CASE("bit_depth float variants match serial on a sweep of all float32 bit patterns") {
    std::vector<float> x;
    for (uint64_t u = 0; u <= 0xFFFFFFFFull; u += 65521) x.push_back(from_bits(static_cast<uint32_t>(u)));
    for (int bits : {1, 5, 8}) check_f32_matches_serial(x, bits, 0.0, 1.0);
    check_f32_matches_serial(x, 3, 0.1, 0.9);
}

TEST_CASE("bit_depth float runs in place") {
    std::vector<float> x = test_inputs(257, 5), ref(x.size());
    bit_depth_f32(x.data(), ref.data(), x.size(), 5, 0.0, 1.0, Isa::serial);
    for (Isa isa : supported_isas()) {
        std::vector<float> y = x;
        bit_depth_f32(y.data(), y.data(), y.size(), 5, 0.0, 1.0, isa);
        for (size_t i = 0; i < y.size(); ++i) CHECK(same_float(y[i], ref[i]));
    }
}

TEST_CASE("bit_depth uint8: every value and bit depth matches the table, for every variant") {
    for (int bits = 1; bits <= 8; ++bits) {
        const serial::BitDepthTable table = serial::make_bit_depth_table(bits);
        if (bits == 8)
            for (int v = 0; v < 256; ++v) CHECK(table.value[v] == v);
        // Every variant, many lengths so each tail size is covered, in place too.
        for (size_t n : {size_t(1), size_t(15), size_t(16), size_t(17), size_t(31), size_t(33), size_t(256),
                         size_t(300), size_t(1000)}) {
            std::vector<uint8_t> x(n);
            for (size_t i = 0; i < n; ++i) x[i] = static_cast<uint8_t>((i * 7 + bits) % 256);
            if (n == 256)
                for (size_t i = 0; i < n; ++i) x[i] = static_cast<uint8_t>(i);
            for (Isa isa : supported_isas()) {
                std::vector<uint8_t> y(n, 0xAB), inplace = x;
                bit_depth_u8(x.data(), y.data(), n, bits, isa);
                bit_depth_u8(inplace.data(), inplace.data(), n, bits, isa);
                size_t bad = 0;
                for (size_t i = 0; i < n; ++i) bad += (y[i] != table.value[x[i]]) + (inplace[i] != y[i]);
                INFO("isa=" << isa_name(isa) << " bits=" << bits << " n=" << n);
                CHECK(bad == 0);
            }
        }
    }
}

TEST_CASE("bit_depth rejects bad parameters") {
    float x = 0.5f, y;
    uint8_t u = 1, v;
    CHECK_THROWS_AS(bit_depth_f32(&x, &y, 1, 0, 0.0, 1.0, Isa::serial), std::invalid_argument);
    CHECK_THROWS_AS(bit_depth_f32(&x, &y, 1, 9, 0.0, 1.0, Isa::serial), std::invalid_argument);
    CHECK_THROWS_AS(bit_depth_f32(&x, &y, 1, 4, 1.0, 1.0, Isa::serial), std::invalid_argument);
    CHECK_THROWS_AS(bit_depth_f32(&x, &y, 1, 4, 0.0, 1e300, Isa::serial), std::invalid_argument);
    CHECK_THROWS_AS(bit_depth_u8(&u, &v, 1, 0, Isa::serial), std::invalid_argument);
#if PYGUARD_X86
    CHECK_THROWS_AS(bit_depth_f32(&x, &y, 1, 4, 0.0, 1.0, Isa::neon), std::invalid_argument);
#endif
}
