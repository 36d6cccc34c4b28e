// Bit-depth reduction, scalar reference.
//
// Float: y = rint((x - lo) / (hi - lo) * m) / m * (hi - lo) + lo with m = 2^bits - 1, every operation in
// float32 and in this order, exactly what NumPy 2 computes for a float32 array and Python float scalars
// (lo and hi - lo are rounded to float32 once). rint rounds half to even: std::nearbyint under the
// default rounding mode, never std::round.
// uint8: v stands for v / 255 on [0, 1]; the result is rint(bit_depth(v / 255) * 255), a 256-entry table.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include "isa.h"

namespace pyguard {

// The float32 constants NumPy would use, plus facts the SIMD variants use to skip divisions exactly.
struct BitDepthParams {
    float lo = 0.0f;       // float32(lo)
    float span = 1.0f;     // float32(hi - lo), the difference taken in double like Python does
    float levels = 1.0f;   // 2^bits - 1
    float inv_levels = 1.0f; // float32(1 / levels), only used with an exact correction step
    bool span_pow2 = true;   // 1 / span is exactly a float32, so x / span == x * inv_span bit for bit
    float inv_span = 1.0f;
    bool unit = true;        // lo == +0 and span == 1: (x - lo) / span == x exactly (-0 - 0 is -0)
    bool table_ok = true;    // lo is not -0.0, so level r = -0 and r = +0 give the same result
    int bits = 1;
    float table[256] = {};   // table[r] = r / levels * span + lo: the result for each rounded level r
};

inline BitDepthParams make_bit_depth_params(int bits, double lo, double hi) {
    if (bits < 1 || bits > 8) throw std::invalid_argument("bits must be in 1..8");
    BitDepthParams p;
    p.lo = static_cast<float>(lo);
    p.span = static_cast<float>(hi - lo);
    if (!std::isfinite(p.lo) || !std::isfinite(p.span) || !(p.span > 0.0f))
        throw std::invalid_argument("lo and hi - lo must be finite in float32 with hi > lo");
    p.levels = static_cast<float>((1 << bits) - 1);
    p.inv_levels = 1.0f / p.levels;
    // x / 2^k and x * 2^-k are the same real number, so they round identically (even when subnormal).
    double inv = 1.0 / static_cast<double>(p.span);
    float inv_f = static_cast<float>(inv);
    p.span_pow2 = std::isfinite(inv_f) && static_cast<double>(inv_f) == inv &&
                  static_cast<double>(inv_f) * static_cast<double>(p.span) == 1.0;
    p.inv_span = p.span_pow2 ? inv_f : 0.0f;
    p.unit = p.lo == 0.0f && !std::signbit(p.lo) && p.span == 1.0f;
    p.table_ok = !(p.lo == 0.0f && std::signbit(p.lo));
    p.bits = bits;
    for (int r = 0; r < (1 << bits); ++r) p.table[r] = static_cast<float>(r) / p.levels * p.span + p.lo;
    return p;
}

namespace serial {

inline float bit_depth_value(float x, const BitDepthParams &p) {
    float t = (x - p.lo) / p.span * p.levels;
    float r = std::nearbyint(t);
    return r / p.levels * p.span + p.lo;
}

inline void bit_depth_f32(const float *x, float *y, size_t n, const BitDepthParams &p) {
    for (size_t i = 0; i < n; ++i) y[i] = bit_depth_value(x[i], p);
}

// table[v] = rint(bit_depth(v / 255) * 255): the definition of the uint8 result.
struct BitDepthTable {
    uint8_t value[256];
};

inline BitDepthTable make_bit_depth_table(int bits) {
    BitDepthParams p = make_bit_depth_params(bits, 0.0, 1.0);
    BitDepthTable t{};
    for (int v = 0; v < 256; ++v) {
        float y = bit_depth_value(static_cast<float>(v) / 255.0f, p);
        t.value[v] = static_cast<uint8_t>(std::nearbyint(y * 255.0f));
    }
    return t;
}

inline void bit_depth_u8(const uint8_t *x, uint8_t *y, size_t n, int bits) {
    const BitDepthTable t = make_bit_depth_table(bits);
    for (size_t i = 0; i < n; ++i) y[i] = t.value[x[i]];
}

} // namespace serial
} // namespace pyguard
