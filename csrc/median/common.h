// Shared by every median variant (baseline code, outside any target region).
#pragma once

#include <cstddef>
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

// Scratch for the SIMD row pipeline, in elements: `size` sorted-column rows padded by the window on both
// sides, plus for 5x5 ten merged column-pair rows.
inline size_t scratch_elems(size_t width, size_t channels, int size) {
    const size_t padded = (width + static_cast<size_t>(size) - 1) * channels;
    return padded * static_cast<size_t>(size == 5 ? 15 : size);
}

} // namespace median_detail
} // namespace pyguard
