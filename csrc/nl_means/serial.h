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
// the rows of E they read and the distance rows stay in cache. Per tile and per search offset, rows of
// squared differences are computed once, summed vertically over the patch with a running column sum
// (ring of patch+1 rows), then summed horizontally, looked up in the weight table and accumulated.
// Since dist(p, p+o) = dist(p+o, p), only half of the offsets are computed; each weight is added twice.
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
constexpr size_t kTablePad = 128;
// Tile shape (measured on Zen 5 with 224x224 and 480x640 images): wide tiles cut the per-row call overhead,
// taller ones the rows of squared differences recomputed around each tile for the vertical patch sums.
constexpr size_t kTileRows = 24;
constexpr size_t kTileCols = 256;

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
        double w = std::exp(-dist / denom);
        if (std::isnan(w)) w = 1.0; // h*h underflowed to 0 in float: 0/0 at distance 0, as OpenCV handles it
        int weight = static_cast<int>(std::nearbyint(table.fixed_point_mult * w)); // cvRound: half to even
        if (weight < threshold) weight = 0;
        table.weights.push_back(weight);
        if (weight == 0) break;
    }
    table.cap = static_cast<uint32_t>(table.weights.size() - 1);
    // Zero padding to whole 128-entry blocks, so SIMD variants can hold the table in registers.
    table.weights.resize(round_up(table.weights.size(), kTablePad), 0);
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
    const int32_t *weights; // padded with zeros to a multiple of kTablePad entries
    uint32_t cap;
    unsigned shift;
    size_t patch;
    size_t channels;
};

// Where one weighted sum goes: wsum[j] += w[j]; est0[j] += w[j] * low half of p[j]; est1[j] += w[j] * high
// half (est1 only for two channels, else null). A target with a null wsum is skipped.
struct AccumulateTarget {
    const uint32_t *p = nullptr;
    uint32_t *wsum = nullptr, *est0 = nullptr, *est1 = nullptr;
};

