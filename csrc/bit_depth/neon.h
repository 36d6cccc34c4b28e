// Bit-depth reduction, NEON (4 floats per vector; tails go through a small stack buffer).
#pragma once

#include <cstring>

#include "bit_depth/serial.h"

#if PYGUARD_NEON
namespace pyguard {
namespace neon {

struct BitDepthConsts {
    float32x4_t lo, span, inv_span, levels, inv_levels;
};

inline BitDepthConsts bit_depth_consts(const BitDepthParams &p) {
    return {vdupq_n_f32(p.lo), vdupq_n_f32(p.span), vdupq_n_f32(p.inv_span), vdupq_n_f32(p.levels),
            vdupq_n_f32(p.inv_levels)};
}

// r / levels for integral r; see avx512.h for why the FMA-corrected reciprocal is exact on [0, levels].
inline float32x4_t divide_by_levels(float32x4_t r, const BitDepthConsts &c) {
    uint32x4_t in = vandq_u32(vcgeq_f32(r, vdupq_n_f32(0.0f)), vcleq_f32(r, c.levels));
    if (vminvq_u32(in) != 0xFFFFFFFFu) return vdivq_f32(r, c.levels);
    float32x4_t q0 = vmulq_f32(r, c.inv_levels);
    float32x4_t e = vfmsq_f32(r, q0, c.levels); // r - q0 * levels, fused
    float32x4_t q = vfmaq_f32(q0, e, c.inv_levels);
    uint32x4_t sign = vandq_u32(vreinterpretq_u32_f32(r), vdupq_n_u32(0x80000000u));
    return vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(q), sign));
}

template <bool SpanPow2> inline float32x4_t bit_depth_vec(float32x4_t x, const BitDepthConsts &c) {
    float32x4_t s = vsubq_f32(x, c.lo);
    s = SpanPow2 ? vmulq_f32(s, c.inv_span) : vdivq_f32(s, c.span);
    float32x4_t r = vrndnq_f32(vmulq_f32(s, c.levels));
    float32x4_t q = divide_by_levels(r, c);
    return vaddq_f32(vmulq_f32(q, c.span), c.lo);
}

template <bool SpanPow2> inline void bit_depth_f32_loop(const float *x, float *y, size_t n, const BitDepthConsts &c) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float32x4_t a = bit_depth_vec<SpanPow2>(vld1q_f32(x + i), c);
        float32x4_t b = bit_depth_vec<SpanPow2>(vld1q_f32(x + i + 4), c);
        vst1q_f32(y + i, a);
        vst1q_f32(y + i + 4, b);
    }
    for (; i < n; i += 4) {
        size_t left = n - i < 4 ? n - i : 4;
        float buf[4] = {0, 0, 0, 0};
        std::memcpy(buf, x + i, left * sizeof(float));
        vst1q_f32(buf, bit_depth_vec<SpanPow2>(vld1q_f32(buf), c));
        std::memcpy(y + i, buf, left * sizeof(float));
    }
}

inline void bit_depth_f32(const float *x, float *y, size_t n, const BitDepthParams &p) {
    const BitDepthConsts c = bit_depth_consts(p);
    if (p.span_pow2)
        bit_depth_f32_loop<true>(x, y, n, c);
    else
        bit_depth_f32_loop<false>(x, y, n, c);
}

// uint8: the exact integer formulas of avx512.h, 16 values per step.
inline uint32x4_t bit_depth_u8_vec(uint32x4_t v32, float32x4_t levels, float32x4_t half_levels,
                                   float32x4_t inv_levels) {
    float32x4_t v = vcvtq_f32_u32(v32);
    float32x4_t a = vaddq_f32(vmulq_f32(v, levels), vdupq_n_f32(127.5f));
    float32x4_t q = vrndq_f32(vmulq_f32(a, vdupq_n_f32(1.0f / 255.0f)));
    float32x4_t b = vaddq_f32(vmulq_f32(q, vdupq_n_f32(255.0f)), half_levels);
    return vcvtq_u32_f32(vmulq_f32(b, inv_levels));
}

inline uint8x16_t bit_depth_u8_block(uint8x16_t bytes, float32x4_t m, float32x4_t h, float32x4_t inv) {
    uint16x8_t lo = vmovl_u8(vget_low_u8(bytes)), hi = vmovl_u8(vget_high_u8(bytes));
    uint32x4_t r0 = bit_depth_u8_vec(vmovl_u16(vget_low_u16(lo)), m, h, inv);
    uint32x4_t r1 = bit_depth_u8_vec(vmovl_u16(vget_high_u16(lo)), m, h, inv);
    uint32x4_t r2 = bit_depth_u8_vec(vmovl_u16(vget_low_u16(hi)), m, h, inv);
    uint32x4_t r3 = bit_depth_u8_vec(vmovl_u16(vget_high_u16(hi)), m, h, inv);
    uint16x8_t a = vcombine_u16(vmovn_u32(r0), vmovn_u32(r1));
    uint16x8_t b = vcombine_u16(vmovn_u32(r2), vmovn_u32(r3));
    return vcombine_u8(vmovn_u16(a), vmovn_u16(b));
}

inline void bit_depth_u8(const uint8_t *x, uint8_t *y, size_t n, int bits) {
    const float mf = static_cast<float>((1 << bits) - 1);
    const float32x4_t m = vdupq_n_f32(mf), h = vdupq_n_f32(mf * 0.5f), inv = vdupq_n_f32(1.0f / mf);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) vst1q_u8(y + i, bit_depth_u8_block(vld1q_u8(x + i), m, h, inv));
    if (i < n) {
        uint8_t buf[16] = {};
        std::memcpy(buf, x + i, n - i);
        vst1q_u8(buf, bit_depth_u8_block(vld1q_u8(buf), m, h, inv));
        std::memcpy(y + i, buf, n - i);
    }
}

} // namespace neon
} // namespace pyguard
#endif
