// Bit-depth reduction, AVX-512 (16 floats per vector, masked tails).
#pragma once

#include "bit_depth/serial.h"

#if PYGUARD_X86
PYGUARD_TARGET_AVX512_BEGIN
namespace pyguard {
namespace avx512 {

struct BitDepthConsts {
    __m512 lo, span, inv_span, levels, inv_levels, table_lo, table_hi;
    __m512i max_level;
};

inline BitDepthConsts bit_depth_consts(const BitDepthParams &p) {
    return {_mm512_set1_ps(p.lo),         _mm512_set1_ps(p.span),         _mm512_set1_ps(p.inv_span),
            _mm512_set1_ps(p.levels),     _mm512_set1_ps(p.inv_levels),   _mm512_loadu_ps(p.table),
            _mm512_loadu_ps(p.table + 16), _mm512_set1_epi32((1 << p.bits) - 1)};
}

// How (x - lo) / span is formed; every mode gives the same bits as the division (see serial.h).
enum class Scale { unit, pow2, divide };

template <Scale S> inline __m512 scaled_levels(__m512 x, const BitDepthConsts &c) {
    if (S == Scale::unit) return _mm512_mul_ps(x, c.levels);
    __m512 s = _mm512_sub_ps(x, c.lo);
    s = S == Scale::pow2 ? _mm512_mul_ps(s, c.inv_span) : _mm512_div_ps(s, c.span);
    return _mm512_mul_ps(s, c.levels);
}

// r / levels for integral r. When every lane is in [0, levels], a reciprocal multiply plus one exact FMA
// correction gives the correctly rounded quotient (tested exhaustively for every r and bit depth);
// the sign of r is copied back so -0 / m stays -0. Otherwise fall back to the division.
inline __m512 divide_by_levels(__m512 r, const BitDepthConsts &c) {
    __mmask16 in = _mm512_cmp_ps_mask(r, _mm512_setzero_ps(), _CMP_GE_OQ) &
                   _mm512_cmp_ps_mask(r, c.levels, _CMP_LE_OQ);
    if (in != 0xFFFF) return _mm512_div_ps(r, c.levels);
    __m512 q0 = _mm512_mul_ps(r, c.inv_levels);
    __m512 e = _mm512_fnmadd_ps(q0, c.levels, r);
    __m512 q = _mm512_fmadd_ps(e, c.inv_levels, q0);
    __m512 sign = _mm512_and_ps(r, _mm512_set1_ps(-0.0f));
    return _mm512_or_ps(q, sign);
}

// The full formula for any input.
template <Scale S> inline __m512 bit_depth_vec(__m512 x, const BitDepthConsts &c) {
    __m512 r = _mm512_maskz_roundscale_ps(0xFFFF, scaled_levels<S>(x, c), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 q = divide_by_levels(r, c);
    return _mm512_add_ps(_mm512_mul_ps(q, c.span), c.lo);
}

// Up to 5 bits the 32 possible results sit in two registers: round to an integer level (NaN and
// huge values convert to INT_MIN, out of range) and look it up; any lane off [0, levels] takes the
// full formula instead.
template <Scale S> inline __m512 bit_depth_vec_table(__m512 x, const BitDepthConsts &c) {
    __m512i level = _mm512_cvt_roundps_epi32(scaled_levels<S>(x, c), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    if (_mm512_cmple_epu32_mask(level, c.max_level) != 0xFFFF) return bit_depth_vec<S>(x, c);
    return _mm512_permutex2var_ps(c.table_lo, level, c.table_hi);
}

template <Scale S, bool Table> inline __m512 bit_depth_any(__m512 x, const BitDepthConsts &c) {
    return Table ? bit_depth_vec_table<S>(x, c) : bit_depth_vec<S>(x, c);
}

template <Scale S, bool Table>
inline void bit_depth_f32_loop(const float *x, float *y, size_t n, const BitDepthConsts &c) {
    size_t i = 0;
    // A masked head first, so that the main loop's stores are 64-byte aligned: NumPy's large arrays sit
    // 16 bytes past a page, and stores split over two lines cost 1 us of 13.5 on 3x224x224 (Zen 5).
    const size_t misaligned = reinterpret_cast<uintptr_t>(y) % 64;
    const size_t head = misaligned % sizeof(float) == 0 ? (64 - misaligned) % 64 / sizeof(float) : 0;
    if (head != 0 && head + 32 <= n) {
        const __mmask16 k = static_cast<__mmask16>((1u << head) - 1u);
        _mm512_mask_storeu_ps(y, k, bit_depth_any<S, Table>(_mm512_maskz_loadu_ps(k, x), c));
        i = head;
    }
    for (; i + 32 <= n; i += 32) {
        __m512 a = bit_depth_any<S, Table>(_mm512_loadu_ps(x + i), c);
        __m512 b = bit_depth_any<S, Table>(_mm512_loadu_ps(x + i + 16), c);
        _mm512_storeu_ps(y + i, a);
        _mm512_storeu_ps(y + i + 16, b);
    }
    for (; i < n; i += 16) {
        size_t left = n - i;
        __mmask16 k = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
        _mm512_mask_storeu_ps(y + i, k, bit_depth_any<S, Table>(_mm512_maskz_loadu_ps(k, x + i), c));
    }
}

template <Scale S> inline void bit_depth_f32_scaled(const float *x, float *y, size_t n, const BitDepthParams &p) {
    const BitDepthConsts c = bit_depth_consts(p);
    if (p.table_ok && p.bits <= 5)
        bit_depth_f32_loop<S, true>(x, y, n, c);
    else
        bit_depth_f32_loop<S, false>(x, y, n, c);
}

inline void bit_depth_f32(const float *x, float *y, size_t n, const BitDepthParams &p) {
    if (p.unit)
        bit_depth_f32_scaled<Scale::unit>(x, y, n, p);
    else if (p.span_pow2)
        bit_depth_f32_scaled<Scale::pow2>(x, y, n, p);
    else
        bit_depth_f32_scaled<Scale::divide>(x, y, n, p);
}

// uint8 in exact arithmetic carried in float32 (all integers < 2^17, products and sums exact):
// q = floor((v*m + 127.5) / 255) = round(v*m / 255), out = floor((q*255 + m/2) / m) = round(q*255 / m).
// Neither quotient can be a tie (255 and m are odd) and each is at least 1/510 away from the truncation
// point, far more than the error of multiplying by a rounded reciprocal; tested against the table.
struct BitDepthU8Consts {
    __m512 levels, half_levels, inv_levels;
};

inline __m512i bit_depth_u8_vec(__m512i v32, const BitDepthU8Consts &c) {
    __m512 v = _mm512_cvtepi32_ps(v32);
    __m512 a = _mm512_add_ps(_mm512_mul_ps(v, c.levels), _mm512_set1_ps(127.5f));
    __m512 q = _mm512_maskz_roundscale_ps(0xFFFF, _mm512_mul_ps(a, _mm512_set1_ps(1.0f / 255.0f)),
                                    _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m512 b = _mm512_add_ps(_mm512_mul_ps(q, _mm512_set1_ps(255.0f)), c.half_levels);
    return _mm512_cvttps_epi32(_mm512_mul_ps(b, c.inv_levels));
}

inline void bit_depth_u8(const uint8_t *x, uint8_t *y, size_t n, int bits) {
    const float m = static_cast<float>((1 << bits) - 1);
    const BitDepthU8Consts c{_mm512_set1_ps(m), _mm512_set1_ps(m * 0.5f), _mm512_set1_ps(1.0f / m)};
    for (size_t i = 0; i < n; i += 16) {
        size_t left = n - i;
        __mmask16 k = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
        __m128i bytes = _mm_maskz_loadu_epi8(k, x + i);
        __m512i out = bit_depth_u8_vec(_mm512_cvtepu8_epi32(bytes), c);
        _mm_mask_storeu_epi8(y + i, k, _mm512_cvtepi32_epi8(out));
    }
}

} // namespace avx512
} // namespace pyguard
PYGUARD_TARGET_AVX512_END
#endif
