// Non-local means denoising (the NLM squeezer of Feature Squeezing): dispatch over the ISA variants.
//
// Matches OpenCV's cv::fastNlMeansDenoising for 8-bit images bit for bit (see nl_means/serial.h for the
// definition); a 3-channel image is taken as CIELAB pixels and denoised like the core of
// cv::fastNlMeansDenoisingColored: L alone with strength h, (a, b) together with h_color.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "isa.h"
#include "nl_means/serial.h"
#include "nl_means/avx2.h"
#include "nl_means/avx512.h"
#include "nl_means/neon.h"

namespace pyguard {

inline nl_means_detail::RowKernels nl_means_row_kernels(Isa isa) {
    if (!isa_supported(isa))
        throw std::invalid_argument(std::string("nl_means: isa '") + isa_name(isa) + "' is not supported here");
    switch (isa) {
    case Isa::serial: return nl_means_detail::row_kernels_serial();
#if PYGUARD_X86
    case Isa::avx2: return nl_means_detail::row_kernels_avx2();
    case Isa::avx512: return nl_means_detail::row_kernels_avx512();
#endif
#if PYGUARD_NEON
    case Isa::neon: return nl_means_detail::row_kernels_neon();
#endif
    default: break;
    }
    throw std::invalid_argument(std::string("nl_means: no variant for isa '") + isa_name(isa) + "'");
}

inline void nl_means_check_params(size_t channels, size_t search, size_t patch, float h, float h_color) {
    if (channels != 1 && channels != 3) throw std::invalid_argument("nl_means: channels must be 1 or 3");
    if (search % 2 == 0 || search > nl_means_detail::kMaxSearch)
        throw std::invalid_argument("nl_means: search must be odd and at most 2901");
    if (patch % 2 == 0 || patch > nl_means_detail::kMaxPatch)
        throw std::invalid_argument("nl_means: patch must be odd and at most 127");
    if (!(std::isfinite(h) && h > 0.0f) || !(std::isfinite(h_color) && h_color > 0.0f))
        throw std::invalid_argument("nl_means: h and h_color must be finite and positive");
}

// Denoise `count` images of height x width pixels with `channels` (1 or 3) interleaved uint8 values.
// dst may alias src: each plane is copied into a bordered buffer before any output is written, and
// the (a, b) pass reads only channels 1 and 2 while the L pass writes only channel 0.
inline void nl_means_u8(Isa isa, const uint8_t *src, uint8_t *dst, size_t count, size_t height, size_t width,
                        size_t channels, size_t search, size_t patch, float h, float h_color) {
    nl_means_check_params(channels, search, patch, h, h_color);
    const nl_means_detail::RowKernels kernels = nl_means_row_kernels(isa);
    if (count == 0 || height == 0 || width == 0) return;
    nl_means_detail::Workspace ws;
    const size_t image_size = height * width * channels;
    if (channels == 1) {
        const auto table = nl_means_detail::make_weight_table(search, patch, h, 1);
        for (size_t k = 0; k < count; ++k)
            nl_means_detail::denoise_plane(kernels, src + k * image_size, dst + k * image_size, height, width, 1, 1,
                                           search, patch, table, ws);
        return;
    }
    const auto table_l = nl_means_detail::make_weight_table(search, patch, h, 1);
    const auto table_ab = nl_means_detail::make_weight_table(search, patch, h_color, 2);
    for (size_t k = 0; k < count; ++k) {
        const uint8_t *in = src + k * image_size;
        uint8_t *out = dst + k * image_size;
        nl_means_detail::denoise_plane(kernels, in, out, height, width, 3, 1, search, patch, table_l, ws);
        nl_means_detail::denoise_plane(kernels, in + 1, out + 1, height, width, 3, 2, search, patch, table_ab, ws);
    }
}

} // namespace pyguard
