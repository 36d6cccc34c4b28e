// Per-sample input checks, AVX-512: compare masks counted with popcnt, masked tails.
#pragma once

#include "checks/serial.h"

#if PYGUARD_X86
PYGUARD_TARGET_AVX512_BEGIN
namespace pyguard {
namespace avx512 {

struct CheckConsts {
    __m512 lo, hi, scale, tolerance, abs_mask, inf;
};

// Classifies the lanes selected by `valid` and adds them to the three counters.
template <bool Grid>
inline void checks_vec(__m512 v, __mmask16 valid, const CheckConsts &c, uint64_t &nonfinite, uint64_t &out_of_range,
                       uint64_t &off_grid) {
    const __m512 magnitude = _mm512_and_ps(v, c.abs_mask);
    const __mmask16 finite = _mm512_mask_cmp_ps_mask(valid, magnitude, c.inf, _CMP_LT_OQ);
    const __mmask16 outside = _mm512_cmp_ps_mask(v, c.lo, _CMP_LT_OQ) | _mm512_cmp_ps_mask(v, c.hi, _CMP_GT_OQ);
    nonfinite += static_cast<uint64_t>(__builtin_popcount(static_cast<unsigned>(valid & ~finite)));
    out_of_range += static_cast<uint64_t>(__builtin_popcount(static_cast<unsigned>(finite & outside)));
    if (Grid) {
        const __mmask16 inside = finite & static_cast<__mmask16>(~outside);
        const __m512 t = _mm512_mul_ps(_mm512_sub_ps(v, c.lo), c.scale);
        const __m512 nearest = _mm512_maskz_roundscale_ps(0xFFFF, t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m512 distance = _mm512_and_ps(_mm512_sub_ps(t, nearest), c.abs_mask);
        const __mmask16 off = _mm512_mask_cmp_ps_mask(inside, distance, c.tolerance, _CMP_GT_OQ);
        off_grid += static_cast<uint64_t>(__builtin_popcount(static_cast<unsigned>(off)));
    }
}

template <bool Grid> inline void checks_f32_loop(const float *x, size_t n, const CheckParams &p, CheckCounts &out) {
    const CheckConsts c{_mm512_set1_ps(p.lo),        _mm512_set1_ps(p.hi),
                        _mm512_set1_ps(p.scale),     _mm512_set1_ps(p.tolerance),
                        _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF)), _mm512_set1_ps(INFINITY)};
    uint64_t nonfinite = 0, out_of_range = 0, off_grid = 0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        checks_vec<Grid>(_mm512_loadu_ps(x + i), 0xFFFF, c, nonfinite, out_of_range, off_grid);
        checks_vec<Grid>(_mm512_loadu_ps(x + i + 16), 0xFFFF, c, nonfinite, out_of_range, off_grid);
    }
    for (; i < n; i += 16) {
        const size_t left = n - i;
        const __mmask16 k = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
        checks_vec<Grid>(_mm512_maskz_loadu_ps(k, x + i), k, c, nonfinite, out_of_range, off_grid);
    }
    out.nonfinite += static_cast<int64_t>(nonfinite);
    out.out_of_range += static_cast<int64_t>(out_of_range);
    out.off_grid += static_cast<int64_t>(off_grid);
}

inline void checks_f32(const float *x, size_t n, const CheckParams &p, CheckCounts &out) {
    if (p.grid)
        checks_f32_loop<true>(x, n, p, out);
    else
        checks_f32_loop<false>(x, n, p, out);
}

inline void checks_u8(const uint8_t *x, size_t n, uint8_t lo, uint8_t hi, CheckCounts &out) {
    const __m512i vlo = _mm512_set1_epi8(static_cast<char>(lo)), vhi = _mm512_set1_epi8(static_cast<char>(hi));
    uint64_t count = 0;
    for (size_t i = 0; i < n; i += 64) {
        const size_t left = n - i;
        const __mmask64 k = left >= 64 ? ~__mmask64(0) : ((__mmask64(1) << left) - 1);
        const __m512i v = _mm512_maskz_loadu_epi8(k, x + i);
        const __mmask64 bad = _mm512_mask_cmplt_epu8_mask(k, v, vlo) | _mm512_mask_cmpgt_epu8_mask(k, v, vhi);
        count += static_cast<uint64_t>(__builtin_popcountll(bad));
    }
    out.out_of_range += static_cast<int64_t>(count);
}

} // namespace avx512
} // namespace pyguard
PYGUARD_TARGET_AVX512_END
#endif
