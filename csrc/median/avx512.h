// AVX-512 variant: 16 floats or 64 bytes per vector along the row (W*C elements), row pipeline in rows.inc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../isa.h"
#include "common.h"

#if PYGUARD_X86
// GCC 12 flags _mm512_undefined_ps() inside its own min/max intrinsics as maybe-uninitialized once the
// 5x5 network is inlined; the value is a don't-care operand of an unmasked instruction.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
PYGUARD_TARGET_AVX512_BEGIN
namespace pyguard {
namespace median_avx512 {

#include "networks.inc"

struct F32 {
    using T = float;
    using V = __m512;
    using M = __mmask16; // lanes that were NaN
    static constexpr size_t lanes = 16;
    static V load(const T *p) { return _mm512_loadu_ps(p); }
    static void store(T *p, V v) { _mm512_storeu_ps(p, v); }
    static V mn(V a, V b) { return _mm512_min_ps(a, b); }
    static V mx(V a, V b) { return _mm512_max_ps(a, b); }
    static M nan_none() { return 0; }
    static M nan_add(M m, V v) { return static_cast<M>(m | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q)); }
    static bool nan_any(M m) { return m != 0; }
};

struct U8 {
    using T = uint8_t;
    using V = __m512i;
    using M = bool;
    static constexpr size_t lanes = 64;
    static V load(const T *p) { return _mm512_loadu_si512(p); }
    static void store(T *p, V v) { _mm512_storeu_si512(p, v); }
    static V mn(V a, V b) { return _mm512_min_epu8(a, b); }
    static V mx(V a, V b) { return _mm512_max_epu8(a, b); }
    static M nan_none() { return false; }
    static M nan_add(M m, V) { return m; }
    static bool nan_any(M) { return false; }
};

#include "rows.inc"

} // namespace median_avx512
} // namespace pyguard
PYGUARD_TARGET_END
#pragma GCC diagnostic pop
#endif
