// Median filter family: 2-D median over H and W with a 2x2, 3x3 or 5x5 window, float32 and uint8,
// matching scipy.ndimage.median_filter(mode="reflect") bit for bit (floats ranked by IEEE totalOrder, so
// only the sign of a zero median can differ from SciPy). See median/README.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "isa.h"
#include "median/avx2.h"
#include "median/avx512.h"
#include "median/common.h"
#include "median/neon.h"
#include "median/serial.h"

namespace pyguard {

namespace median_detail {
template <class T> struct VecOps;
#if PYGUARD_X86
template <> struct VecOps<float> { using avx2 = median_avx2::F32; using avx512 = median_avx512::F32; };
template <> struct VecOps<uint8_t> { using avx2 = median_avx2::U8; using avx512 = median_avx512::U8; };
#endif
#if PYGUARD_NEON
template <> struct VecOps<float> { using neon = median_neon::F32; };
template <> struct VecOps<uint8_t> { using neon = median_neon::U8; };
#endif
} // namespace median_detail

// Filters `planes` images of height x width x channels (channels interleaved; 1 for planar layouts),
// each channel on its own, with a size x size window (size 2, 3 or 5). x and y must not overlap.
// Returns MedianStatus::nan_input (y then holds unspecified values) when float input contains a NaN.
template <class T>
MedianStatus median_filter(const T *x, T *y, size_t planes, size_t height, size_t width, size_t channels,
                           int size, Isa isa) {
    static_assert(std::is_same<T, float>::value || std::is_same<T, uint8_t>::value, "float or uint8 only");
    median_detail::check_size(size);
    if (!isa_supported(isa)) throw std::invalid_argument(std::string("median_filter: isa ") + isa_name(isa) +
                                                         " is not supported on this CPU or build");
    if (planes == 0 || height == 0 || width == 0 || channels == 0) return MedianStatus::ok;
    if (isa == Isa::serial) return median_serial::filter(x, y, planes, height, width, channels, size);
    using K = typename median_detail::KeyOf<T>::type;
    std::vector<unsigned char> scratch(median_detail::ScratchLayout(width, channels, size, sizeof(K), sizeof(T)).total);
    switch (isa) {
#if PYGUARD_X86
    case Isa::avx2:
        return median_avx2::filter<typename median_detail::VecOps<T>::avx2>(x, y, planes, height, width, channels,
                                                                            size, scratch.data());
    case Isa::avx512:
        return median_avx512::filter<typename median_detail::VecOps<T>::avx512>(x, y, planes, height, width,
                                                                                channels, size, scratch.data());
#endif
#if PYGUARD_NEON
    case Isa::neon:
        return median_neon::filter<typename median_detail::VecOps<T>::neon>(x, y, planes, height, width, channels,
                                                                            size, scratch.data());
#endif
    default: break;
    }
    throw std::invalid_argument(std::string("median_filter: no ") + isa_name(isa) + " variant in this build");
}

} // namespace pyguard
