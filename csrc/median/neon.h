// NEON variant: 4 floats or 16 bytes per vector along the row (W*C elements), row pipeline in rows.inc.
// Float min/max use compare + select rather than vminq/vmaxq: those order -0.0 below +0.0, while the
// reference (and x86) return the second operand on ties, and every variant must return the same bits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../isa.h"
#include "common.h"

#if PYGUARD_NEON
namespace pyguard {
namespace median_neon {

#include "networks.inc"

struct F32 {
    using T = float;
    using V = float32x4_t;
    using M = uint32x4_t; // lanes that were not NaN (all ones)
    static constexpr size_t lanes = 4;
    static V load(const T *p) { return vld1q_f32(p); }
    static void store(T *p, V v) { vst1q_f32(p, v); }
    static V mn(V a, V b) { return vbslq_f32(vcltq_f32(a, b), a, b); }
    static V mx(V a, V b) { return vbslq_f32(vcgtq_f32(a, b), a, b); }
    static M nan_none() { return vdupq_n_u32(0xFFFFFFFFu); }
    static M nan_add(M m, V v) { return vandq_u32(m, vceqq_f32(v, v)); }
    static bool nan_any(M m) { return vminvq_u32(m) == 0; }
};

struct U8 {
    using T = uint8_t;
    using V = uint8x16_t;
    using M = bool;
    static constexpr size_t lanes = 16;
    static V load(const T *p) { return vld1q_u8(p); }
    static void store(T *p, V v) { vst1q_u8(p, v); }
    static V mn(V a, V b) { return vminq_u8(a, b); }
    static V mx(V a, V b) { return vmaxq_u8(a, b); }
    static M nan_none() { return false; }
    static M nan_add(M m, V) { return m; }
    static bool nan_any(M) { return false; }
};

#include "rows.inc"

} // namespace median_neon
} // namespace pyguard
#endif
