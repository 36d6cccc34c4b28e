// Activation statistics, NEON: the structure of avx512.h on 4 lanes. NEON's vminq / vmaxq propagate NaN
// and order the zeros, unlike x86, so min, max and clamp use compare + select to keep the exact
// semantics of serial.h; tails are done element by element.
#pragma once

#include "stats/serial.h"

#if PYGUARD_NEON
namespace pyguard {
namespace neon {

inline float32x4_t min_keep(float32x4_t v, float32x4_t acc) { return vbslq_f32(vcltq_f32(v, acc), v, acc); }
inline float32x4_t max_keep(float32x4_t v, float32x4_t acc) { return vbslq_f32(vcgtq_f32(v, acc), v, acc); }
inline uint32x4_t is_nan(float32x4_t v) { return vmvnq_u32(vceqq_f32(v, v)); }

struct MinMaxAcc {
    float32x4_t mn = vdupq_n_f32(INFINITY), mx = vdupq_n_f32(-INFINITY);
    uint32x4_t nan = vdupq_n_u32(0);
    void add(float32x4_t v) {
        mn = min_keep(v, mn);
        mx = max_keep(v, mx);
        nan = vorrq_u32(nan, is_nan(v));
    }
};

inline bool minmax_span(const float *x, size_t n, float &mn, float &mx) {
    MinMaxAcc a, b;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        a.add(vld1q_f32(x + i));
        b.add(vld1q_f32(x + i + 4));
    }
    for (; i + 4 <= n; i += 4) a.add(vld1q_f32(x + i));
    mn = vminvq_f32(min_keep(a.mn, b.mn)); // accumulators never hold NaN
    mx = vmaxvq_f32(max_keep(a.mx, b.mx));
    bool nan = vmaxvq_u32(vorrq_u32(a.nan, b.nan)) != 0;
    for (; i < n; ++i) {
        nan |= std::isnan(x[i]);
        mn = pyguard::min_keep(x[i], mn);
        mx = pyguard::max_keep(x[i], mx);
    }
    return nan;
}

inline bool minmax_periodic(const float *x, size_t n, size_t block, float *acc_min, float *acc_max) {
    uint32x4_t nan = vdupq_n_u32(0);
    bool tail_nan = false;
    for (size_t base = 0; base < n; base += block) {
        const size_t len = n - base < block ? n - base : block;
        const float *row = x + base;
        size_t j = 0;
        for (; j + 4 <= len; j += 4) {
            const float32x4_t v = vld1q_f32(row + j);
            vst1q_f32(acc_min + j, min_keep(v, vld1q_f32(acc_min + j)));
            vst1q_f32(acc_max + j, max_keep(v, vld1q_f32(acc_max + j)));
            nan = vorrq_u32(nan, is_nan(v));
        }
        for (; j < len; ++j) {
            tail_nan |= std::isnan(row[j]);
            acc_min[j] = pyguard::min_keep(row[j], acc_min[j]);
            acc_max[j] = pyguard::max_keep(row[j], acc_max[j]);
        }
    }
    return tail_nan || vmaxvq_u32(nan) != 0;
}

struct RangeLanes {
    float32x4_t excess = vdupq_n_f32(0.0f);
    uint32x4_t nan = vdupq_n_u32(0);
    uint64_t count = 0;
    void add(float32x4_t v, float32x4_t lo, float32x4_t hi) {
        const uint32x4_t ok = vandq_u32(vcgeq_f32(v, lo), vcleq_f32(v, hi));
        count += 4 - vaddvq_u32(vshrq_n_u32(ok, 31));
        const float32x4_t e = vmaxq_f32(vsubq_f32(lo, v), vsubq_f32(v, hi)); // NaN for NaN v: not greater
        excess = max_keep(e, excess);
        nan = vorrq_u32(nan, is_nan(v));
    }
    void fold_into(RangeAcc &acc) const {
        acc.count += static_cast<int64_t>(count);
        const float e = vmaxvq_f32(excess);
        acc.excess = e > acc.excess ? e : acc.excess;
        acc.nan |= vmaxvq_u32(nan) != 0;
    }
};

inline void range_span(const float *x, size_t n, float lo, float hi, RangeAcc &acc) {
    const float32x4_t vlo = vdupq_n_f32(lo), vhi = vdupq_n_f32(hi);
    RangeLanes a;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) a.add(vld1q_f32(x + i), vlo, vhi);
    a.fold_into(acc);
    for (; i < n; ++i) acc.add_scalar(x[i], lo, hi);
}

inline void range_periodic(const float *x, size_t n, size_t block, const float *lo, const float *hi, RangeAcc &acc) {
    RangeLanes lanes;
    for (size_t base = 0; base < n; base += block) {
        const size_t len = n - base < block ? n - base : block;
        size_t j = 0;
        for (; j + 4 <= len; j += 4) lanes.add(vld1q_f32(x + base + j), vld1q_f32(lo + j), vld1q_f32(hi + j));
        for (; j < len; ++j) acc.add_scalar(x[base + j], lo[j], hi[j]);
    }
    lanes.fold_into(acc);
}

// lo > v ? lo : v, then hi < t ? hi : t: NaN and values equal to a bound pass through, as np.clip.
inline float32x4_t clamp_vec(float32x4_t v, float32x4_t lo, float32x4_t hi) {
    const float32x4_t t = vbslq_f32(vcgtq_f32(lo, v), lo, v);
    return vbslq_f32(vcltq_f32(hi, t), hi, t);
}

inline void clamp_span(const float *x, float *y, size_t n, float lo, float hi) {
    const float32x4_t vlo = vdupq_n_f32(lo), vhi = vdupq_n_f32(hi);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, clamp_vec(vld1q_f32(x + i), vlo, vhi));
    for (; i < n; ++i) y[i] = serial::clamp_value(x[i], lo, hi);
}

inline void clamp_periodic(const float *x, float *y, size_t n, size_t block, const float *lo, const float *hi) {
    for (size_t base = 0; base < n; base += block) {
        const size_t len = n - base < block ? n - base : block;
        size_t j = 0;
        for (; j + 4 <= len; j += 4)
            vst1q_f32(y + base + j, clamp_vec(vld1q_f32(x + base + j), vld1q_f32(lo + j), vld1q_f32(hi + j)));
        for (; j < len; ++j) y[base + j] = serial::clamp_value(x[base + j], lo[j], hi[j]);
    }
}

} // namespace neon
} // namespace pyguard
#endif
