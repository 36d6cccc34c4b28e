#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "stats.h"

using namespace pyguard;

namespace {

const float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<float> activations(size_t n, uint32_t seed, bool specials) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.5f, 2.0f);
    std::vector<float> x(n);
    for (auto &v : x) v = normal(rng);
    if (specials && n > 0) {
        const float values[] = {kInf, -kInf, -0.0f, 0.0f, std::numeric_limits<float>::denorm_min(), 3e38f, -3e38f,
                                -1.0f, 1.0f};
        for (size_t k = 0; k < n / 17 + 1; ++k) x[rng() % n] = values[rng() % 9];
        for (size_t k = 0; k < n / 5000 + 1; ++k) x[rng() % n] = kNaN; // a few channels turn NaN
    }
    return x;
}

bool same_value(float a, float b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0; }

std::vector<StatsLayout> layouts() {
    std::vector<StatsLayout> out;
    for (size_t n : {size_t(1), size_t(3), size_t(15), size_t(16), size_t(17), size_t(63), size_t(64), size_t(65),
                     size_t(1000)})
        out.push_back({2, 1, 1, n}); // per sample, no channels
    out.push_back({2, 1, 3, 7 * 5});    // NCHW, small maps
    out.push_back({3, 1, 3, 223});      // NCHW, long odd runs
    out.push_back({2, 5, 3, 1});        // NHWC, tiny
    out.push_back({2, 7 * 5, 3, 1});    // NHWC 7x5
    out.push_back({2, 50, 256, 1});     // channels last, wide
    out.push_back({1, 3, 5, 49});       // NCHW 7x7 maps with outer > 1
    out.push_back({2, 4, 7, 5});        // generic small inner
    out.push_back({2, 3, 4099, 1});     // period above the block limit
    out.push_back({1, 2, 2, 64});       // runs exactly at the threshold
    out.push_back({2, 300, 3, 17});     // periodic with several 8-row groups and a partial row
    out.push_back({3, 1, 100, 1});      // (N, C) features: one value per channel
    out.push_back({3, 1, 40, 3});       // one row per sample, tiny runs
    out.push_back({2, 37, 5, 1});       // small block of 5 vectors, partial last block
    out.push_back({1, 33, 16, 1});      // small block of one vector
    out.push_back({2, 21, 8, 2});       // period 16 from channels x inner
    out.push_back({2, 19, 64, 1});      // small block of 4 vectors
    out.push_back({1, 11, 12, 1});      // period 12: blocks of 48 values and a partial one
    out.push_back({2, 20, 3, 5});       // period 15: blocks of 15 vectors
    out.push_back({1, 9, 200, 1});      // period 200: lcm 400, above the small-block limit
    return out;
}

std::vector<float> bounds(size_t channels, float base, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<float> b(channels);
    for (auto &v : b) v = base + static_cast<float>(rng() % 100) / 100.0f;
    return b;
}

} // namespace

TEST_CASE("stats serial reference on known values") {
    const float x[] = {1.0f, -2.0f, 3.0f, 0.5f, kNaN, 4.0f};
    StatsLayout per_sample{2, 1, 1, 3};
    float mn[2], mx[2];
    serial::minmax_f32(x, per_sample, mn, mx);
    CHECK(mn[0] == -2.0f);
    CHECK(mx[0] == 3.0f);
    CHECK(std::isnan(mn[1]));
    CHECK(std::isnan(mx[1]));
    const float lo = -1.0f, hi = 2.0f;
    int64_t counts[2];
    float excess[2];
    serial::range_check_f32(x, per_sample, &lo, &hi, counts, excess);
    CHECK(counts[0] == 2);
    CHECK(excess[0] == 1.0f);
    CHECK(counts[1] == 2);
    CHECK(std::isinf(excess[1]));
    float y[6];
    serial::clamp_f32(x, y, per_sample, &lo, &hi);
    CHECK(y[1] == -1.0f);
    CHECK(y[2] == 2.0f);
    CHECK(std::isnan(y[4]));
    const float zero = 0.0f, neg_zero = -0.0f, one = 1.0f;
    float z;
    serial::clamp_f32(&neg_zero, &z, StatsLayout{1, 1, 1, 1}, &zero, &one);
    CHECK(std::signbit(z)); // equal to the bound: returned as is, like np.clip
}

