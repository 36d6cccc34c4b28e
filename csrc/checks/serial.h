// Per-sample input checks, scalar reference.
//
// float32, per value v (lo, hi, scale are float32; scale = float32(grid / (hi - lo))):
//   nonfinite     v is NaN or +-Inf
//   out_of_range  v finite and (v < lo or v > hi)
//   off_grid      v finite, lo <= v <= hi, and t = (v - lo) * scale is more than 1e-3 from its nearest
//                 integer (rint): the value is not one of the grid + 1 levels of an 8-bit image on [lo, hi]
// uint8: only out_of_range (v < lo or v > hi, integer bounds in 0..255).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "isa.h"

namespace pyguard {

struct CheckParams {
    float lo = 0.0f, hi = 1.0f;
    float scale = 255.0f;       // grid / (hi - lo), rounded to float32
    bool grid = true;           // false: off_grid is not computed (stays 0)
    float tolerance = 1e-3f;
};

struct CheckCounts {
    int64_t nonfinite = 0, out_of_range = 0, off_grid = 0;
};

namespace serial {

inline void checks_f32(const float *x, size_t n, const CheckParams &p, CheckCounts &c) {
    int64_t nonfinite = 0, out_of_range = 0, off_grid = 0;
    for (size_t i = 0; i < n; ++i) {
        const float v = x[i];
        if (!std::isfinite(v)) {
            ++nonfinite;
        } else if (v < p.lo || v > p.hi) {
            ++out_of_range;
        } else if (p.grid) {
            const float t = (v - p.lo) * p.scale;
            off_grid += std::fabs(t - std::nearbyint(t)) > p.tolerance;
        }
    }
    c.nonfinite += nonfinite;
    c.out_of_range += out_of_range;
    c.off_grid += off_grid;
}

inline void checks_u8(const uint8_t *x, size_t n, uint8_t lo, uint8_t hi, CheckCounts &c) {
    int64_t out_of_range = 0;
    for (size_t i = 0; i < n; ++i) out_of_range += x[i] < lo || x[i] > hi;
    c.out_of_range += out_of_range;
}

} // namespace serial
} // namespace pyguard
