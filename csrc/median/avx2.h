// AVX2 variant: 8 floats or 32 bytes per vector along the row (W*C elements), row pipeline in rows.inc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../isa.h"
#include "common.h"

#if PYGUARD_X86
PYGUARD_TARGET_AVX2_BEGIN
namespace pyguard {
namespace median_avx2 {

#include "networks.inc"

struct F32 {
    using T = float;
    using V = __m256;
    using M = __m256; // lanes that were NaN (all ones)
    static constexpr size_t lanes = 8;
    static V load(const T *p) { return _mm256_loadu_ps(p); }
    static void store(T *p, V v) { _mm256_storeu_ps(p, v); }
    static V mn(V a, V b) { return _mm256_min_ps(a, b); }
    static V mx(V a, V b) { return _mm256_max_ps(a, b); }
    static M nan_none() { return _mm256_setzero_ps(); }
    static M nan_add(M m, V v) { return _mm256_or_ps(m, _mm256_cmp_ps(v, v, _CMP_UNORD_Q)); }
    static bool nan_any(M m) { return _mm256_movemask_ps(m) != 0; }
};

struct U8 {
    using T = uint8_t;
    using V = __m256i;
    using M = bool;
    static constexpr size_t lanes = 32;
    static V load(const T *p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i *>(p)); }
    static void store(T *p, V v) { _mm256_storeu_si256(reinterpret_cast<__m256i *>(p), v); }
    static V mn(V a, V b) { return _mm256_min_epu8(a, b); }
    static V mx(V a, V b) { return _mm256_max_epu8(a, b); }
    static M nan_none() { return false; }
    static M nan_add(M m, V) { return m; }
    static bool nan_any(M) { return false; }
};

#include "rows.inc"

} // namespace median_avx2
} // namespace pyguard
PYGUARD_TARGET_END
#endif
