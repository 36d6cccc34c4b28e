// Non-local means, AVX2 row kernels: 8 pixels per step, the same integer operations as serial.h.
//
// Same scheme as the AVX-512 variant: vpsubw + vpmaddwd for the squared distance of two 16-bit channel
// values per 32-bit lane, column sums kept one block ahead in registers for the horizontal patch sum
// (a cross-lane shift is vperm2i128 + vpalignr), weight tables of up to 16 entries in registers
// (vpermd), larger ones through a gather.
#pragma once

#include "../isa.h"
#include "serial.h"

#if PYGUARD_X86
PYGUARD_TARGET_AVX2_BEGIN
namespace pyguard {
namespace nl_means_detail {

inline __m256i load256(const void *p) { return _mm256_loadu_si256(static_cast<const __m256i *>(p)); }
inline void store256(void *p, __m256i v) { _mm256_storeu_si256(static_cast<__m256i *>(p), v); }

// One 8-lane block of dist_cols; returns the updated column sums.
inline __m256i dist_cols_block_avx2(const uint32_t *a, const uint32_t *b, const int32_t *d_old, int32_t *d_new,
                                    int32_t *col) {
    const __m256i diff = _mm256_sub_epi16(load256(a), load256(b));
    const __m256i d = _mm256_madd_epi16(diff, diff);
    store256(d_new, d);
    __m256i c = _mm256_add_epi32(load256(col), d);
    if (d_old) c = _mm256_sub_epi32(c, load256(d_old));
    store256(col, c);
    return c;
}

inline void dist_cols_avx2(const uint32_t *a, const uint32_t *b, const int32_t *d_old, int32_t *d_new, int32_t *col,
                           size_t n) {
    for (size_t x = 0; x < n; x += 8) dist_cols_block_avx2(a + x, b + x, d_old ? d_old + x : nullptr, d_new + x, col + x);
}

enum class Lookup256 { perm8, perm16, gather };

template <Lookup256 kind> struct WeightLookup256 {
    __m256i t0, t1;
    const int32_t *weights;
    explicit WeightLookup256(const int32_t *w) : t0(load256(w)), t1(load256(w + 8)), weights(w) {}
    __m256i operator()(__m256i index) const {
        if (kind == Lookup256::perm8) return _mm256_permutevar8x32_epi32(t0, index);
        if (kind == Lookup256::gather) return _mm256_i32gather_epi32(weights, index, 4);
        const __m256i high = _mm256_cmpgt_epi32(index, _mm256_set1_epi32(7)); // vpermd uses the low 3 bits
        return _mm256_blendv_epi8(_mm256_permutevar8x32_epi32(t0, index), _mm256_permutevar8x32_epi32(t1, index),
                                  high);
    }
};

// col[j+u .. j+u+7] for u < patch from the blocks at j and j+8 (u <= 8).
template <size_t kPatch> inline __m256i box_sum_avx2(__m256i cur, __m256i next) {
    if (kPatch == 1) return cur;
    const __m256i mid = _mm256_permute2x128_si256(cur, next, 0x21); // cur[4..7], next[0..3]
    __m256i box = _mm256_add_epi32(cur, _mm256_add_epi32(_mm256_alignr_epi8(mid, cur, 4), _mm256_alignr_epi8(mid, cur, 8)));
    if (kPatch >= 5) box = _mm256_add_epi32(box, _mm256_add_epi32(_mm256_alignr_epi8(mid, cur, 12), mid));
    if (kPatch >= 7)
        box = _mm256_add_epi32(box, _mm256_add_epi32(_mm256_alignr_epi8(next, mid, 4), _mm256_alignr_epi8(next, mid, 8)));
    return box;
}

// wsum += w; est0 += w * low halves of p; est1 (two channels; null for one) += w * high halves.
inline void add_weighted_avx2(const uint32_t *p, uint32_t *wsum, uint32_t *est0, uint32_t *est1, size_t j, __m256i w) {
    store256(wsum, _mm256_add_epi32(load256(wsum), w));
    const __m256i px = load256(p);
    store256(est0, _mm256_add_epi32(load256(est0), _mm256_mullo_epi32(w, _mm256_and_si256(px, _mm256_set1_epi32(0xFFFF)))));
    if (est1) store256(est1 + j, _mm256_add_epi32(load256(est1 + j), _mm256_mullo_epi32(w, _mm256_srli_epi32(px, 16))));
}

// dist_cols and accumulate in one sweep, column sums one block ahead in registers (col_n >= n + 8; patch 1
// needs no look-ahead). kPatch == 0: any patch, two passes, box sums reloaded from the stored column sums.
template <Lookup256 kind, size_t kPatch>
inline void fused_avx2_impl(const uint32_t *a, const uint32_t *b, const int32_t *d_old, int32_t *d_new, int32_t *col,
                            size_t col_n, const AccumulateTarget &fwd, const AccumulateTarget &bwd, size_t n,
                            const AccumulateContext &ctx) {
    const WeightLookup256<kind> lookup(ctx.weights);
    const __m256i cap = _mm256_set1_epi32(static_cast<int>(ctx.cap));
    const __m128i shift = _mm_cvtsi32_si128(static_cast<int>(ctx.shift));
    // Local copies: stores through the accumulators could alias the targets' fields.
    const uint32_t *const fwd_p = fwd.p, *const bwd_p = bwd.p;
    uint32_t *const fwd_wsum = fwd.wsum, *const fwd_est0 = fwd.est0, *const fwd_est1 = fwd.est1;
    uint32_t *const bwd_wsum = bwd.wsum, *const bwd_est0 = bwd.est0, *const bwd_est1 = bwd.est1;
    if (kPatch == 0) dist_cols_avx2(a, b, d_old, d_new, col, col_n);
    __m256i cur = kPatch > 1 ? dist_cols_block_avx2(a, b, d_old, d_new, col) : _mm256_setzero_si256();
    for (size_t j = 0; j < n; j += 8) {
        __m256i box;
        if (kPatch == 0) {
            box = load256(col + j);
            for (size_t u = 1; u < ctx.patch; ++u) box = _mm256_add_epi32(box, load256(col + j + u));
        } else {
            const size_t k = kPatch > 1 ? j + 8 : j;
            const __m256i next = dist_cols_block_avx2(a + k, b + k, d_old ? d_old + k : nullptr, d_new + k, col + k);
            box = kPatch > 1 ? box_sum_avx2<kPatch>(cur, next) : next;
            cur = next;
        }
        const __m256i w = lookup(_mm256_min_epu32(_mm256_srl_epi32(box, shift), cap));
        if (fwd_wsum) add_weighted_avx2(fwd_p + j, fwd_wsum + j, fwd_est0 + j, fwd_est1, j, w);
        if (bwd_wsum) add_weighted_avx2(bwd_p + j, bwd_wsum + j, bwd_est0 + j, bwd_est1, j, w);
    }
}

template <size_t kPatch>
inline void fused_avx2_patch(const uint32_t *a, const uint32_t *b, const int32_t *d_old, int32_t *d_new, int32_t *col,
                             size_t col_n, const AccumulateTarget &fwd, const AccumulateTarget &bwd, size_t n,
                             const AccumulateContext &ctx) {
    if (ctx.cap < 8)
        return fused_avx2_impl<Lookup256::perm8, kPatch>(a, b, d_old, d_new, col, col_n, fwd, bwd, n, ctx);
    if (ctx.cap < 16)
        return fused_avx2_impl<Lookup256::perm16, kPatch>(a, b, d_old, d_new, col, col_n, fwd, bwd, n, ctx);
    fused_avx2_impl<Lookup256::gather, kPatch>(a, b, d_old, d_new, col, col_n, fwd, bwd, n, ctx);
}

inline void dist_cols_accumulate_avx2(const uint32_t *a, const uint32_t *b, const int32_t *d_old, int32_t *d_new,
                                      int32_t *col, size_t col_n, const AccumulateTarget &fwd,
                                      const AccumulateTarget &bwd, size_t n, const AccumulateContext &ctx) {
    switch (ctx.patch) {
    case 1: return fused_avx2_patch<1>(a, b, d_old, d_new, col, col_n, fwd, bwd, n, ctx);
    case 3: return fused_avx2_patch<3>(a, b, d_old, d_new, col, col_n, fwd, bwd, n, ctx);
    case 5: return fused_avx2_patch<5>(a, b, d_old, d_new, col, col_n, fwd, bwd, n, ctx);
    case 7: return fused_avx2_patch<7>(a, b, d_old, d_new, col, col_n, fwd, bwd, n, ctx);
    default: return fused_avx2_patch<0>(a, b, d_old, d_new, col, col_n, fwd, bwd, n, ctx);
    }
}

inline RowKernels row_kernels_avx2() { return {dist_cols_avx2, dist_cols_accumulate_avx2}; }

} // namespace nl_means_detail
} // namespace pyguard
PYGUARD_TARGET_END
#endif
