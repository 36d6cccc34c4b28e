// Scalar reference: one window at a time, straight from the definition. For every output pixel it
// gathers the k reflected columns of the window, sorts each, and applies the same selection network as
// the SIMD variants (networks.inc) in the same operand order, so all variants return identical bits.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common.h"

namespace pyguard {
namespace median_serial {

#include "networks.inc"

template <class T> inline bool contains_nan(const T *x, size_t n) {
    bool nan = false;
    for (size_t i = 0; i < n; ++i) nan |= x[i] != x[i]; // never true for integers
    return nan;
}

// The median of the window whose columns (top to bottom) are col[0..k-1].
template <class T> inline T window_median(T (&col)[5][5], int size) {
    using O = ScalarOps<T>;
    if (size == 2) {
        cx<O>(col[0][0], col[0][1]);
        cx<O>(col[1][0], col[1][1]);
        return median2x2<O>(col[0][0], col[0][1], col[1][0], col[1][1]);
    }
    if (size == 3) {
        for (auto &c : col) sort3<O>(c[0], c[1], c[2]);
        return median3x3<O>(col[0][0], col[0][1], col[0][2], col[1][0], col[1][1], col[1][2], col[2][0],
                            col[2][1], col[2][2]);
    }
    for (auto &c : col) sort5<O>(c);
    T a[10], b[10];
    merge_pair<O>(col[0], col[1], a);
    merge_pair<O>(col[2], col[3], b);
    return median5x5<O>(a, b, col[4]);
}

template <class T>
inline MedianStatus filter(const T *x, T *y, size_t planes, size_t height, size_t width, size_t channels,
                           int size) {
    using median_detail::reflect;
    const ptrdiff_t first = median_detail::window_first(size);
    const size_t row = width * channels;
    for (size_t p = 0; p < planes; ++p) {
        const T *plane = x + p * height * row;
        for (size_t i = 0; i < height; ++i)
            for (size_t j = 0; j < width; ++j)
                for (size_t ch = 0; ch < channels; ++ch) {
                    T col[5][5] = {};
                    for (int c = 0; c < size; ++c)
                        for (int r = 0; r < size; ++r) {
                            const size_t si = reflect(static_cast<ptrdiff_t>(i) + first + r, height);
                            const size_t sj = reflect(static_cast<ptrdiff_t>(j) + first + c, width);
                            col[c][r] = plane[si * row + sj * channels + ch];
                        }
                    y[(p * height + i) * row + j * channels + ch] = window_median(col, size);
                }
    }
    return contains_nan(x, planes * height * row) ? MedianStatus::nan_input : MedianStatus::ok;
}

} // namespace median_serial
} // namespace pyguard
