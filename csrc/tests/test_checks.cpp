#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "checks.h"

using namespace pyguard;

namespace {

std::vector<float> check_inputs(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    const float inf = std::numeric_limits<float>::infinity();
    const float specials[] = {0.0f, -0.0f, 1.0f, -1e-9f, 1.0f + 1e-7f, inf, -inf,
                              std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::denorm_min(),
                              std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(), 0.5f,
                              // just inside / outside the 1e-3 tolerance of level 3 on a 255 grid
                              (3.0f + 0.00099f) / 255.0f, (3.0f + 0.0011f) / 255.0f};
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) {
        switch (rng() % 6) {
        case 0: x[i] = specials[rng() % (sizeof(specials) / sizeof(float))]; break;
        case 1: {
            uint32_t u = static_cast<uint32_t>(rng());
            std::memcpy(&x[i], &u, 4);
            break;
        }
        case 2: x[i] = std::uniform_real_distribution<float>(-0.2f, 1.2f)(rng); break;
        default: x[i] = static_cast<float>(rng() % 256) / 255.0f;
        }
    }
    return x;
}

void check_same(const CheckCounts &a, const CheckCounts &b) {
    CHECK(a.nonfinite == b.nonfinite);
    CHECK(a.out_of_range == b.out_of_range);
    CHECK(a.off_grid == b.off_grid);
}

CheckParams params(float lo, float hi, int grid) {
    CheckParams p;
    p.lo = lo;
    p.hi = hi;
    p.grid = grid > 0;
    p.scale = grid > 0 ? static_cast<float>(grid / (static_cast<double>(hi) - lo)) : 0.0f;
    return p;
}

} // namespace

TEST_CASE("checks serial counts known values") {
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    const float x[] = {0.0f, 1.0f, 2.0f / 255.0f, 0.5f, nan, inf, -inf, -0.1f, 1.5f, -0.0f};
    CheckCounts c;
    serial::checks_f32(x, 10, params(0.0f, 1.0f, 255), c);
    CHECK(c.nonfinite == 3);
    CHECK(c.out_of_range == 2);
    CHECK(c.off_grid == 1); // 0.5 * 255 = 127.5
    CheckCounts none;
    serial::checks_f32(x, 10, params(0.0f, 1.0f, 0), none);
    CHECK(none.off_grid == 0);
    const uint8_t u[] = {0, 5, 10, 200, 255};
    CheckCounts cu;
    serial::checks_u8(u, 5, 5, 200, cu);
    CHECK(cu.out_of_range == 2);
}

TEST_CASE("checks float variants match serial on random data, odd sizes and special values") {
    const CheckParams cases[] = {params(0.0f, 1.0f, 255), params(0.0f, 1.0f, 0), params(-1.0f, 1.0f, 255),
                                 params(0.0f, 255.0f, 255), params(0.1f, 0.9f, 16)};
    for (const CheckParams &p : cases)
        for (size_t n : {size_t(1), size_t(2), size_t(7), size_t(15), size_t(16), size_t(17), size_t(33),
                         size_t(100), size_t(1001)}) {
            const std::vector<float> x = check_inputs(n, static_cast<uint32_t>(n + 977));
            CheckCounts ref;
            serial::checks_f32(x.data(), n, p, ref);
            CHECK(ref.nonfinite + ref.out_of_range <= static_cast<int64_t>(n));
            for (Isa isa : supported_isas()) {
                std::vector<CheckCounts> got(1);
                INFO("isa=" << isa_name(isa) << " n=" << n << " lo=" << p.lo << " grid=" << p.grid);
                sample_checks_f32(x.data(), 1, n, p, got.data(), isa);
                check_same(got[0], ref);
            }
        }
}

TEST_CASE("checks split batches into samples") {
    const size_t samples = 5, size = 37;
    const std::vector<float> x = check_inputs(samples * size, 3);
    const CheckParams p = params(0.0f, 1.0f, 255);
    for (Isa isa : supported_isas()) {
        std::vector<CheckCounts> got(samples);
        sample_checks_f32(x.data(), samples, size, p, got.data(), isa);
        for (size_t s = 0; s < samples; ++s) {
            CheckCounts ref;
            serial::checks_f32(x.data() + s * size, size, p, ref);
            check_same(got[s], ref);
        }
    }
}

TEST_CASE("checks uint8 variants match serial for every bound pair on odd sizes") {
    std::mt19937 rng(11);
    for (size_t n : {size_t(1), size_t(31), size_t(32), size_t(33), size_t(64), size_t(65), size_t(1000)}) {
        std::vector<uint8_t> x(n);
        for (auto &v : x) v = static_cast<uint8_t>(rng());
        for (int lo = 0; lo < 256; lo += 17)
            for (int hi = lo; hi < 256; hi += 23) {
                CheckCounts ref;
                serial::checks_u8(x.data(), n, static_cast<uint8_t>(lo), static_cast<uint8_t>(hi), ref);
                for (Isa isa : supported_isas()) {
                    std::vector<CheckCounts> got(1);
                    sample_checks_u8(x.data(), 1, n, static_cast<uint8_t>(lo), static_cast<uint8_t>(hi), got.data(),
                                     isa);
                    INFO("isa=" << isa_name(isa) << " n=" << n << " lo=" << lo << " hi=" << hi);
                    check_same(got[0], ref);
                }
            }
    }
}
