// Activation statistics (per-sample / per-channel min-max, range checks) and clamping: dispatch over the
// serial, AVX2, AVX-512 and NEON variants. See stats/README.md for the semantics and the layouts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "isa.h"
#include "stats/avx2.h"
#include "stats/avx512.h"
#include "stats/neon.h"
#include "stats/serial.h"

namespace pyguard {

// The SIMD primitives of one variant: contiguous spans with one channel, and periodic blocks where lane j
// of every `block` values belongs to slot j.
struct StatsKernels {
    bool (*minmax_span)(const float *, size_t, float &, float &);
    bool (*minmax_periodic)(const float *, size_t, size_t, float *, float *);
    void (*range_span)(const float *, size_t, float, float, RangeAcc &);
    void (*range_periodic)(const float *, size_t, size_t, const float *, const float *, RangeAcc &);
    void (*clamp_span)(const float *, float *, size_t, float, float);
    void (*clamp_periodic)(const float *, float *, size_t, size_t, const float *, const float *);
    // Optional (nullptr if the variant has none): periodic blocks of at most 256 values (stats_small_block)
    // kept in registers.
    bool (*minmax_small)(const float *, size_t, size_t, float *, float *);
    void (*range_small)(const float *, size_t, size_t, const float *, const float *, RangeAcc &);
};

inline StatsKernels stats_kernels(Isa isa) {
    if (!isa_supported(isa) || isa == Isa::serial)
        throw std::invalid_argument(std::string("no SIMD stats kernels for isa '") + isa_name(isa) + "'");
    switch (isa) {
#if PYGUARD_X86
    case Isa::avx512:
        return {avx512::minmax_span, avx512::minmax_periodic, avx512::range_span,
                avx512::range_periodic, avx512::clamp_span, avx512::clamp_periodic,
                avx512::minmax_small,   avx512::range_small};
    case Isa::avx2:
        return {avx2::minmax_span, avx2::minmax_periodic, avx2::range_span,
                avx2::range_periodic, avx2::clamp_span, avx2::clamp_periodic, nullptr, nullptr};
#endif
#if PYGUARD_NEON
    case Isa::neon:
        return {neon::minmax_span, neon::minmax_periodic, neon::range_span,
                neon::range_periodic, neon::clamp_span, neon::clamp_periodic, nullptr, nullptr};
#endif
    default: throw std::invalid_argument("unsupported isa");
    }
}

inline void stats_require(Isa isa, const StatsLayout &l) {
    if (!isa_supported(isa))
        throw std::invalid_argument(std::string("isa '") + isa_name(isa) + "' is not supported");
    if (l.samples == 0 || l.outer == 0 || l.channels == 0 || l.inner == 0)
        throw std::invalid_argument("stats layout has an empty dimension");
}

// Runs of `inner` values per channel that fill at least one AVX-512 vector are reduced in registers;
// shorter ones (channels-last, 2-D features) are handled as one periodic stream.
constexpr size_t kStatsRunMin = 16;

inline bool stats_use_runs(const StatsLayout &l) { return l.channels == 1 || l.inner >= kStatsRunMin; }

// A block that is a whole number of periods (channels * inner) and, when small enough, of 16 lanes,
// grown to at least 1024 values: rows of >= 4 KB let the periodic kernels read several rows side by side
// while each row still streams through whole pages (measured: shorter rows read that way lose half the
// memory bandwidth on Zen 5).
inline size_t stats_block(const StatsLayout &l) {
    const size_t period = l.channels * l.inner;
    const size_t both = period / std::gcd(period, size_t(16)) * 16;
    if (both > 4096) return period;
    return both * ((1024 + both - 1) / both);
}

// The smallest block that is a whole number of periods and of 16 lanes, when it fits in 16 AVX-512
// registers (256 values); 0 otherwise. Variants with small-block kernels keep such a block in registers.
inline size_t stats_small_block(const StatsLayout &l) {
    const size_t period = l.channels * l.inner;
    const size_t both = period / std::gcd(period, size_t(16)) * 16;
    return both <= 256 ? both : 0;
}

// Calls f(j, channel) for every lane j of a block (a whole number of periods), without divisions.
template <class F> inline void stats_for_each_lane(const StatsLayout &l, size_t block, F f) {
    for (size_t j0 = 0; j0 < block; j0 += l.channels * l.inner)
        for (size_t c = 0, j = j0; c < l.channels; ++c)
            for (size_t i = 0; i < l.inner; ++i, ++j) f(j, c);
}

// Folds NaN-free per-lane results of a block into per-channel mins / maxs: first the periods onto the
// first one, then each channel's `inner` lanes. Contiguous loops (the compiler vectorizes them), because
// with few rows per sample this costs about as much as reading the data.
inline void stats_fold_lanes(const StatsLayout &l, size_t block, float *acc_min, float *acc_max, float *mn,
                             float *mx) {
    const size_t period = l.channels * l.inner;
    for (size_t j0 = period; j0 < block; j0 += period)
        for (size_t k = 0; k < period; ++k) {
            acc_min[k] = min_keep(acc_min[j0 + k], acc_min[k]);
            acc_max[k] = max_keep(acc_max[j0 + k], acc_max[k]);
        }
    if (l.inner == 1) {
        for (size_t c = 0; c < l.channels; ++c) {
            mn[c] = min_keep(acc_min[c], mn[c]);
            mx[c] = max_keep(acc_max[c], mx[c]);
        }
        return;
    }
    for (size_t c = 0; c < l.channels; ++c)
        for (size_t i = 0; i < l.inner; ++i) {
            mn[c] = min_keep(acc_min[c * l.inner + i], mn[c]);
            mx[c] = max_keep(acc_max[c * l.inner + i], mx[c]);
        }
}

// pattern[j] = per_channel[channel of lane j] over one block.
inline std::vector<float> stats_pattern(const float *per_channel, const StatsLayout &l, size_t block) {
    std::vector<float> pattern(block);
    stats_for_each_lane(l, block, [&](size_t j, size_t c) { pattern[j] = per_channel[c]; });
    return pattern;
}

// mins / maxs: samples * channels values.
inline void minmax_f32(const float *x, const StatsLayout &l, float *mins, float *maxs, Isa isa) {
    stats_require(isa, l);
    if (isa == Isa::serial) return serial::minmax_f32(x, l, mins, maxs);
    if (l.outer == 1 && l.inner == 1) { // one value per (sample, channel): it is its own min and max
        std::memcpy(mins, x, l.samples * l.channels * sizeof(float));
        std::memcpy(maxs, x, l.samples * l.channels * sizeof(float));
        return;
    }
    const StatsKernels k = stats_kernels(isa);
    const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
    const size_t size = l.sample_size();
    const bool small = k.minmax_small && stats_small_block(l) != 0;
    const size_t used = small ? stats_small_block(l) : stats_block(l); // values per periodic block
    std::vector<float> acc_min, acc_max;
    for (size_t s = 0; s < l.samples; ++s) {
        const float *xs = x + s * size;
        float *mn = mins + s * l.channels, *mx = maxs + s * l.channels;
        for (size_t c = 0; c < l.channels; ++c) mn[c] = inf, mx[c] = -inf;
        if (l.channels == 1) {
            float a, b;
            const bool has_nan = k.minmax_span(xs, size, a, b);
            fold_minmax(has_nan ? nan : a, has_nan ? nan : b, mn[0], mx[0]);
        } else if (stats_use_runs(l)) {
            for (size_t o = 0; o < l.outer; ++o)
                for (size_t c = 0; c < l.channels; ++c) {
                    float a, b;
                    const bool has_nan = k.minmax_span(xs + (o * l.channels + c) * l.inner, l.inner, a, b);
                    fold_minmax(has_nan ? nan : a, has_nan ? nan : b, mn[c], mx[c]);
                }
        } else {
            acc_min.assign(used, inf);
            acc_max.assign(used, -inf);
            const bool has_nan = small ? k.minmax_small(xs, size, used, acc_min.data(), acc_max.data())
                                       : k.minmax_periodic(xs, size, used, acc_min.data(), acc_max.data());
            if (has_nan) {
                // Some channel holds NaN: rare, so the reference finds which ones.
                StatsLayout one = l;
                one.samples = 1;
                serial::minmax_f32(xs, one, mn, mx);
                continue;
            }
            stats_fold_lanes(l, used, acc_min.data(), acc_max.data(), mn, mx);
        }
    }
}

// lo / hi: `channels` bounds each. counts / max_excess: one per sample.
inline void range_check_f32(const float *x, const StatsLayout &l, const float *lo, const float *hi, int64_t *counts,
                            float *max_excess, Isa isa) {
    stats_require(isa, l);
    if (isa == Isa::serial) return serial::range_check_f32(x, l, lo, hi, counts, max_excess);
    const StatsKernels k = stats_kernels(isa);
    const size_t size = l.sample_size();
    const bool runs = stats_use_runs(l);
    const bool small = !runs && k.range_small && stats_small_block(l) != 0;
    const size_t block = runs ? 0 : small ? stats_small_block(l) : stats_block(l);
    const std::vector<float> lo_pattern = runs ? std::vector<float>() : stats_pattern(lo, l, block);
    const std::vector<float> hi_pattern = runs ? std::vector<float>() : stats_pattern(hi, l, block);
    for (size_t s = 0; s < l.samples; ++s) {
        const float *xs = x + s * size;
        RangeAcc acc;
        if (l.channels == 1)
            k.range_span(xs, size, lo[0], hi[0], acc);
        else if (runs)
            for (size_t o = 0; o < l.outer; ++o)
                for (size_t c = 0; c < l.channels; ++c)
                    k.range_span(xs + (o * l.channels + c) * l.inner, l.inner, lo[c], hi[c], acc);
        else
            (small ? k.range_small : k.range_periodic)(xs, size, block, lo_pattern.data(), hi_pattern.data(), acc);
        counts[s] = acc.count;
        max_excess[s] = acc.nan ? std::numeric_limits<float>::infinity() : acc.excess;
    }
}

// y may equal x (in place).
inline void clamp_f32(const float *x, float *y, const StatsLayout &l, const float *lo, const float *hi, Isa isa) {
    stats_require(isa, l);
    if (isa == Isa::serial) return serial::clamp_f32(x, y, l, lo, hi);
    const StatsKernels k = stats_kernels(isa);
    const size_t total = l.samples * l.sample_size();
    if (l.channels == 1) return k.clamp_span(x, y, total, lo[0], hi[0]);
    if (stats_use_runs(l)) {
        const size_t rows = l.samples * l.outer;
        for (size_t r = 0; r < rows; ++r)
            for (size_t c = 0; c < l.channels; ++c) {
                const size_t base = (r * l.channels + c) * l.inner;
                k.clamp_span(x + base, y + base, l.inner, lo[c], hi[c]);
            }
        return;
    }
    const size_t block = stats_block(l);
    const std::vector<float> lo_pattern = stats_pattern(lo, l, block), hi_pattern = stats_pattern(hi, l, block);
    k.clamp_periodic(x, y, total, block, lo_pattern.data(), hi_pattern.data()); // samples repeat the period
}

} // namespace pyguard
