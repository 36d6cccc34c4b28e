// Bit-depth reduction (feature squeezing): dispatch over the serial, AVX2, AVX-512 and NEON variants.
// See bit_depth/README.md for the exact semantics.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "isa.h"
#include "bit_depth/avx2.h"
#include "bit_depth/avx512.h"
#include "bit_depth/neon.h"
#include "bit_depth/serial.h"

namespace pyguard {

inline void bit_depth_require_isa(Isa isa) {
    if (!isa_supported(isa))
        throw std::invalid_argument(std::string("isa '") + isa_name(isa) + "' is not supported");
}

// y[i] = bit-depth reduction of x[i] to `bits` bits on [lo, hi]; y may equal x (in place).
inline void bit_depth_f32(const float *x, float *y, size_t n, int bits, double lo, double hi, Isa isa) {
    const BitDepthParams p = make_bit_depth_params(bits, lo, hi);
    bit_depth_require_isa(isa);
    switch (isa) {
#if PYGUARD_X86
    case Isa::avx512: return avx512::bit_depth_f32(x, y, n, p);
    case Isa::avx2: return avx2::bit_depth_f32(x, y, n, p);
#endif
#if PYGUARD_NEON
    case Isa::neon: return neon::bit_depth_f32(x, y, n, p);
#endif
    default: return serial::bit_depth_f32(x, y, n, p);
    }
}

// uint8 images: v means v / 255; y[i] = rint(bit_depth(x[i] / 255) * 255). y may equal x.
inline void bit_depth_u8(const uint8_t *x, uint8_t *y, size_t n, int bits, Isa isa) {
    if (bits < 1 || bits > 8) throw std::invalid_argument("bits must be in 1..8");
    bit_depth_require_isa(isa);
    switch (isa) {
#if PYGUARD_X86
    case Isa::avx512: return avx512::bit_depth_u8(x, y, n, bits);
    case Isa::avx2: return avx2::bit_depth_u8(x, y, n, bits);
#endif
#if PYGUARD_NEON
    case Isa::neon: return neon::bit_depth_u8(x, y, n, bits);
#endif
    default: return serial::bit_depth_u8(x, y, n, bits);
    }
}

} // namespace pyguard
