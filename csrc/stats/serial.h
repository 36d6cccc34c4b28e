// Activation statistics and range enforcement, scalar reference.
//
// A batch is viewed as (samples, outer, channels, inner): per sample, `outer` rows of `channels` runs of
// `inner` contiguous values (channels = 1 when there is no channel axis). Semantics:
//   minmax:       per (sample, channel) min and max; any NaN makes both NaN (like np.min / np.max).
//   range_check:  per sample, count of values v with !(lo <= v <= hi) (NaN counts) and the largest
//                 excess max(lo - v, v - hi) over them (+inf for NaN), 0 when there is none.
//   clamp:        y = v < lo ? lo : (v > hi ? hi : v), NaN stays NaN: exactly np.clip (and ONNX Clip);
//                 a value equal to a bound is returned as is (so -0.0 stays -0.0 when lo is +0.0), as
//                 np.clip does with scalar bounds (with array bounds NumPy may return the bound instead,
//                 depending on its inner loop; that differs only in the sign of a zero).
// lo / hi are per channel (arrays of `channels` values).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "isa.h"

namespace pyguard {

struct StatsLayout {
    size_t samples = 1, outer = 1, channels = 1, inner = 1;
    size_t sample_size() const { return outer * channels * inner; }
};

// The comparisons every variant uses lane by lane (the semantics of x86 minps / maxps with the new
// value first): NaN in `v` is ignored, and equal values keep the accumulator.
inline float min_keep(float v, float acc) { return v < acc ? v : acc; }
inline float max_keep(float v, float acc) { return v > acc ? v : acc; }

// Folds partial results of one channel; NaN (from any part) is sticky.
inline void fold_minmax(float part_min, float part_max, float &mn, float &mx) {
    if (std::isnan(mn)) return;
    if (std::isnan(part_min) || std::isnan(part_max)) {
        mn = mx = std::numeric_limits<float>::quiet_NaN();
        return;
    }
    mn = min_keep(part_min, mn);
    mx = max_keep(part_max, mx);
}

// Running range_check totals of one sample, shared by the SIMD variants.
struct RangeAcc {
    int64_t count = 0;
    float excess = 0.0f; // largest lo - v or v - hi among violators seen so far (NaN excluded)
    bool nan = false;
    void add_scalar(float v, float lo, float hi) { // the tail elements of the SIMD variants
        if (v >= lo && v <= hi) return;
        ++count;
        if (std::isnan(v)) {
            nan = true;
            return;
        }
        const float below = lo - v, above = v - hi;
        const float e = above > below ? above : below;
        excess = e > excess ? e : excess;
    }
};

namespace serial {

// mins / maxs: samples * channels values.
inline void minmax_f32(const float *x, const StatsLayout &l, float *mins, float *maxs) {
    const float inf = std::numeric_limits<float>::infinity();
    for (size_t s = 0; s < l.samples; ++s) {
        float *mn = mins + s * l.channels, *mx = maxs + s * l.channels;
        for (size_t c = 0; c < l.channels; ++c) mn[c] = inf, mx[c] = -inf;
        const float *xs = x + s * l.sample_size();
        for (size_t o = 0; o < l.outer; ++o)
            for (size_t c = 0; c < l.channels; ++c) {
                const float *run = xs + (o * l.channels + c) * l.inner;
                float a = inf, b = -inf;
                bool nan = false;
                for (size_t i = 0; i < l.inner; ++i) {
                    nan |= std::isnan(run[i]);
                    a = min_keep(run[i], a);
                    b = max_keep(run[i], b);
                }
                if (nan) a = b = std::numeric_limits<float>::quiet_NaN();
                fold_minmax(a, b, mn[c], mx[c]);
            }
    }
}

inline void range_check_f32(const float *x, const StatsLayout &l, const float *lo, const float *hi, int64_t *counts,
                            float *max_excess) {
    for (size_t s = 0; s < l.samples; ++s) {
        const float *xs = x + s * l.sample_size();
        int64_t count = 0;
        float excess = 0.0f;
        for (size_t o = 0; o < l.outer; ++o)
            for (size_t c = 0; c < l.channels; ++c) {
                const float *run = xs + (o * l.channels + c) * l.inner;
                for (size_t i = 0; i < l.inner; ++i) {
                    const float v = run[i];
                    if (v >= lo[c] && v <= hi[c]) continue;
                    ++count;
                    const float below = lo[c] - v, above = v - hi[c];
                    const float e = std::isnan(v) ? std::numeric_limits<float>::infinity() : (above > below ? above : below);
                    excess = e > excess ? e : excess;
                }
            }
        counts[s] = count;
        max_excess[s] = excess;
    }
}

inline float clamp_value(float v, float lo, float hi) {
    const float t = lo > v ? lo : v; // NaN v: the comparison is false, v is kept
    return hi < t ? hi : t;
}

inline void clamp_f32(const float *x, float *y, const StatsLayout &l, const float *lo, const float *hi) {
    const size_t rows = l.samples * l.outer;
    for (size_t r = 0; r < rows; ++r)
        for (size_t c = 0; c < l.channels; ++c) {
            const size_t base = (r * l.channels + c) * l.inner;
            for (size_t i = 0; i < l.inner; ++i) y[base + i] = clamp_value(x[base + i], lo[c], hi[c]);
        }
}

} // namespace serial
} // namespace pyguard
