// Non-local means, NEON row kernels: 4 pixels per step, the same integer operations as serial.h.
//
// The squared distance of the two 16-bit channel values in each 32-bit lane is a widening multiply
// of the 16-bit differences followed by a pairwise add; the weight table is read lane by lane (NEON
// has no 32-bit gather); vmlaq_u32 accumulates the weighted values exactly.
#pragma once

#include "../isa.h"
#include "serial.h"

#if PYGUARD_NEON
namespace pyguard {
namespace nl_means_detail {

inline void dist_cols_neon(const uint32_t *a, const uint32_t *b, const int32_t *d_old, int32_t *d_new, int32_t *col,
                           size_t n) {
    for (size_t x = 0; x < n; x += 4) {
        const int16x8_t diff = vsubq_s16(vreinterpretq_s16_u32(vld1q_u32(a + x)), vreinterpretq_s16_u32(vld1q_u32(b + x)));
        const int32x4_t squares_lo = vmull_s16(vget_low_s16(diff), vget_low_s16(diff));
        const int32x4_t squares_hi = vmull_high_s16(diff, diff);
        const int32x4_t d = vpaddq_s32(squares_lo, squares_hi); // lane k: low^2 + high^2 of pixel k
        vst1q_s32(d_new + x, d);
        int32x4_t c = vaddq_s32(vld1q_s32(col + x), d);
        if (d_old) c = vsubq_s32(c, vld1q_s32(d_old + x));
        vst1q_s32(col + x, c);
    }
}

inline void add_weighted_neon(const AccumulateTarget &to, size_t j, uint32x4_t w) {
    vst1q_u32(to.wsum + j, vaddq_u32(vld1q_u32(to.wsum + j), w));
    const uint32x4_t px = vld1q_u32(to.p + j);
    vst1q_u32(to.est0 + j, vmlaq_u32(vld1q_u32(to.est0 + j), w, vandq_u32(px, vdupq_n_u32(0xFFFFu))));
    if (to.est1) vst1q_u32(to.est1 + j, vmlaq_u32(vld1q_u32(to.est1 + j), w, vshrq_n_u32(px, 16)));
}

inline void dist_cols_accumulate_neon(const uint32_t *a, const uint32_t *b, const int32_t *d_old, int32_t *d_new,
                                      int32_t *col, size_t col_n, const AccumulateTarget &fwd,
                                      const AccumulateTarget &bwd, size_t n, const AccumulateContext &ctx) {
    dist_cols_neon(a, b, d_old, d_new, col, col_n);
    const uint32x4_t cap = vdupq_n_u32(ctx.cap);
    const int32x4_t shift = vdupq_n_s32(-static_cast<int32_t>(ctx.shift)); // negative: shift right
    for (size_t j = 0; j < n; j += 4) {
        int32x4_t box = vld1q_s32(col + j);
        for (size_t u = 1; u < ctx.patch; ++u) box = vaddq_s32(box, vld1q_s32(col + j + u));
        const uint32x4_t index = vminq_u32(vshlq_u32(vreinterpretq_u32_s32(box), shift), cap);
        uint32_t lanes[4];
        vst1q_u32(lanes, index);
        uint32_t gathered[4];
        for (int k = 0; k < 4; ++k) gathered[k] = static_cast<uint32_t>(ctx.weights[lanes[k]]);
        const uint32x4_t w = vld1q_u32(gathered);
        if (fwd.wsum) add_weighted_neon(fwd, j, w);
        if (bwd.wsum) add_weighted_neon(bwd, j, w);
    }
}

inline RowKernels row_kernels_neon() { return {dist_cols_neon, dist_cols_accumulate_neon}; }

} // namespace nl_means_detail
} // namespace pyguard
#endif
