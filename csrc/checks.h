// Per-sample input checks (non-finite, out-of-range and off-grid counts): dispatch over the variants.
// See checks/README.md for the exact semantics.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "isa.h"
#include "checks/avx2.h"
#include "checks/avx512.h"
#include "checks/neon.h"
#include "checks/serial.h"

namespace pyguard {

inline void checks_require_isa(Isa isa) {
    if (!isa_supported(isa))
        throw std::invalid_argument(std::string("isa '") + isa_name(isa) + "' is not supported");
}

inline void checks_f32_one(const float *x, size_t n, const CheckParams &p, CheckCounts &c, Isa isa) {
    switch (isa) {
#if PYGUARD_X86
    case Isa::avx512: return avx512::checks_f32(x, n, p, c);
    case Isa::avx2: return avx2::checks_f32(x, n, p, c);
#endif
#if PYGUARD_NEON
    case Isa::neon: return neon::checks_f32(x, n, p, c);
#endif
    default: return serial::checks_f32(x, n, p, c);
    }
}

inline void checks_u8_one(const uint8_t *x, size_t n, uint8_t lo, uint8_t hi, CheckCounts &c, Isa isa) {
    switch (isa) {
#if PYGUARD_X86
    case Isa::avx512: return avx512::checks_u8(x, n, lo, hi, c);
    case Isa::avx2: return avx2::checks_u8(x, n, lo, hi, c);
#endif
#if PYGUARD_NEON
    case Isa::neon: return neon::checks_u8(x, n, lo, hi, c);
#endif
    default: return serial::checks_u8(x, n, lo, hi, c);
    }
}

// x holds `samples` consecutive samples of `sample_size` values; counts[s] gets sample s's counts.
inline void sample_checks_f32(const float *x, size_t samples, size_t sample_size, const CheckParams &p,
                              CheckCounts *counts, Isa isa) {
    checks_require_isa(isa);
    for (size_t s = 0; s < samples; ++s) {
        counts[s] = CheckCounts{};
        checks_f32_one(x + s * sample_size, sample_size, p, counts[s], isa);
    }
}

inline void sample_checks_u8(const uint8_t *x, size_t samples, size_t sample_size, uint8_t lo, uint8_t hi,
                             CheckCounts *counts, Isa isa) {
    checks_require_isa(isa);
    for (size_t s = 0; s < samples; ++s) {
        counts[s] = CheckCounts{};
        checks_u8_one(x + s * sample_size, sample_size, lo, hi, counts[s], isa);
    }
}

} // namespace pyguard
