// Shared by every median variant (baseline code, outside any target region).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace pyguard {

// Outcome of a median filter call. Float input with a NaN has no defined median (min/max networks and
// SciPy's selection both give order-dependent results), so the kernels report it instead of guessing.
enum class MedianStatus : int { ok = 0, nan_input = 1 };

namespace median_detail {

// Half-sample symmetric ("reflect", d c b a | a b c d) index into [0, n), for any distance outside, as
// SciPy does: the extension is periodic with period 2n, so windows larger than the image still work.
inline size_t reflect(ptrdiff_t i, size_t n) {
    if (i >= 0 && static_cast<size_t>(i) < n) return static_cast<size_t>(i);
    const ptrdiff_t period = static_cast<ptrdiff_t>(2 * n);
    ptrdiff_t m = i % period;
    if (m < 0) m += period;
    return static_cast<size_t>(m < static_cast<ptrdiff_t>(n) ? m : period - 1 - m);
}

// A size-k window covers offsets [-k/2, k - 1 - k/2] (SciPy's origin 0), so 2x2 covers i-1..i.
inline ptrdiff_t window_first(int size) { return -static_cast<ptrdiff_t>(size / 2); }

inline void check_size(int size) {
    if (size != 2 && size != 3 && size != 5)
        throw std::invalid_argument("median_filter: size must be 2, 3 or 5");
}

// Floats are ranked by an int32 key that orders them like IEEE 754 totalOrder (-0.0 < +0.0; NaN never
// reaches a kernel): flip the magnitude bits of negatives. Integer min/max then does the ranking, which
// is twice as fast as float min/max on current x86 cores and makes every variant return the same bits
// whatever order its network compares in. The map is its own inverse.
inline int32_t float_key(float v) {
    uint32_t u;
    std::memcpy(&u, &v, sizeof u);
    u ^= (u >> 31) ? 0x7FFFFFFFu : 0u;
    int32_t k;
    std::memcpy(&k, &u, sizeof k);
    return k;
}

inline float key_float(int32_t k) {
    uint32_t u;
    std::memcpy(&u, &k, sizeof u);
    u ^= (u >> 31) ? 0x7FFFFFFFu : 0u;
    float v;
    std::memcpy(&v, &u, sizeof v);
    return v;
}

// The element a kernel ranks: uint8 as is, float32 as its int32 key.
template <class T> struct KeyOf { using type = T; };
template <> struct KeyOf<float> { using type = int32_t; };

// Rows of input (as keys) a kernel keeps: output rows are made two at a time for 2x2 and 3x3.
inline size_t ring_rows(int size) { return size == 2 ? 3 : size == 3 ? 4 : 5; }

inline size_t round_up(size_t bytes) { return (bytes + 63) / 64 * 64; }

// Scratch of the SIMD row pipeline, laid out by ScratchLayout below (64-byte aligned regions).
struct ScratchLayout {
    size_t padded;      // elements of one key row padded by the window on both sides
    size_t row_bytes;   // bytes of one padded key row, rounded to 64
    size_t ring;        // offset of the ring of input key rows
    size_t sorted;      // 5x5: offset of 5 sorted-column rows, then 10 merged column-pair rows
    size_t spare;       // offset of a throwaway output row (the second row of a pair past the bottom)
    size_t total;       // bytes, plus 64 for alignment
    ScratchLayout(size_t width, size_t channels, int size, size_t key_bytes, size_t out_bytes) {
        padded = (width + static_cast<size_t>(size) - 1) * channels;
        row_bytes = round_up(padded * key_bytes);
        ring = 0;
        sorted = ring + ring_rows(size) * row_bytes;
        spare = sorted + (size == 5 ? 15 * row_bytes : 0);
        total = spare + round_up(width * channels * out_bytes) + 64;
    }
};

} // namespace median_detail
} // namespace pyguard
