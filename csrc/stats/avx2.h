// Activation statistics, AVX2: the structure of avx512.h on 8 lanes; tails are done element by element
// with the same comparisons (exact operations, so the results are identical).
#pragma once

#include "stats/serial.h"

#if PYGUARD_X86
PYGUARD_TARGET_AVX2_BEGIN
namespace pyguard {
namespace avx2 {

inline float hmin(__m256 v) {
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    m = _mm_min_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

inline float hmax(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

// minps / maxps with the new value first: NaN lanes are ignored (tracked separately), ties keep acc.
// Constructors are written out: implicit ones would be compiled outside the target region.
struct MinMaxAcc {
    __m256 mn, mx, nan;
    MinMaxAcc() : mn(_mm256_set1_ps(INFINITY)), mx(_mm256_set1_ps(-INFINITY)), nan(_mm256_setzero_ps()) {}
    void add(__m256 v) {
        mn = _mm256_min_ps(v, mn);
        mx = _mm256_max_ps(v, mx);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
};

inline bool minmax_span(const float *x, size_t n, float &mn, float &mx) {
    MinMaxAcc a, b, c, d;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a.add(_mm256_loadu_ps(x + i));
        b.add(_mm256_loadu_ps(x + i + 8));
        c.add(_mm256_loadu_ps(x + i + 16));
        d.add(_mm256_loadu_ps(x + i + 24));
    }
    for (; i + 8 <= n; i += 8) a.add(_mm256_loadu_ps(x + i));
    mn = hmin(_mm256_min_ps(_mm256_min_ps(a.mn, b.mn), _mm256_min_ps(c.mn, d.mn)));
    mx = hmax(_mm256_max_ps(_mm256_max_ps(a.mx, b.mx), _mm256_max_ps(c.mx, d.mx)));
    bool nan = _mm256_movemask_ps(_mm256_or_ps(_mm256_or_ps(a.nan, b.nan), _mm256_or_ps(c.nan, d.nan))) != 0;
    for (; i < n; ++i) {
        nan |= std::isnan(x[i]);
        mn = min_keep(x[i], mn);
        mx = max_keep(x[i], mx);
    }
    return nan;
}

// R consecutive rows folded into the accumulators at once (see avx512.h).
template <int R> inline void minmax_rows(const float *x, size_t block, float *acc_min, float *acc_max, __m256 &nan) {
    for (size_t j = 0; j < block; j += 8) {
        __m256 mn = _mm256_loadu_ps(acc_min + j), mx = _mm256_loadu_ps(acc_max + j);
        for (int r = 0; r < R; ++r) {
            const __m256 v = _mm256_loadu_ps(x + r * block + j);
            mn = _mm256_min_ps(v, mn);
            mx = _mm256_max_ps(v, mx);
            nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        }
        _mm256_storeu_ps(acc_min + j, mn);
        _mm256_storeu_ps(acc_max + j, mx);
    }
}

inline bool minmax_periodic(const float *x, size_t n, size_t block, float *acc_min, float *acc_max) {
    __m256 nan = _mm256_setzero_ps();
    bool tail_nan = false;
    size_t base = 0;
    if (block % 8 == 0)
        for (; base + 8 * block <= n; base += 8 * block) minmax_rows<8>(x + base, block, acc_min, acc_max, nan);
    for (; base < n; base += block) {
        const size_t len = n - base < block ? n - base : block;
        const float *row = x + base;
        size_t j = 0;
        for (; j + 8 <= len; j += 8) {
            const __m256 v = _mm256_loadu_ps(row + j);
            _mm256_storeu_ps(acc_min + j, _mm256_min_ps(v, _mm256_loadu_ps(acc_min + j)));
            _mm256_storeu_ps(acc_max + j, _mm256_max_ps(v, _mm256_loadu_ps(acc_max + j)));
            nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        }
        for (; j < len; ++j) {
            tail_nan |= std::isnan(row[j]);
            acc_min[j] = min_keep(row[j], acc_min[j]);
            acc_max[j] = max_keep(row[j], acc_max[j]);
        }
    }
    return tail_nan || _mm256_movemask_ps(nan) != 0;
}

struct RangeLanes {
    __m256 excess, nan;
    uint64_t count;
    RangeLanes() : excess(_mm256_setzero_ps()), nan(_mm256_setzero_ps()), count(0) {}
    void add(__m256 v, __m256 lo, __m256 hi) {
        const __m256 bad = _mm256_or_ps(_mm256_cmp_ps(v, lo, _CMP_NGE_UQ), _mm256_cmp_ps(v, hi, _CMP_NLE_UQ));
        count += static_cast<uint64_t>(__builtin_popcount(static_cast<unsigned>(_mm256_movemask_ps(bad))));
        const __m256 e = _mm256_max_ps(_mm256_sub_ps(lo, v), _mm256_sub_ps(v, hi));
        excess = _mm256_max_ps(e, excess);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
    void fold_into(RangeAcc &acc) const {
        acc.count += static_cast<int64_t>(count);
        const float e = hmax(excess);
        acc.excess = e > acc.excess ? e : acc.excess;
        acc.nan |= _mm256_movemask_ps(nan) != 0;
    }
};

// Constant bounds: per-lane min / max instead of per-value excess, violators counted in 32-bit lanes
// (subtracting all-ones masks; blocks of 2^26 values keep them far from wrapping). See avx512.h.
struct RangeSpanLanes {
    __m256 mn, mx, nan;
    __m256i count;
    RangeSpanLanes()
        : mn(_mm256_set1_ps(INFINITY)), mx(_mm256_set1_ps(-INFINITY)), nan(_mm256_setzero_ps()),
          count(_mm256_setzero_si256()) {}
    void add(__m256 v, __m256 lo, __m256 hi) {
        const __m256 bad = _mm256_or_ps(_mm256_cmp_ps(v, lo, _CMP_NGE_UQ), _mm256_cmp_ps(v, hi, _CMP_NLE_UQ));
        count = _mm256_sub_epi32(count, _mm256_castps_si256(bad));
        mn = _mm256_min_ps(v, mn);
        mx = _mm256_max_ps(v, mx);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
};

inline int64_t lane_sum(__m256i v) {
    alignas(32) int32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i *>(lanes), v);
    int64_t sum = 0;
    for (int32_t lane : lanes) sum += lane;
    return sum;
}

inline void range_span(const float *x, size_t n, float lo, float hi, RangeAcc &acc) {
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    __m256 mn = _mm256_set1_ps(INFINITY), mx = _mm256_set1_ps(-INFINITY), nan = _mm256_setzero_ps();
    size_t i = 0;
    while (i + 16 <= n) {
        const size_t end = n - i > (size_t(1) << 26) ? i + (size_t(1) << 26) : n;
        RangeSpanLanes a, b;
        for (; i + 16 <= end; i += 16) {
            a.add(_mm256_loadu_ps(x + i), vlo, vhi);
            b.add(_mm256_loadu_ps(x + i + 8), vlo, vhi);
        }
        acc.count += lane_sum(a.count) + lane_sum(b.count);
        mn = _mm256_min_ps(mn, _mm256_min_ps(a.mn, b.mn));
        mx = _mm256_max_ps(mx, _mm256_max_ps(a.mx, b.mx));
        nan = _mm256_or_ps(nan, _mm256_or_ps(a.nan, b.nan));
    }
    // Each candidate counts only when positive; NaN (an infinite bound minus the same infinity) is skipped.
    const float below = lo - hmin(mn), above = hmax(mx) - hi;
    acc.excess = below > acc.excess ? below : acc.excess;
    acc.excess = above > acc.excess ? above : acc.excess;
    acc.nan |= _mm256_movemask_ps(nan) != 0;
    for (; i < n; ++i) acc.add_scalar(x[i], lo, hi);
}

// Bounds for lane j are loaded once per 8 rows read side by side (see avx512.h).
inline void range_periodic(const float *x, size_t n, size_t block, const float *lo, const float *hi, RangeAcc &acc) {
    RangeLanes lanes;
    size_t base = 0;
    if (block % 8 == 0)
        for (; base + 8 * block <= n; base += 8 * block)
            for (size_t j = 0; j < block; j += 8) {
                const __m256 vlo = _mm256_loadu_ps(lo + j), vhi = _mm256_loadu_ps(hi + j);
                for (int r = 0; r < 8; ++r) lanes.add(_mm256_loadu_ps(x + base + r * block + j), vlo, vhi);
            }
    for (; base < n; base += block) {
        const size_t len = n - base < block ? n - base : block;
        size_t j = 0;
        for (; j + 8 <= len; j += 8)
            lanes.add(_mm256_loadu_ps(x + base + j), _mm256_loadu_ps(lo + j), _mm256_loadu_ps(hi + j));
        for (; j < len; ++j) acc.add_scalar(x[base + j], lo[j], hi[j]);
    }
    lanes.fold_into(acc);
}

inline __m256 clamp_vec(__m256 v, __m256 lo, __m256 hi) { return _mm256_min_ps(hi, _mm256_max_ps(lo, v)); }

// In place, vectors the clamp leaves unchanged (bit for bit) are not stored: see avx512.h.
inline bool unchanged(__m256 v, __m256 c) {
    const __m256i same = _mm256_cmpeq_epi32(_mm256_castps_si256(c), _mm256_castps_si256(v));
    return _mm256_movemask_epi8(same) == -1;
}

inline void clamp_span(const float *x, float *y, size_t n, float lo, float hi) {
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    size_t i = 0;
    if (x == y) {
        for (; i + 8 <= n; i += 8) {
            const __m256 v = _mm256_loadu_ps(x + i), c = clamp_vec(v, vlo, vhi);
            if (!unchanged(v, c)) _mm256_storeu_ps(y + i, c);
        }
    }
    for (; i + 16 <= n; i += 16) {
        const __m256 a = clamp_vec(_mm256_loadu_ps(x + i), vlo, vhi);
        const __m256 b = clamp_vec(_mm256_loadu_ps(x + i + 8), vlo, vhi);
        _mm256_storeu_ps(y + i, a);
        _mm256_storeu_ps(y + i + 8, b);
    }
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, clamp_vec(_mm256_loadu_ps(x + i), vlo, vhi));
    for (; i < n; ++i) y[i] = serial::clamp_value(x[i], lo, hi);
}

inline void clamp_periodic(const float *x, float *y, size_t n, size_t block, const float *lo, const float *hi) {
    for (size_t base = 0; base < n; base += block) {
        const size_t len = n - base < block ? n - base : block;
        size_t j = 0;
        for (; j + 8 <= len; j += 8)
            _mm256_storeu_ps(y + base + j, clamp_vec(_mm256_loadu_ps(x + base + j), _mm256_loadu_ps(lo + j),
                                                     _mm256_loadu_ps(hi + j)));
        for (; j < len; ++j) y[base + j] = serial::clamp_value(x[base + j], lo[j], hi[j]);
    }
}

} // namespace avx2
} // namespace pyguard
PYGUARD_TARGET_END
#endif
