// AVX2 variant: 8 float keys or 32 bytes per vector along the row (W*C elements); pipeline in rows.inc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../isa.h"
#include "common.h"

#if PYGUARD_X86
PYGUARD_TARGET_AVX2_BEGIN
namespace pyguard {
namespace median_avx2 {

#include "networks.inc"

// GCC folds a loaded vector into every min and max that uses it, loading it again each time; loads are
// the bottleneck here, so keys are loaded once into a register and the compiler cannot see through it.
template <class V> inline V opaque(V v) {
    __asm__("" : "+x"(v));
    return v;
}

// Floats as raw int32 bits (see ScalarBits): valid while no value is negative, -0.0 or NaN, which M
// tracks as the unsigned maximum of the bits seen.
struct F32Bits {
    using Scalar = ScalarBits;
    using T = float;
    using K = int32_t;
    using V = __m256i;
    using M = __m256i;
    static constexpr size_t lanes = 8;
    static constexpr int strip2 = 2; // vectors per 2x2 strip (strip2 in rows.inc): 16 registers
    static V load(const K *p) { return opaque(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p))); }
    static void store(K *p, V v) { _mm256_storeu_si256(reinterpret_cast<__m256i *>(p), v); }
    static V mn(V a, V b) { return _mm256_min_epi32(a, b); }
    static V mx(V a, V b) { return _mm256_max_epi32(a, b); }
    static M nan_none() { return _mm256_setzero_si256(); }
    static bool nan_any(M m) {
        const __m256i inf = _mm256_set1_epi32(0x7F800000);
        return _mm256_movemask_epi8(_mm256_cmpeq_epi32(_mm256_max_epu32(m, inf), inf)) != -1;
    }
    static M check(M m, V v) { return _mm256_max_epu32(m, v); }
    static V load_in(const T *p, M &m) {
        const V v = opaque(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p)));
        m = check(m, v);
        return v;
    }
    static void store_out(T *p, V v) { _mm256_storeu_si256(reinterpret_cast<__m256i *>(p), v); }
};

struct F32 {
    using Scalar = ScalarOps<float>;
    using T = float;
    using K = int32_t;
    static constexpr bool has_bits = true;
    using Bits = F32Bits;
    static constexpr bool direct_2x2 = false;
    using V = __m256i;
    using M = __m256; // lanes that saw a NaN (all ones)
    static constexpr size_t lanes = 8;
    static constexpr int strip2 = 2; // vectors per 2x2 strip (strip2 in rows.inc): 16 registers
    static V load(const K *p) { return opaque(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p))); }
    static void store(K *p, V v) { _mm256_storeu_si256(reinterpret_cast<__m256i *>(p), v); }
    static V mn(V a, V b) { return _mm256_min_epi32(a, b); }
    static V mx(V a, V b) { return _mm256_max_epi32(a, b); }
    static M nan_none() { return _mm256_setzero_ps(); }
    static bool nan_any(M m) { return _mm256_movemask_ps(m) != 0; }
    static M check(M m, V) { return m; }
    // Order-preserving int32 key of float bits (see median_detail::float_key); its own inverse.
    static V flip(V bits) { return _mm256_xor_si256(bits, _mm256_srli_epi32(_mm256_srai_epi32(bits, 31), 1)); }
    static V load_in(const T *p, M &nan) {
        const __m256 v = _mm256_loadu_ps(p);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        return flip(_mm256_castps_si256(v));
    }
    static void store_out(T *p, V keys) { _mm256_storeu_ps(p, _mm256_castsi256_ps(flip(keys))); }
};

struct U8 {
    using Scalar = ScalarOps<uint8_t>;
    using T = uint8_t;
    using K = uint8_t;
    static constexpr bool has_bits = false;
    static constexpr bool direct_2x2 = true; // bytes need no conversion: 2x2 reads the input rows directly
    using Direct = U8;
    using V = __m256i;
    using M = bool;
    static constexpr size_t lanes = 32;
    static constexpr int strip2 = 2; // vectors per 2x2 strip (strip2 in rows.inc): 16 registers
    static V load(const K *p) { return opaque(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p))); }
    static void store(K *p, V v) { _mm256_storeu_si256(reinterpret_cast<__m256i *>(p), v); }
    static V mn(V a, V b) { return _mm256_min_epu8(a, b); }
    static V mx(V a, V b) { return _mm256_max_epu8(a, b); }
    static M nan_none() { return false; }
    static bool nan_any(M) { return false; }
    static M check(M m, V) { return m; }
    static V load_in(const T *p, M &) { return load(p); }
    static void store_out(T *p, V v) { store(p, v); }
};

#include "rows.inc"

} // namespace median_avx2
} // namespace pyguard
PYGUARD_TARGET_END
#endif
