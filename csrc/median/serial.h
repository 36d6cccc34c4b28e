// Scalar reference, straight from the definition: for every output element gather the k x k window
// (reflected indices), sort its keys and take rank floor(k*k/2). Keys are uint8 values, or for float32
// the int32 key of common.h (IEEE totalOrder, so -0.0 < +0.0), which fixes the result's bits uniquely.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "common.h"

namespace pyguard {
namespace median_serial {

template <class T> inline typename median_detail::KeyOf<T>::type key(T v) {
    if constexpr (std::is_same<T, float>::value) return median_detail::float_key(v);
    else return v;
}

template <class T> inline T value(typename median_detail::KeyOf<T>::type k) {
    if constexpr (std::is_same<T, float>::value) return median_detail::key_float(k);
    else return k;
}

template <class T> inline bool contains_nan(const T *x, size_t n) {
    bool nan = false;
    for (size_t i = 0; i < n; ++i) nan |= x[i] != x[i]; // never true for integers
    return nan;
}

template <class K> inline K select_rank(K *window, size_t n, size_t rank) {
    for (size_t i = 1; i < n; ++i) // insertion sort: at most 25 elements
        for (size_t j = i; j > 0 && window[j] < window[j - 1]; --j) {
            const K t = window[j];
            window[j] = window[j - 1];
            window[j - 1] = t;
        }
    return window[rank];
}

template <class T>
inline MedianStatus filter(const T *x, T *y, size_t planes, size_t height, size_t width, size_t channels,
                           int size) {
    using median_detail::reflect;
    using K = typename median_detail::KeyOf<T>::type;
    const ptrdiff_t first = median_detail::window_first(size);
    const size_t row = width * channels, n = static_cast<size_t>(size * size);
    for (size_t p = 0; p < planes; ++p) {
        const T *plane = x + p * height * row;
        for (size_t i = 0; i < height; ++i)
            for (size_t j = 0; j < width; ++j)
                for (size_t ch = 0; ch < channels; ++ch) {
                    K window[25];
                    size_t count = 0;
                    for (int r = 0; r < size; ++r)
                        for (int c = 0; c < size; ++c) {
                            const size_t si = reflect(static_cast<ptrdiff_t>(i) + first + r, height);
                            const size_t sj = reflect(static_cast<ptrdiff_t>(j) + first + c, width);
                            window[count++] = key(plane[si * row + sj * channels + ch]);
                        }
                    y[(p * height + i) * row + j * channels + ch] = value<T>(select_rank(window, n, n / 2));
                }
    }
    return contains_nan(x, planes * height * row) ? MedianStatus::nan_input : MedianStatus::ok;
}

} // namespace median_serial
} // namespace pyguard
