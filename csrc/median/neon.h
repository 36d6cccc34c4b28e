// NEON variant: 4 float keys or 16 bytes per vector along the row (W*C elements); pipeline in rows.inc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../isa.h"
#include "common.h"

#if PYGUARD_NEON
namespace pyguard {
namespace median_neon {

#include "networks.inc"

// Floats as raw int32 bits (see ScalarBits): valid while no value is negative, -0.0 or NaN, which M
// tracks as the unsigned maximum of the bits seen.
struct F32Bits {
    using Scalar = ScalarBits;
    using T = float;
    using K = int32_t;
    using V = int32x4_t;
    using M = uint32x4_t;
    static constexpr size_t lanes = 4;
    static constexpr int strip2 = 4; // vectors per 2x2 strip (strip2 in rows.inc)
    static V load(const K *p) { return vld1q_s32(p); }
    static void store(K *p, V v) { vst1q_s32(p, v); }
    static V mn(V a, V b) { return vminq_s32(a, b); }
    static V mx(V a, V b) { return vmaxq_s32(a, b); }
    static M nan_none() { return vdupq_n_u32(0); }
    static bool nan_any(M m) { return vmaxvq_u32(m) > 0x7F800000u; }
    static M check(M m, V v) { return vmaxq_u32(m, vreinterpretq_u32_s32(v)); }
    static V load_in(const T *p, M &m) {
        const V v = vreinterpretq_s32_f32(vld1q_f32(p));
        m = check(m, v);
        return v;
    }
    static void store_out(T *p, V v) { vst1q_f32(p, vreinterpretq_f32_s32(v)); }
};

struct F32 {
    using Scalar = ScalarOps<float>;
    using T = float;
    using K = int32_t;
    static constexpr bool has_bits = true;
    using Bits = F32Bits;
    static constexpr bool direct_2x2 = false;
    using V = int32x4_t;
    using M = uint32x4_t; // lanes that saw no NaN so far (all ones)
    static constexpr size_t lanes = 4;
    static constexpr int strip2 = 4; // vectors per 2x2 strip (strip2 in rows.inc)
    static V load(const K *p) { return vld1q_s32(p); }
    static void store(K *p, V v) { vst1q_s32(p, v); }
    static V mn(V a, V b) { return vminq_s32(a, b); }
    static V mx(V a, V b) { return vmaxq_s32(a, b); }
    static M nan_none() { return vdupq_n_u32(0xFFFFFFFFu); }
    static bool nan_any(M m) { return vminvq_u32(m) == 0; }
    static M check(M m, V) { return m; }
    // Order-preserving int32 key of float bits (see median_detail::float_key); its own inverse.
    static V flip(V bits) {
        const uint32x4_t magnitude = vshrq_n_u32(vreinterpretq_u32_s32(vshrq_n_s32(bits, 31)), 1);
        return veorq_s32(bits, vreinterpretq_s32_u32(magnitude));
    }
    static V load_in(const T *p, M &nan) {
        const float32x4_t v = vld1q_f32(p);
        nan = vandq_u32(nan, vceqq_f32(v, v));
        return flip(vreinterpretq_s32_f32(v));
    }
    static void store_out(T *p, V keys) { vst1q_f32(p, vreinterpretq_f32_s32(flip(keys))); }
};

struct U8 {
    using Scalar = ScalarOps<uint8_t>;
    using T = uint8_t;
    using K = uint8_t;
    static constexpr bool has_bits = false;
    static constexpr bool direct_2x2 = true; // bytes need no conversion: 2x2 reads the input rows directly
    using Direct = U8;
    using V = uint8x16_t;
    using M = bool;
    static constexpr size_t lanes = 16;
    static constexpr int strip2 = 4; // vectors per 2x2 strip (strip2 in rows.inc)
    static V load(const K *p) { return vld1q_u8(p); }
    static void store(K *p, V v) { vst1q_u8(p, v); }
    static V mn(V a, V b) { return vminq_u8(a, b); }
    static V mx(V a, V b) { return vmaxq_u8(a, b); }
    static M nan_none() { return false; }
    static bool nan_any(M) { return false; }
    static M check(M m, V) { return m; }
    static V load_in(const T *p, M &) { return load(p); }
    static void store_out(T *p, V v) { store(p, v); }
};

#include "rows.inc"

} // namespace median_neon
} // namespace pyguard
#endif