TEST_CASE("stats variants match serial on every layout") {
    for (bool specials : {false, true})
        for (const StatsLayout &l : layouts()) {
            const size_t total = l.samples * l.sample_size(), outs = l.samples * l.channels;
            const std::vector<float> x = activations(total, static_cast<uint32_t>(total + l.channels), specials);
            const std::vector<float> lo = bounds(l.channels, -1.0f, 1), hi = bounds(l.channels, 1.5f, 2);
            std::vector<float> ref_min(outs), ref_max(outs), ref_excess(l.samples), ref_y(total);
            std::vector<int64_t> ref_count(l.samples);
            serial::minmax_f32(x.data(), l, ref_min.data(), ref_max.data());
            serial::range_check_f32(x.data(), l, lo.data(), hi.data(), ref_count.data(), ref_excess.data());
            serial::clamp_f32(x.data(), ref_y.data(), l, lo.data(), hi.data());
            for (Isa isa : supported_isas()) {
                INFO("isa=" << isa_name(isa) << " layout=" << l.samples << "x" << l.outer << "x" << l.channels << "x"
                            << l.inner << " specials=" << specials);
                std::vector<float> mn(outs, 7.0f), mx(outs, 7.0f), excess(l.samples, 7.0f), y(total, 7.0f);
                std::vector<int64_t> count(l.samples, -1);
                minmax_f32(x.data(), l, mn.data(), mx.data(), isa);
                range_check_f32(x.data(), l, lo.data(), hi.data(), count.data(), excess.data(), isa);
                clamp_f32(x.data(), y.data(), l, lo.data(), hi.data(), isa);
                size_t bad = 0;
                for (size_t i = 0; i < outs; ++i) bad += !same_value(mn[i], ref_min[i]) + !same_value(mx[i], ref_max[i]);
                for (size_t s = 0; s < l.samples; ++s) bad += (count[s] != ref_count[s]) + !same_bits(excess[s], ref_excess[s]);
                for (size_t i = 0; i < total; ++i) bad += !same_bits(y[i], ref_y[i]);
                CHECK(bad == 0);
                std::vector<float> in_place = x;
                clamp_f32(in_place.data(), in_place.data(), l, lo.data(), hi.data(), isa);
                CHECK(std::memcmp(in_place.data(), ref_y.data(), total * sizeof(float)) == 0);
            }
        }
}

TEST_CASE("stats in-place clamp that changes only a few values") {
    for (const StatsLayout &l : layouts()) {
        const size_t total = l.samples * l.sample_size();
        std::vector<float> x(total);
        std::mt19937 rng(static_cast<uint32_t>(total));
        for (auto &v : x) v = static_cast<float>(rng() % 1000) / 1000.0f; // inside [0, 1)
        for (size_t k = 0; k < total / 97 + 1; ++k) x[rng() % total] = (k % 3 == 0) ? -5.0f : (k % 3 == 1 ? 7.0f : kNaN);
        x[0] = -0.0f;
        const std::vector<float> lo(l.channels, 0.0f), hi(l.channels, 1.0f);
        std::vector<float> ref(total);
        serial::clamp_f32(x.data(), ref.data(), l, lo.data(), hi.data());
        for (Isa isa : supported_isas()) {
            std::vector<float> y = x;
            clamp_f32(y.data(), y.data(), l, lo.data(), hi.data(), isa);
            INFO("isa=" << isa_name(isa) << " total=" << total);
            CHECK(std::memcmp(y.data(), ref.data(), total * sizeof(float)) == 0);
        }
    }
}

TEST_CASE("stats range_check and clamp with infinite bounds") {
    const std::vector<float> x = activations(1000, 5, true);
    const float bounds[][2] = {{-kInf, 2.0f}, {-1.0f, kInf}, {-kInf, kInf}, {0.0f, 0.0f}};
    for (const auto &b : bounds) {
        const StatsLayout l{2, 1, 1, 500};
        int64_t ref_count[2];
        float ref_excess[2];
        serial::range_check_f32(x.data(), l, &b[0], &b[1], ref_count, ref_excess);
        for (Isa isa : supported_isas()) {
            int64_t count[2];
            float excess[2];
            range_check_f32(x.data(), l, &b[0], &b[1], count, excess, isa);
            INFO("isa=" << isa_name(isa) << " lo=" << b[0] << " hi=" << b[1]);
            for (int s = 0; s < 2; ++s) {
                CHECK(count[s] == ref_count[s]);
                CHECK(same_bits(excess[s], ref_excess[s]));
            }
        }
    }
}

TEST_CASE("stats NaN propagates to exactly the channels that hold it") {
    for (const StatsLayout &l : layouts()) {
        if (l.channels == 1) continue;
        const size_t total = l.samples * l.sample_size(), outs = l.samples * l.channels;
        std::vector<float> x = activations(total, 9, false);
        x[total - 1] = kNaN; // last sample, last channel
        std::vector<float> ref_min(outs), ref_max(outs);
        serial::minmax_f32(x.data(), l, ref_min.data(), ref_max.data());
        CHECK(std::isnan(ref_min[outs - 1]));
        if (l.channels > 1) CHECK(!std::isnan(ref_min[outs - 2]));
        for (Isa isa : supported_isas()) {
            std::vector<float> mn(outs), mx(outs);
            minmax_f32(x.data(), l, mn.data(), mx.data(), isa);
            for (size_t i = 0; i < outs; ++i) {
                CHECK(same_value(mn[i], ref_min[i]));
                CHECK(same_value(mx[i], ref_max[i]));
            }
        }
    }
}

TEST_CASE("stats rejects empty layouts and unsupported variants") {
    float x = 0.0f, mn, mx;
    CHECK_THROWS_AS(minmax_f32(&x, StatsLayout{0, 1, 1, 1}, &mn, &mx, Isa::serial), std::invalid_argument);
#if PYGUARD_X86
    CHECK_THROWS_AS(minmax_f32(&x, StatsLayout{1, 1, 1, 1}, &mn, &mx, Isa::neon), std::invalid_argument);
#endif
}
