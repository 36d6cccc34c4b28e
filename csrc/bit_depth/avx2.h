// Bit-depth reduction, AVX2 + FMA (8 floats per vector; tails go through a small stack buffer).
#pragma once

#include <cstring>

#include "bit_depth/serial.h"

#if PYGUARD_X86
PYGUARD_TARGET_AVX2_BEGIN
namespace pyguard {
namespace avx2 {

struct BitDepthConsts {
    __m256 lo, span, inv_span, levels, inv_levels, table;
    __m256i max_level;
};

inline BitDepthConsts bit_depth_consts(const BitDepthParams &p) {
    return {_mm256_set1_ps(p.lo),     _mm256_set1_ps(p.span),       _mm256_set1_ps(p.inv_span),
            _mm256_set1_ps(p.levels), _mm256_set1_ps(p.inv_levels), _mm256_loadu_ps(p.table),
            _mm256_set1_epi32((1 << p.bits) - 1)};
}

// How (x - lo) / span is formed; every mode gives the same bits as the division (see serial.h).
enum class Scale { unit, pow2, divide };

template <Scale S> inline __m256 scaled_levels(__m256 x, const BitDepthConsts &c) {
    if (S == Scale::unit) return _mm256_mul_ps(x, c.levels);
    __m256 s = _mm256_sub_ps(x, c.lo);
    s = S == Scale::pow2 ? _mm256_mul_ps(s, c.inv_span) : _mm256_div_ps(s, c.span);
    return _mm256_mul_ps(s, c.levels);
}

// r / levels for integral r; see avx512.h for why the FMA-corrected reciprocal is exact on [0, levels].
inline __m256 divide_by_levels(__m256 r, const BitDepthConsts &c) {
    __m256 in = _mm256_and_ps(_mm256_cmp_ps(r, _mm256_setzero_ps(), _CMP_GE_OQ),
                              _mm256_cmp_ps(r, c.levels, _CMP_LE_OQ));
    if (_mm256_movemask_ps(in) != 0xFF) return _mm256_div_ps(r, c.levels);
    __m256 q0 = _mm256_mul_ps(r, c.inv_levels);
    __m256 e = _mm256_fnmadd_ps(q0, c.levels, r);
    __m256 q = _mm256_fmadd_ps(e, c.inv_levels, q0);
    return _mm256_or_ps(q, _mm256_and_ps(r, _mm256_set1_ps(-0.0f)));
}

template <Scale S> inline __m256 bit_depth_vec(__m256 x, const BitDepthConsts &c) {
    __m256 r = _mm256_round_ps(scaled_levels<S>(x, c), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 q = divide_by_levels(r, c);
    return _mm256_add_ps(_mm256_mul_ps(q, c.span), c.lo);
}

// Up to 3 bits the 8 possible results fit one register: look the rounded level up (NaN and huge
// values convert to INT_MIN, out of range, and take the full formula like any lane off [0, levels]).
template <Scale S> inline __m256 bit_depth_vec_table(__m256 x, const BitDepthConsts &c) {
    __m256 r = _mm256_round_ps(scaled_levels<S>(x, c), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256i level = _mm256_cvttps_epi32(r);
    __m256i in = _mm256_cmpeq_epi32(_mm256_min_epu32(level, c.max_level), level);
    if (_mm256_movemask_ps(_mm256_castsi256_ps(in)) != 0xFF) return bit_depth_vec<S>(x, c);
    return _mm256_permutevar8x32_ps(c.table, level);
}

template <Scale S, bool Table> inline __m256 bit_depth_any(__m256 x, const BitDepthConsts &c) {
    return Table ? bit_depth_vec_table<S>(x, c) : bit_depth_vec<S>(x, c);
}

template <Scale S, bool Table>
inline void bit_depth_f32_loop(const float *x, float *y, size_t n, const BitDepthConsts &c) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a = bit_depth_any<S, Table>(_mm256_loadu_ps(x + i), c);
        __m256 b = bit_depth_any<S, Table>(_mm256_loadu_ps(x + i + 8), c);
        _mm256_storeu_ps(y + i, a);
        _mm256_storeu_ps(y + i + 8, b);
    }
    for (; i < n; i += 8) {
        size_t left = n - i < 8 ? n - i : 8;
        float buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        std::memcpy(buf, x + i, left * sizeof(float));
        _mm256_storeu_ps(buf, bit_depth_any<S, Table>(_mm256_loadu_ps(buf), c));
        std::memcpy(y + i, buf, left * sizeof(float));
    }
}

template <Scale S> inline void bit_depth_f32_scaled(const float *x, float *y, size_t n, const BitDepthParams &p) {
    const BitDepthConsts c = bit_depth_consts(p);
    if (p.table_ok && p.bits <= 3)
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

// uint8: the exact integer formulas of avx512.h, 8 values per vector.
struct BitDepthU8Consts {
    __m256 levels, half_levels, inv_levels;
};

inline __m256i bit_depth_u8_vec(__m256i v32, const BitDepthU8Consts &c) {
    __m256 v = _mm256_cvtepi32_ps(v32);
    __m256 a = _mm256_add_ps(_mm256_mul_ps(v, c.levels), _mm256_set1_ps(127.5f));
    __m256 q = _mm256_round_ps(_mm256_mul_ps(a, _mm256_set1_ps(1.0f / 255.0f)), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 b = _mm256_add_ps(_mm256_mul_ps(q, _mm256_set1_ps(255.0f)), c.half_levels);
    return _mm256_cvttps_epi32(_mm256_mul_ps(b, c.inv_levels));
}

// 32 bytes in, 32 bytes out: four 8-lane conversions, packed back in order.
inline __m256i bit_depth_u8_block(const uint8_t *x, const BitDepthU8Consts &c) {
    __m256i r[4];
    for (int k = 0; k < 4; ++k) {
        __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i *>(x + 8 * k));
        r[k] = bit_depth_u8_vec(_mm256_cvtepu8_epi32(bytes), c);
    }
    __m256i ab = _mm256_packus_epi32(r[0], r[1]);
    __m256i cd = _mm256_packus_epi32(r[2], r[3]);
    __m256i packed = _mm256_packus_epi16(ab, cd);
    return _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

inline void bit_depth_u8(const uint8_t *x, uint8_t *y, size_t n, int bits) {
    const float m = static_cast<float>((1 << bits) - 1);
    const BitDepthU8Consts c{_mm256_set1_ps(m), _mm256_set1_ps(m * 0.5f), _mm256_set1_ps(1.0f / m)};
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        _mm256_storeu_si256(reinterpret_cast<__m256i *>(y + i), bit_depth_u8_block(x + i, c));
    if (i < n) {
        uint8_t buf[32] = {};
        std::memcpy(buf, x + i, n - i);
        _mm256_storeu_si256(reinterpret_cast<__m256i *>(buf), bit_depth_u8_block(buf, c));
        std::memcpy(y + i, buf, n - i);
    }
}

} // namespace avx2
} // namespace pyguard
PYGUARD_TARGET_END
#endif
