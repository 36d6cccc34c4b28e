// Per-sample input checks, AVX2: compare masks counted with movemask + popcnt.
#pragma once

#include <cstring>

#include "checks/serial.h"

#if PYGUARD_X86
PYGUARD_TARGET_AVX2_BEGIN
namespace pyguard {
namespace avx2 {

struct CheckConsts {
    __m256 lo, hi, scale, tolerance, abs_mask, inf;
};

inline uint64_t lanes(__m256 mask) { return static_cast<uint64_t>(__builtin_popcount(_mm256_movemask_ps(mask))); }

// Classifies the lanes selected by `valid` (all ones or zero per lane) and adds them to the counters.
template <bool Grid>
inline void checks_vec(__m256 v, __m256 valid, const CheckConsts &c, uint64_t &nonfinite, uint64_t &out_of_range,
                       uint64_t &off_grid) {
    const __m256 finite = _mm256_and_ps(_mm256_cmp_ps(_mm256_and_ps(v, c.abs_mask), c.inf, _CMP_LT_OQ), valid);
    const __m256 outside = _mm256_or_ps(_mm256_cmp_ps(v, c.lo, _CMP_LT_OQ), _mm256_cmp_ps(v, c.hi, _CMP_GT_OQ));
    nonfinite += lanes(_mm256_andnot_ps(finite, valid));
    out_of_range += lanes(_mm256_and_ps(finite, outside));
    if (Grid) {
        const __m256 inside = _mm256_andnot_ps(outside, finite);
        const __m256 t = _mm256_mul_ps(_mm256_sub_ps(v, c.lo), c.scale);
        const __m256 nearest = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m256 distance = _mm256_and_ps(_mm256_sub_ps(t, nearest), c.abs_mask);
        off_grid += lanes(_mm256_and_ps(_mm256_cmp_ps(distance, c.tolerance, _CMP_GT_OQ), inside));
    }
}

template <bool Grid> inline void checks_f32_loop(const float *x, size_t n, const CheckParams &p, CheckCounts &out) {
    const CheckConsts c{_mm256_set1_ps(p.lo),        _mm256_set1_ps(p.hi),
                        _mm256_set1_ps(p.scale),     _mm256_set1_ps(p.tolerance),
                        _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF)), _mm256_set1_ps(INFINITY)};
    const __m256 all = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    uint64_t nonfinite = 0, out_of_range = 0, off_grid = 0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        checks_vec<Grid>(_mm256_loadu_ps(x + i), all, c, nonfinite, out_of_range, off_grid);
        checks_vec<Grid>(_mm256_loadu_ps(x + i + 8), all, c, nonfinite, out_of_range, off_grid);
    }
    for (; i < n; i += 8) {
        const size_t left = n - i < 8 ? n - i : 8;
        float buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        std::memcpy(buf, x + i, left * sizeof(float));
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256 valid = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(left)), lane));
        checks_vec<Grid>(_mm256_loadu_ps(buf), valid, c, nonfinite, out_of_range, off_grid);
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

// v in [lo, hi] <=> max(v, lo) == v and min(v, hi) == v (unsigned bytes).
inline void checks_u8(const uint8_t *x, size_t n, uint8_t lo, uint8_t hi, CheckCounts &out) {
    const __m256i vlo = _mm256_set1_epi8(static_cast<char>(lo)), vhi = _mm256_set1_epi8(static_cast<char>(hi));
    uint64_t inside = 0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(x + i));
        const __m256i ok = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_max_epu8(v, vlo), v),
                                            _mm256_cmpeq_epi8(_mm256_min_epu8(v, vhi), v));
        inside += static_cast<uint64_t>(__builtin_popcount(static_cast<unsigned>(_mm256_movemask_epi8(ok))));
    }
    uint64_t outside = static_cast<uint64_t>(i) - inside;
    for (; i < n; ++i) outside += x[i] < lo || x[i] > hi;
    out.out_of_range += static_cast<int64_t>(outside);
}

} // namespace avx2
} // namespace pyguard
PYGUARD_TARGET_END
#endif
