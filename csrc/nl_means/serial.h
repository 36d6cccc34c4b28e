// Non-local means denoising, scalar reference: the exact integer semantics of OpenCV's
// cv::fastNlMeansDenoising for 8-bit images with 1 or 2 interleaved channels (the L plane and the
// ab pair of fastNlMeansDenoisingColored), plus the tiled driver every SIMD variant shares.
//
// Definition (b = search/2 + patch/2, E = the plane extended by b pixels with BORDER_REFLECT_101):
//   dist(i,j,oy,ox) = sum over the patch (ty,tx) and channels c of (E[i+ty][j+tx][c] - E[i+oy+ty][j+ox+tx][c])^2
//   w               = table[min(dist >> shift, cap)]            (OpenCV's fixed-point weight table)
//   out[i][j][c]    = (sum w * E[i+oy][j+ox][c] + W/2) / W      (W = sum of w; unsigned division)
// Everything is integer arithmetic, so every variant matches this reference bit for bit.
//
// Driver: the output is cut into tiles of a few rows by a few hundred columns so that accumulators,
// the rows of E they read and the distance rows stay in L1. Per tile and per search offset, rows of
// squared differences are computed once, summed vertically over the patch with a running column sum
// (ring of patch+1 rows), then summed horizontally, looked up in the weight table and accumulated.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