// The row kernels each ISA provides; lane counts are multiples of kBlock and buffers are padded for them.
struct RowKernels {
    // d_new[x] = squared distance of a[x] and b[x] summed over both 16-bit halves;
    // col[x] += d_new[x] - d_old[x] (d_old may be null: nothing leaves the window yet).
    void (*dist_cols)(const uint32_t *a, const uint32_t *b, const int32_t *d_old, int32_t *d_new, int32_t *col,
                      size_t n);
    // dist_cols over col_n lanes, then for j < n: box = sum of col[j .. j+patch-1],
    // w = weights[min(box >> shift, cap)], added to both targets (col_n >= n + patch - 1).
    void (*dist_cols_accumulate)(const uint32_t *a, const uint32_t *b, const int32_t *d_old, int32_t *d_new,
                                 int32_t *col, size_t col_n, const AccumulateTarget &fwd, const AccumulateTarget &bwd,
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

// The patch distance is symmetric: dist(p, p + o) = dist(p + o, (p + o) - o). So each offset pair (o, -o)
// is computed once, over the pixels p of the tile and those of the tile shifted by -o, and its weight is
// added twice: to p with the value at p + o ("forward") and to p + o with the value at p ("backward").
// Accumulator rows have `pad` spare columns on each side, where the lanes of partial domains land.
inline void denoise_tile(const RowKernels &kernels, const ExtendedPlane &ext, size_t i0, size_t rows, size_t j0,
                         size_t n, size_t search, const AccumulateContext &ctx, Workspace &ws, size_t acc_stride,
                         size_t pad) {
    const ptrdiff_t s = static_cast<ptrdiff_t>(search / 2), t = static_cast<ptrdiff_t>(ctx.patch / 2);
    const size_t patch = ctx.patch;
    const size_t max_col_n = round_up(round_up(n + static_cast<size_t>(s), kBlock) + 2 * static_cast<size_t>(t), kBlock);
    ws.dist_rows.assign((patch + 1) * max_col_n, 0);
    ws.col.assign(max_col_n, 0);
    ws.wsum.assign(rows * acc_stride, 0u);
    ws.est0.assign(rows * acc_stride, 0u);
    ws.est1.assign(ctx.channels == 2 ? rows * acc_stride : 0, 0u);
    const ptrdiff_t top = static_cast<ptrdiff_t>(i0), bottom = static_cast<ptrdiff_t>(i0 + rows);
    const auto target = [&](const uint32_t *p, ptrdiff_t row, ptrdiff_t col) {
        AccumulateTarget out;
        if (row < top || row >= bottom) return out; // not a pixel of this tile
        const size_t at = static_cast<size_t>(row - top) * acc_stride +
                          static_cast<size_t>(col - static_cast<ptrdiff_t>(j0) + static_cast<ptrdiff_t>(pad));
        out.p = p;
        out.wsum = ws.wsum.data() + at;
        out.est0 = ws.est0.data() + at;
        out.est1 = ctx.channels == 2 ? ws.est1.data() + at : nullptr;
        return out;
    };
    for (ptrdiff_t oy = 0; oy <= s; ++oy) {
        for (ptrdiff_t ox = oy == 0 ? 0 : -s; ox <= s; ++ox) {
            const bool self = oy == 0 && ox == 0; // the offset is its own mirror: forward only
            // p ranges over the tile and the tile shifted by -o.
            const ptrdiff_t x_lo = static_cast<ptrdiff_t>(j0) - std::max<ptrdiff_t>(0, ox);
            const ptrdiff_t x_hi = static_cast<ptrdiff_t>(j0 + n) + std::max<ptrdiff_t>(0, -ox);
            const ptrdiff_t y_lo = top - oy;
            const size_t dom_n = round_up(static_cast<size_t>(x_hi - x_lo), kBlock);
            const size_t col_n = round_up(dom_n + 2 * static_cast<size_t>(t), kBlock);
            std::fill(ws.col.begin(), ws.col.begin() + static_cast<ptrdiff_t>(col_n), 0);
            const size_t dist_rows = static_cast<size_t>(bottom - y_lo) + patch - 1;
            for (size_t r = 0; r < dist_rows; ++r) {
                const ptrdiff_t y_dist = y_lo - t + static_cast<ptrdiff_t>(r);
                int32_t *d_new = ws.dist_rows.data() + (r % (patch + 1)) * max_col_n;
                const int32_t *d_old =
                    r >= patch ? ws.dist_rows.data() + ((r - patch) % (patch + 1)) * max_col_n : nullptr;
                const uint32_t *a = ext.at(y_dist, x_lo - t), *b = ext.at(y_dist + oy, x_lo - t + ox);
                if (r + 1 < patch) {
                    kernels.dist_cols(a, b, d_old, d_new, ws.col.data(), col_n);
                    continue;
                }
                const ptrdiff_t y = y_lo + static_cast<ptrdiff_t>(r + 1 - patch); // all patch rows of p are in
                const AccumulateTarget fwd = target(ext.at(y + oy, x_lo + ox), y, x_lo);
                const AccumulateTarget bwd = self ? AccumulateTarget{} : target(ext.at(y, x_lo), y + oy, x_lo + ox);
                if (fwd.wsum || bwd.wsum)
                    kernels.dist_cols_accumulate(a, b, d_old, d_new, ws.col.data(), col_n, fwd, bwd, dom_n, ctx);
                else // neither p nor p + o is in the tile (offsets taller than the tile)
                    kernels.dist_cols(a, b, d_old, d_new, ws.col.data(), col_n);
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
            const size_t pad = round_up(search / 2, kBlock); // spare accumulator columns on each side
            const size_t acc_stride = round_up(n + search / 2, kBlock) + 2 * pad + kBlock;
            denoise_tile(kernels, ws.ext, i0, rows, j0, n, search, ctx, ws, acc_stride, pad);
            finalize_tile(ws.wsum.data() + pad, ws.est0.data() + pad, ws.est1.data() + pad, rows, n, acc_stride,
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

inline void add_weighted_serial(const AccumulateTarget &to, size_t j, uint32_t w) {
    if (!to.wsum) return;
    to.wsum[j] += w;
    to.est0[j] += w * (to.p[j] & 0xFFFFu);
    if (to.est1) to.est1[j] += w * (to.p[j] >> 16);
}

inline void accumulate_serial(const int32_t *col, const AccumulateTarget &fwd, const AccumulateTarget &bwd, size_t n,
                              const AccumulateContext &ctx) {
    for (size_t j = 0; j < n; ++j) {
        int32_t box = 0;
        for (size_t u = 0; u < ctx.patch; ++u) box += col[j + u];
        const uint32_t index = std::min(static_cast<uint32_t>(box) >> ctx.shift, ctx.cap);
        const uint32_t w = static_cast<uint32_t>(ctx.weights[index]);
        add_weighted_serial(fwd, j, w);
        add_weighted_serial(bwd, j, w);
    }
}

inline void dist_cols_accumulate_serial(const uint32_t *a, const uint32_t *b, const int32_t *d_old, int32_t *d_new,
                                        int32_t *col, size_t col_n, const AccumulateTarget &fwd,
                                        const AccumulateTarget &bwd, size_t n, const AccumulateContext &ctx) {
    dist_cols_serial(a, b, d_old, d_new, col, col_n);
    accumulate_serial(col, fwd, bwd, n, ctx);
}

inline RowKernels row_kernels_serial() { return {dist_cols_serial, dist_cols_accumulate_serial}; }

} // namespace nl_means_detail
} // namespace pyguard
