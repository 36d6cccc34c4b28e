// Per-sample input checks, NEON: per-lane counters (subtracting all-ones masks), flushed to 64 bits in
// blocks so they never wrap.
#pragma once

#include <cstring>

#include "checks/serial.h"

#if PYGUARD_NEON
namespace pyguard {
namespace neon {

struct CheckLaneCounts {
    uint32x4_t nonfinite = vdupq_n_u32(0), out_of_range = vdupq_n_u32(0), off_grid = vdupq_n_u32(0);
};

// Classifies the lanes selected by `valid` (all ones or zero per lane) into the per-lane counters.
template <bool Grid>
inline void checks_vec(float32x4_t v, uint32x4_t valid, const CheckParams &p, CheckLaneCounts &acc) {
    const uint32x4_t finite = vandq_u32(vcltq_f32(vabsq_f32(v), vdupq_n_f32(INFINITY)), valid);
    const uint32x4_t outside = vorrq_u32(vcltq_f32(v, vdupq_n_f32(p.lo)), vcgtq_f32(v, vdupq_n_f32(p.hi)));
    acc.nonfinite = vsubq_u32(acc.nonfinite, vbicq_u32(valid, finite));
    acc.out_of_range = vsubq_u32(acc.out_of_range, vandq_u32(finite, outside));
    if (Grid) {
        const uint32x4_t inside = vbicq_u32(finite, outside);
        const float32x4_t t = vmulq_f32(vsubq_f32(v, vdupq_n_f32(p.lo)), vdupq_n_f32(p.scale));
        const float32x4_t distance = vabsq_f32(vsubq_f32(t, vrndnq_f32(t)));
        const uint32x4_t off = vandq_u32(vcgtq_f32(distance, vdupq_n_f32(p.tolerance)), inside);
        acc.off_grid = vsubq_u32(acc.off_grid, off);
    }
}

template <bool Grid> inline void checks_f32_loop(const float *x, size_t n, const CheckParams &p, CheckCounts &out) {
    const uint32x4_t all = vdupq_n_u32(0xFFFFFFFFu);
    const size_t block = size_t(1) << 24; // elements per block: per-lane counts stay below 2^23
    size_t i = 0;
    while (i + 4 <= n) {
        const size_t end = (n - i) / 4 * 4 < block ? i + (n - i) / 4 * 4 : i + block;
        CheckLaneCounts acc;
        for (; i < end; i += 4) checks_vec<Grid>(vld1q_f32(x + i), all, p, acc);
        out.nonfinite += static_cast<int64_t>(vaddlvq_u32(acc.nonfinite));
        out.out_of_range += static_cast<int64_t>(vaddlvq_u32(acc.out_of_range));
        out.off_grid += static_cast<int64_t>(vaddlvq_u32(acc.off_grid));
    }
    if (i < n) {
        float buf[4] = {0, 0, 0, 0};
        std::memcpy(buf, x + i, (n - i) * sizeof(float));
        const uint32_t lane_ids[4] = {0, 1, 2, 3};
        const uint32x4_t valid = vcltq_u32(vld1q_u32(lane_ids), vdupq_n_u32(static_cast<uint32_t>(n - i)));
        CheckLaneCounts acc;
        checks_vec<Grid>(vld1q_f32(buf), valid, p, acc);
        out.nonfinite += static_cast<int64_t>(vaddlvq_u32(acc.nonfinite));
        out.out_of_range += static_cast<int64_t>(vaddlvq_u32(acc.out_of_range));
        out.off_grid += static_cast<int64_t>(vaddlvq_u32(acc.off_grid));
    }
}

inline void checks_f32(const float *x, size_t n, const CheckParams &p, CheckCounts &out) {
    if (p.grid)
        checks_f32_loop<true>(x, n, p, out);
    else
        checks_f32_loop<false>(x, n, p, out);
}

// uint8: 16 bytes per step; the 0/1 flags add up in 16-bit lanes, flushed every 2^12 steps.
inline void checks_u8(const uint8_t *x, size_t n, uint8_t lo, uint8_t hi, CheckCounts &out) {
    const uint8x16_t vlo = vdupq_n_u8(lo), vhi = vdupq_n_u8(hi);
    uint64_t count = 0;
    size_t i = 0;
    while (i + 16 <= n) {
        const size_t steps = (n - i) / 16 < 4096 ? (n - i) / 16 : 4096;
        uint16x8_t acc = vdupq_n_u16(0);
        for (size_t s = 0; s < steps; ++s, i += 16) {
            const uint8x16_t v = vld1q_u8(x + i);
            const uint8x16_t bad = vshrq_n_u8(vorrq_u8(vcltq_u8(v, vlo), vcgtq_u8(v, vhi)), 7);
            acc = vpadalq_u8(acc, bad);
        }
        count += vaddlvq_u16(acc);
    }
    for (; i < n; ++i) count += x[i] < lo || x[i] > hi;
    out.out_of_range += static_cast<int64_t>(count);
}

} // namespace neon
} // namespace pyguard
#endif