namespace pyguard {
namespace nl_means_detail {

// Row buffers are padded to whole blocks of this many 32-bit lanes, so SIMD row kernels never need a tail.
constexpr size_t kBlock = 16;
// Extra zero columns at the right of the extended plane, so whole-block reads past the border stay inside.
constexpr size_t kExtPad = 3 * kBlock;
constexpr size_t kTileRows = 16;
constexpr size_t kTileCols = 192;

constexpr size_t kMaxPatch = 127;   // patch^2 * 255^2 * 2 must fit in int32 (OpenCV's dist sums are int)
constexpr size_t kMaxSearch = 2901; // search^2 * 255 must fit in int32 (OpenCV's fixed-point estimate)

inline size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

// cv::borderInterpolate for BORDER_REFLECT_101 (OpenCV's BORDER_DEFAULT): gfedcb|abcdefgh|gfedcba,
// reflected again and again when the border is wider than the image; a single pixel repeats.
inline size_t reflect101(ptrdiff_t p, size_t len) {
    if (len == 1) return 0;
    const ptrdiff_t n = static_cast<ptrdiff_t>(len);
    while (p < 0 || p >= n) p = p < 0 ? -p : 2 * (n - 1) - p;
    return static_cast<size_t>(p);
}

// OpenCV's weight table: index = patch distance sum >> shift (a power of two close to patch^2 replaces
// the mean), weight = round(fixed_point_mult * exp(-mean_dist / (h^2 * channels))), weights under 0.1%
// of the maximum are dropped. The table is monotone, so it is cut after its first zero and indices are
// clamped to `cap` (the zero entry, or the last one if no entry is zero).
struct WeightTable {
    std::vector<int32_t> weights;
    uint32_t cap = 0;
    unsigned shift = 0;
    int32_t fixed_point_mult = 0;
};

inline WeightTable make_weight_table(size_t search, size_t patch, float h, size_t channels) {
    WeightTable table;
    const int max_estimate = static_cast<int>(search * search * 255);
    table.fixed_point_mult = std::numeric_limits<int>::max() / max_estimate;
    const int patch_area = static_cast<int>(patch * patch);
    while ((1 << table.shift) < patch_area) ++table.shift;
    const double almost_to_actual = static_cast<double>(1 << table.shift) / patch_area;
    const int max_dist = 255 * 255 * static_cast<int>(channels);
    const int almost_max_dist = static_cast<int>(max_dist / almost_to_actual + 1);
    const float denom = h * h * static_cast<float>(channels); // float, as OpenCV computes it
    const double threshold = 0.001 * table.fixed_point_mult;
    for (int almost = 0; almost < almost_max_dist; ++almost) {
        const double dist = almost * almost_to_actual;
        const double w = std::exp(-dist / denom);
        int weight = static_cast<int>(std::nearbyint(table.fixed_point_mult * w)); // cvRound: half to even
        if (weight < threshold) weight = 0;
        table.weights.push_back(weight);
        if (weight == 0) break;
    }
    table.cap = static_cast<uint32_t>(table.weights.size() - 1);
    return table;
}

// The plane with its reflected border, one uint32 per pixel holding two 16-bit channel values
// (value, 0) for one channel or (a, b) for two, so one squared-difference kernel serves both.
struct ExtendedPlane {
    std::vector<uint32_t> data;
    size_t rows = 0, stride = 0, border = 0;
    const uint32_t *at(ptrdiff_t y, ptrdiff_t x) const {
        return data.data() + static_cast<size_t>(static_cast<ptrdiff_t>(border) + y) * stride +
               static_cast<size_t>(static_cast<ptrdiff_t>(border) + x);
    }
};

inline void extend_plane(const uint8_t *src, size_t height, size_t width, size_t pixel_stride, size_t channels,
                         size_t border, ExtendedPlane &ext) {
    ext.border = border;
    ext.rows = height + 2 * border;
    ext.stride = round_up(width + 2 * border, kBlock) + kExtPad;
    ext.data.assign(ext.rows * ext.stride, 0u);
    std::vector<size_t> cols(width + 2 * border);
    for (size_t x = 0; x < cols.size(); ++x)
        cols[x] = reflect101(static_cast<ptrdiff_t>(x) - static_cast<ptrdiff_t>(border), width);
    for (size_t y = 0; y < ext.rows; ++y) {
        const uint8_t *row = src + reflect101(static_cast<ptrdiff_t>(y) - static_cast<ptrdiff_t>(border), height) *
                                       width * pixel_stride;
        uint32_t *out = ext.data.data() + y * ext.stride;
        for (size_t x = 0; x < cols.size(); ++x) {
            const uint8_t *px = row + cols[x] * pixel_stride;
            out[x] = channels == 1 ? px[0] : static_cast<uint32_t>(px[0]) | (static_cast<uint32_t>(px[1]) << 16);
        }
    }
}

// What the accumulate kernel needs besides its row pointers.
struct AccumulateContext {
    const int32_t *weights;
    uint32_t cap;
    unsigned shift;
    size_t patch;
    size_t channels;
};

// The two row kernels each ISA provides; n is a multiple of kBlock and buffers are padded accordingly.
struct RowKernels {
    // d_new[x] = squared distance of a[x] and b[x] summed over both 16-bit halves;
    // col[x] += d_new[x] - d_old[x] (d_old may be null: nothing leaves the window yet).
    void (*dist_cols)(const uint32_t *a, const uint32_t *b, const int32_t *d_old, int32_t *d_new, int32_t *col,
                      size_t n);
    // For j < n: box = sum of col[j .. j+patch-1]; w = weights[min(box >> shift, cap)];
    // wsum[j] += w; est0[j] += w * low half of p[j]; est1[j] += w * high half (two channels only).
    void (*accumulate)(const int32_t *col, const uint32_t *p, uint32_t *wsum, uint32_t *est0, uint32_t *est1,
                       size_t n, const AccumulateContext &ctx);
};

// Buffers reused across planes and images of one call.
struct Workspace {
    ExtendedPlane ext;
    std::vector<int32_t> dist_rows, col;
    std::vector<uint32_t> wsum, est0, est1;
};

inline void finalize_tile(const uint32_t *wsum, const uint32_t *est0, const uint32_t *est1, size_t rows, size_t n,
                          size_t acc_stride, uint8_t *dst, size_t dst_row_stride, size_t dst_pixel_stride,
                          size_t channels) {
    for (size_t i = 0; i < rows; ++i) {
        uint8_t *out = dst + i * dst_row_stride;
        for (size_t j = 0; j < n; ++j) {
            const uint32_t total = wsum[i * acc_stride + j];
            out[j * dst_pixel_stride] = static_cast<uint8_t>((est0[i * acc_stride + j] + total / 2) / total);
            if (channels == 2)
                out[j * dst_pixel_stride + 1] = static_cast<uint8_t>((est1[i * acc_stride + j] + total / 2) / total);
        }
    }
}

inline void denoise_tile(const RowKernels &kernels, const ExtendedPlane &ext, size_t i0, size_t rows, size_t j0,
                         size_t n, size_t search, const AccumulateContext &ctx, Workspace &ws) {
    const ptrdiff_t s = static_cast<ptrdiff_t>(search / 2), t = static_cast<ptrdiff_t>(ctx.patch / 2);
    const size_t patch = ctx.patch;
    const size_t acc_n = round_up(n, kBlock);
    const size_t col_n = round_up(acc_n + 2 * static_cast<size_t>(t), kBlock);
    ws.dist_rows.assign((patch + 1) * col_n, 0);
    ws.col.assign(col_n, 0);
    ws.wsum.assign(rows * acc_n, 0u);
    ws.est0.assign(rows * acc_n, 0u);
    ws.est1.assign(ctx.channels == 2 ? rows * acc_n : 0, 0u);
    const ptrdiff_t y0 = static_cast<ptrdiff_t>(i0) - t, x0 = static_cast<ptrdiff_t>(j0) - t;
    for (ptrdiff_t oy = -s; oy <= s; ++oy) {
        for (ptrdiff_t ox = -s; ox <= s; ++ox) {
            std::fill(ws.col.begin(), ws.col.end(), 0);
            for (size_t r = 0; r < rows + patch - 1; ++r) {
                const ptrdiff_t y = y0 + static_cast<ptrdiff_t>(r);
                int32_t *d_new = ws.dist_rows.data() + (r % (patch + 1)) * col_n;
                const int32_t *d_old = r >= patch ? ws.dist_rows.data() + ((r - patch) % (patch + 1)) * col_n : nullptr;
                kernels.dist_cols(ext.at(y, x0), ext.at(y + oy, x0 + ox), d_old, d_new, ws.col.data(), col_n);
                if (r + 1 < patch) continue;
                const size_t i = r + 1 - patch; // tile row whose patch rows are now all in the column sums
                const uint32_t *p = ext.at(static_cast<ptrdiff_t>(i0 + i) + oy, static_cast<ptrdiff_t>(j0) + ox);
                uint32_t *est1 = ctx.channels == 2 ? ws.est1.data() + i * acc_n : nullptr;
                kernels.accumulate(ws.col.data(), p, ws.wsum.data() + i * acc_n, ws.est0.data() + i * acc_n, est1,
                                   acc_n, ctx);
            }
        }
    }
}

// Denoise one plane of `channels` (1 or 2) interleaved values per pixel, read every `pixel_stride` bytes.
inline void denoise_plane(const RowKernels &kernels, const uint8_t *src, uint8_t *dst, size_t height, size_t width,
                          size_t pixel_stride, size_t channels, size_t search, size_t patch, const WeightTable &table,
                          Workspace &ws) {
    extend_plane(src, height, width, pixel_stride, channels, search / 2 + patch / 2, ws.ext);
    const AccumulateContext ctx{table.weights.data(), table.cap, table.shift, patch, channels};
    const size_t row_tiles = (height + kTileRows - 1) / kTileRows;
    const size_t col_tiles = (width + kTileCols - 1) / kTileCols;
    const size_t tile_cols = (width + col_tiles - 1) / col_tiles; // balanced widths
    for (size_t rt = 0; rt < row_tiles; ++rt) {
        const size_t i0 = rt * kTileRows, rows = std::min(kTileRows, height - i0);
        for (size_t j0 = 0; j0 < width; j0 += tile_cols) {
            const size_t n = std::min(tile_cols, width - j0);
            denoise_tile(kernels, ws.ext, i0, rows, j0, n, search, ctx, ws);
            finalize_tile(ws.wsum.data(), ws.est0.data(), ws.est1.data(), rows, n, round_up(n, kBlock),
                          dst + (i0 * width + j0) * pixel_stride, width * pixel_stride, pixel_stride, channels);
        }
    }
}

// ---- scalar row kernels ----

inline void dist_cols_serial(const uint32_t *a, const uint32_t *b, const int32_t *d_old, int32_t *d_new, int32_t *col,
                             size_t n) {
    for (size_t x = 0; x < n; ++x) {
        const int32_t lo = static_cast<int32_t>(a[x] & 0xFFFFu) - static_cast<int32_t>(b[x] & 0xFFFFu);
        const int32_t hi = static_cast<int32_t>(a[x] >> 16) - static_cast<int32_t>(b[x] >> 16);
        const int32_t d = lo * lo + hi * hi;
        d_new[x] = d;
        col[x] += d - (d_old ? d_old[x] : 0);
    }
}

inline void accumulate_serial(const int32_t *col, const uint32_t *p, uint32_t *wsum, uint32_t *est0, uint32_t *est1,
                              size_t n, const AccumulateContext &ctx) {
    for (size_t j = 0; j < n; ++j) {
        int32_t box = 0;
        for (size_t u = 0; u < ctx.patch; ++u) box += col[j + u];
        const uint32_t index = std::min(static_cast<uint32_t>(box) >> ctx.shift, ctx.cap);
        const uint32_t w = static_cast<uint32_t>(ctx.weights[index]);
        wsum[j] += w;
        est0[j] += w * (p[j] & 0xFFFFu);
        if (est1) est1[j] += w * (p[j] >> 16);
    }
}

inline RowKernels row_kernels_serial() { return {dist_cols_serial, accumulate_serial}; }

} // namespace nl_means_detail
} // namespace pyguard
