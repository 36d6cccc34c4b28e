// Non-local means, AVX-512 row kernels: 16 pixels per step, the same integer operations as serial.h.
//
// Pixels are 32-bit lanes holding two 16-bit channel values, so one vpsubw + vpmaddwd gives the squared
// distance summed over channels. Weight tables of up to 128 entries (every table of the paper settings)
// stay in registers and are read with vpermt2d plus blends on the high index bits; larger tables use a
// gather. Blocks whose 16 indices all fall on the zero tail of the table skip the accumulation.
#pragma once

#include "../isa.h"
#include "serial.h"

#if PYGUARD_X86
PYGUARD_TARGET_AVX512_BEGIN
namespace pyguard {
namespace nl_means_detail {

inline void dist_cols_avx512(const uint32_t *a, const uint32_t *b, const int32_t *d_old, int32_t *d_new,
                             int32_t *col, size_t n) {
    for (size_t x = 0; x < n; x += 16) {
        const __m512i diff = _mm512_sub_epi16(_mm512_loadu_si512(a + x), _mm512_loadu_si512(b + x));
        const __m512i d = _mm512_madd_epi16(diff, diff);
        _mm512_storeu_si512(d_new + x, d);
        __m512i c = _mm512_add_epi32(_mm512_loadu_si512(col + x), d);
        if (d_old) c = _mm512_sub_epi32(c, _mm512_loadu_si512(d_old + x));
        _mm512_storeu_si512(col + x, c);
    }
}

// Table lookups by size class: 16, 32, 64 or 128 entries in registers, or a gather from memory.
enum class Lookup512 { perm16, perm32, perm64, perm128, gather };

template <Lookup512 kind> struct WeightLookup512 {
    __m512i t[8];
    const int32_t *weights;
    explicit WeightLookup512(const int32_t *w) : weights(w) {
        const int blocks = kind == Lookup512::perm16 ? 1 : kind == Lookup512::perm32 ? 2 : kind == Lookup512::perm64 ? 4 : kind == Lookup512::perm128 ? 8 : 0;
        for (int k = 0; k < 8; ++k) t[k] = k < blocks ? _mm512_loadu_si512(w + 16 * k) : _mm512_setzero_si512();
    }
    __m512i operator()(__m512i index) const {
        if (kind == Lookup512::perm16) return _mm512_permutexvar_epi32(index, t[0]);
        if (kind == Lookup512::perm32) return _mm512_permutex2var_epi32(t[0], index, t[1]);
        if (kind == Lookup512::gather) return _mm512_i32gather_epi32(index, weights, 4);
        const __mmask16 bit5 = _mm512_test_epi32_mask(index, _mm512_set1_epi32(32));
        const __m512i w01 = _mm512_permutex2var_epi32(t[0], index, t[1]);
        const __m512i w23 = _mm512_permutex2var_epi32(t[2], index, t[3]);
        const __m512i w03 = _mm512_mask_blend_epi32(bit5, w01, w23);
        if (kind == Lookup512::perm64) return w03;
        const __m512i w45 = _mm512_permutex2var_epi32(t[4], index, t[5]);
        const __m512i w67 = _mm512_permutex2var_epi32(t[6], index, t[7]);
        const __m512i w47 = _mm512_mask_blend_epi32(bit5, w45, w67);
        return _mm512_mask_blend_epi32(_mm512_test_epi32_mask(index, _mm512_set1_epi32(64)), w03, w47);
    }
};

// One 16-lane block of dist_cols; returns the updated column sums.
inline __m512i dist_cols_block_avx512(const uint32_t *a, const uint32_t *b, const int32_t *d_old, int32_t *d_new,
                                      int32_t *col) {
    const __m512i diff = _mm512_sub_epi16(_mm512_loadu_si512(a), _mm512_loadu_si512(b));
    const __m512i d = _mm512_madd_epi16(diff, diff);
    _mm512_storeu_si512(d_new, d);
    __m512i c = _mm512_add_epi32(_mm512_loadu_si512(col), d);
    if (d_old) c = _mm512_sub_epi32(c, _mm512_loadu_si512(d_old));
    _mm512_storeu_si512(col, c);
    return c;
}

// The horizontal patch sum of the column sums col[j .. j+patch-1] from the blocks at j and j+16.
template <size_t kPatch> inline __m512i box_sum_avx512(__m512i cur, __m512i next) {
    __m512i box = cur;
    if (kPatch >= 3)
        box = _mm512_add_epi32(box, _mm512_add_epi32(_mm512_alignr_epi32(next, cur, 1), _mm512_alignr_epi32(next, cur, 2)));
    if (kPatch >= 5)
        box = _mm512_add_epi32(box, _mm512_add_epi32(_mm512_alignr_epi32(next, cur, 3), _mm512_alignr_epi32(next, cur, 4)));
    if (kPatch >= 7)
        box = _mm512_add_epi32(box, _mm512_add_epi32(_mm512_alignr_epi32(next, cur, 5), _mm512_alignr_epi32(next, cur, 6)));
    return box;
}

// wsum += w; est0 += w * low halves of p; est1 (two channels; null for one) += w * high halves.
inline void add_weighted_avx512(const uint32_t *p, uint32_t *wsum, uint32_t *est0, uint32_t *est1, size_t j,
                                __m512i w) {
    _mm512_storeu_si512(wsum, _mm512_add_epi32(_mm512_loadu_si512(wsum), w));
    const __m512i px = _mm512_loadu_si512(p);
    const __m512i e0 = _mm512_mullo_epi32(w, _mm512_and_si512(px, _mm512_set1_epi32(0xFFFF)));
    _mm512_storeu_si512(est0, _mm512_add_epi32(_mm512_loadu_si512(est0), e0));
    if (est1) {
        const __m512i e1 = _mm512_mullo_epi32(w, _mm512_srli_epi32(px, 16));
        _mm512_storeu_si512(est1 + j, _mm512_add_epi32(_mm512_loadu_si512(est1 + j), e1));
    }
}

// dist_cols and accumulate in one sweep: column sums stay in registers one block ahead of the horizontal
// patch sum (col_n == n + 16; patch 1 needs no look-ahead, col_n == n). kPatch == 0: any patch, in two
// passes (the patch reaches past the next block), the box sums reloaded from the stored column sums.
template <Lookup512 kind, size_t kPatch>
inline void fused_avx512_impl(const uint32_t *a, const uint32_t *b, const int32_t *d_old, int32_t *d_new, int32_t *col,
                              size_t col_n, const AccumulateTarget &fwd, const AccumulateTarget &bwd, size_t n,
                              const AccumulateContext &ctx) {
    const WeightLookup512<kind> lookup(ctx.weights);
    const __m512i cap = _mm512_set1_epi32(static_cast<int>(ctx.cap));
    const __m128i shift = _mm_cvtsi32_si128(static_cast<int>(ctx.shift));
    // Local copies: stores through the accumulators could alias the targets' fields.
    const uint32_t *const fwd_p = fwd.p, *const bwd_p = bwd.p;
    uint32_t *const fwd_wsum = fwd.wsum, *const fwd_est0 = fwd.est0, *const fwd_est1 = fwd.est1;
    uint32_t *const bwd_wsum = bwd.wsum, *const bwd_est0 = bwd.est0, *const bwd_est1 = bwd.est1;
    if (kPatch == 0) dist_cols_avx512(a, b, d_old, d_new, col, col_n);
    __m512i cur = kPatch > 1 ? dist_cols_block_avx512(a, b, d_old, d_new, col) : _mm512_setzero_si512();
    for (size_t j = 0; j < n; j += 16) {
        __m512i box;
        if (kPatch == 0) {
            box = _mm512_loadu_si512(col + j);
            for (size_t u = 1; u < ctx.patch; ++u) box = _mm512_add_epi32(box, _mm512_loadu_si512(col + j + u));
        } else {
            const size_t k = kPatch > 1 ? j + 16 : j;
            const __m512i next = dist_cols_block_avx512(a + k, b + k, d_old ? d_old + k : nullptr, d_new + k, col + k);
            box = kPatch > 1 ? box_sum_avx512<kPatch>(cur, next) : next;
            cur = next;
        }
        const __m512i w = lookup(_mm512_min_epu32(_mm512_srl_epi32(box, shift), cap));
        if (fwd_wsum) add_weighted_avx512(fwd_p + j, fwd_wsum + j, fwd_est0 + j, fwd_est1, j, w);
        if (bwd_wsum) add_weighted_avx512(bwd_p + j, bwd_wsum + j, bwd_est0 + j, bwd_est1, j, w);
    }
}

template <size_t kPatch>
inline void fused_avx512_patch(const uint32_t *a, const uint32_t *b, const int32_t *d_old, int32_t *d_new,
                               int32_t *col, size_t col_n, const AccumulateTarget &fwd, const AccumulateTarget &bwd,
                               size_t n, const AccumulateContext &ctx) {
    const uint32_t entries = ctx.cap + 1;
    if (entries <= 16)
        return fused_avx512_impl<Lookup512::perm16, kPatch>(a, b, d_old, d_new, col, col_n, fwd, bwd, n, ctx);
    if (entries <= 32)
        return fused_avx512_impl<Lookup512::perm32, kPatch>(a, b, d_old, d_new, col, col_n, fwd, bwd, n, ctx);
    if (entries <= 64)
        return fused_avx512_impl<Lookup512::perm64, kPatch>(a, b, d_old, d_new, col, col_n, fwd, bwd, n, ctx);
    if (entries <= 128)
        return fused_avx512_impl<Lookup512::perm128, kPatch>(a, b, d_old, d_new, col, col_n, fwd, bwd, n, ctx);
    fused_avx512_impl<Lookup512::gather, kPatch>(a, b, d_old, d_new, col, col_n, fwd, bwd, n, ctx);
}

inline void dist_cols_accumulate_avx512(const uint32_t *a, const uint32_t *b, const int32_t *d_old, int32_t *d_new,
                                        int32_t *col, size_t col_n, const AccumulateTarget &fwd,
                                        const AccumulateTarget &bwd, size_t n, const AccumulateContext &ctx) {
    switch (ctx.patch) {
    case 1: return fused_avx512_patch<1>(a, b, d_old, d_new, col, col_n, fwd, bwd, n, ctx);
    case 3: return fused_avx512_patch<3>(a, b, d_old, d_new, col, col_n, fwd, bwd, n, ctx);
    case 5: return fused_avx512_patch<5>(a, b, d_old, d_new, col, col_n, fwd, bwd, n, ctx);
    case 7: return fused_avx512_patch<7>(a, b, d_old, d_new, col, col_n, fwd, bwd, n, ctx);
    default: return fused_avx512_patch<0>(a, b, d_old, d_new, col, col_n, fwd, bwd, n, ctx);
    }
}

inline RowKernels row_kernels_avx512() { return {dist_cols_avx512, dist_cols_accumulate_avx512}; }

} // namespace nl_means_detail
} // namespace pyguard
PYGUARD_TARGET_AVX512_END
#endif
