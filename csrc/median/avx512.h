// AVX-512 variant: 16 float keys or 64 bytes per vector along the row (W*C elements); pipeline in rows.inc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../isa.h"
#include "common.h"

#if PYGUARD_X86
PYGUARD_TARGET_AVX512_BEGIN
namespace pyguard {
namespace median_avx512 {

#include "networks.inc"

// GCC folds a loaded vector into every min and max that uses it, loading it again each time; loads are
// the bottleneck here, so keys are loaded once into a register and the compiler cannot see through it.
template <class V> inline V opaque(V v) {
    __asm__("" : "+v"(v));
    return v;
}

// Left neighbours of a row's first vector (EdgeLeft in rows.inc): lane k takes lane k - c, and the first
// c lanes (column 0, which reflects onto itself) their own.
inline __m512i edge_index16(size_t c) {
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i vc = _mm512_set1_epi32(static_cast<int>(c));
    return _mm512_mask_sub_epi32(lane, _mm512_cmpge_epi32_mask(lane, vc), lane, vc);
}

// Floats as raw int32 bits (see ScalarBits): valid while no value is negative, -0.0 or NaN, which M
// tracks as the unsigned maximum of the bits seen.
struct F32Bits {
    using Scalar = ScalarBits;
    using T = float;
    using K = int32_t;
    using V = __m512i;
    using M = __m512i;
    static constexpr size_t lanes = 16;
    static constexpr int strip2 = 4; // vectors per 2x2 strip (strip2 in rows.inc)
    static V load(const K *p) { return opaque(_mm512_loadu_si512(p)); }
    static void store(K *p, V v) { _mm512_storeu_si512(p, v); }
    static V mn(V a, V b) { return _mm512_min_epi32(a, b); }
    static V mx(V a, V b) { return _mm512_max_epi32(a, b); }
    static M nan_none() { return _mm512_setzero_si512(); }
    static bool nan_any(M m) { return _mm512_cmpgt_epu32_mask(m, _mm512_set1_epi32(0x7F800000)) != 0; }
    static M check(M m, V v) { return _mm512_max_epu32(m, v); }
    static __m512i edge_index(size_t c) { return edge_index16(c); }
    static V edge_left(V here, __m512i index) { return _mm512_permutexvar_epi32(index, here); }
    static V load_in(const T *p, M &m) {
        const V v = opaque(_mm512_loadu_si512(p));
        m = check(m, v);
        return v;
    }
    static void store_out(T *p, V v) { _mm512_storeu_si512(p, v); }
};

// Floats as floats, for 2x2 (see filter2_direct): vrangeps min/max order -0.0 below +0.0, exactly like
// the int32 keys, so results are the same bits; NaN never gets here.
struct F32Direct {
    using Scalar = ScalarOps<float>;
    using T = float;
    using V = __m512;
    using M = __mmask16; // lanes that saw no NaN so far
    static constexpr size_t lanes = 16;
    static constexpr int strip2 = 4; // vectors per 2x2 strip (strip2 in rows.inc)
    static V mn(V a, V b) { return _mm512_range_ps(a, b, 0x04); } // min, sign from the comparison
    static V mx(V a, V b) { return _mm512_range_ps(a, b, 0x05); } // max, sign from the comparison
    static M nan_none() { return static_cast<M>(0xFFFF); }
    static bool nan_any(M m) { return m != 0xFFFF; }
    static M check(M m, V) { return m; }
    static __m512i edge_index(size_t c) { return edge_index16(c); }
    static V edge_left(V here, __m512i index) { return _mm512_permutexvar_ps(index, here); }
    static V load_in(const T *p, M &nan) {
        const V v = opaque(_mm512_loadu_ps(p));
        nan = _mm512_mask_cmp_ps_mask(nan, v, v, _CMP_ORD_Q);
        return v;
    }
    static void store_out(T *p, V v) { _mm512_storeu_ps(p, v); }
};

struct F32 {
    using Scalar = ScalarOps<float>;
    using T = float;
    using K = int32_t;
    static constexpr bool has_bits = true;
    using Bits = F32Bits;
    static constexpr bool direct_2x2 = true;
    using Direct = F32Direct;
    using V = __m512i;
    using M = __mmask16; // lanes that saw no NaN so far: one masked compare per vector keeps it
    static constexpr size_t lanes = 16;
    static constexpr int strip2 = 4; // vectors per 2x2 strip (strip2 in rows.inc)
    static V load(const K *p) { return opaque(_mm512_loadu_si512(p)); }
    static void store(K *p, V v) { _mm512_storeu_si512(p, v); }
    static V mn(V a, V b) { return _mm512_min_epi32(a, b); }
    static V mx(V a, V b) { return _mm512_max_epi32(a, b); }
    static M nan_none() { return static_cast<M>(0xFFFF); }
    static bool nan_any(M m) { return m != 0xFFFF; }
    static M check(M m, V) { return m; }
    // Order-preserving int32 key of float bits (see median_detail::float_key); its own inverse.
    // bits ^ (sign ? 0x7FFFFFFF : 0) as one ternary-logic op: a ^ (b & c) is truth table 0x78.
    static V flip(V bits) {
        return _mm512_ternarylogic_epi32(bits, _mm512_srai_epi32(bits, 31), _mm512_set1_epi32(0x7FFFFFFF), 0x78);
    }
    static V load_in(const T *p, M &nan) {
        const __m512 v = _mm512_loadu_ps(p);
        nan = _mm512_mask_cmp_ps_mask(nan, v, v, _CMP_ORD_Q);
        return flip(_mm512_castps_si512(v));
    }
    static void store_out(T *p, V keys) { _mm512_storeu_ps(p, _mm512_castsi512_ps(flip(keys))); }
};

struct U8 {
    using Scalar = ScalarOps<uint8_t>;
    using T = uint8_t;
    using K = uint8_t;
    static constexpr bool has_bits = false;
    static constexpr bool direct_2x2 = true; // bytes need no conversion: 2x2 reads the input rows directly
    using Direct = U8;
    using V = __m512i;
    using M = bool;
    static constexpr size_t lanes = 64;
    static constexpr int strip2 = 4; // vectors per 2x2 strip (strip2 in rows.inc)
    static V load(const K *p) { return opaque(_mm512_loadu_si512(p)); }
    static void store(K *p, V v) { _mm512_storeu_si512(p, v); }
    static V mn(V a, V b) { return _mm512_min_epu8(a, b); }
    static V mx(V a, V b) { return _mm512_max_epu8(a, b); }
    static M nan_none() { return false; }
    static bool nan_any(M) { return false; }
    static M check(M m, V) { return m; }
    static V load_in(const T *p, M &) { return load(p); }
    static void store_out(T *p, V v) { store(p, v); }
};

#include "rows.inc"

} // namespace median_avx512
} // namespace pyguard
PYGUARD_TARGET_AVX512_END
#endif
