// Python bindings for the native core (module pyguard._core).
//
// Thin on purpose: every function takes C-contiguous arrays of the exact dtype (noconvert, so the caller's
// buffer is used with no copy), releases the GIL, and calls one family's dispatcher. Validation of
// shapes, layouts and user-facing errors lives in pyguard/ops.py.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "bit_depth.h"
#include "checks.h"
#include "stats.h"
#include "isa.h"
#include "median.h"
#include "nl_means.h"

namespace py = pybind11;
using namespace pyguard;

namespace {

template <class T> using carray = py::array_t<T, py::array::c_style>;

template <class T> const T *input_ptr(const carray<T> &a) { return a.data(); }
template <class T> T *output_ptr(carray<T> &a) { return a.mutable_data(); }
template <class T> size_t count(const carray<T> &a) { return static_cast<size_t>(a.size()); }

std::vector<std::string> supported_isa_names() {
    std::vector<std::string> names;
    for (Isa isa : supported_isas()) names.emplace_back(isa_name(isa));
    return names;
}

} // namespace

namespace checks_binding {

// Copies the per-sample counts into the three (N,) int64 output arrays.
void store_counts(const std::vector<CheckCounts> &counts, carray<int64_t> &nonfinite, carray<int64_t> &out_of_range,
                  carray<int64_t> &off_grid) {
    int64_t *a = output_ptr(nonfinite), *b = output_ptr(out_of_range), *c = output_ptr(off_grid);
    for (size_t s = 0; s < counts.size(); ++s) {
        a[s] = counts[s].nonfinite;
        b[s] = counts[s].out_of_range;
        c[s] = counts[s].off_grid;
    }
}

void require_outputs(size_t samples, const carray<int64_t> &a, const carray<int64_t> &b, const carray<int64_t> &c) {
    for (const auto *out : {&a, &b, &c})
        if (static_cast<size_t>(out->size()) != samples) throw std::invalid_argument("count arrays must have N entries");
}

} // namespace checks_binding

namespace stats_binding {

StatsLayout layout(size_t samples, size_t outer, size_t channels, size_t inner, size_t size) {
    const StatsLayout l{samples, outer, channels, inner};
    if (l.samples == 0 || l.sample_size() == 0 || l.samples * l.sample_size() != size)
        throw std::invalid_argument("layout does not match the array size");
    return l;
}

void require_size(size_t have, size_t want, const char *what) {
    if (have != want) throw std::invalid_argument(std::string(what) + " has the wrong number of values");
}

} // namespace stats_binding

// ---- family sections: each kernel family registers its functions in its own block below ----

namespace median_binding {

constexpr const char *doc = "2-D median (size 2, 3 or 5) over planes x height x width x channels (channels "
                            "interleaved), reflect borders, into out; returns False if float input has a NaN";

// Filters x into out (which may overlap x); returns False when float input contains a NaN.
template <class T>
bool filter(const carray<T> &x, carray<T> &out, size_t planes, size_t height, size_t width, size_t channels,
            int size, const std::string &isa) {
    const Isa chosen = parse_isa(isa);
    size_t n = 0;
    const bool overflow = __builtin_mul_overflow(planes, height, &n) || __builtin_mul_overflow(n, width, &n) ||
                          __builtin_mul_overflow(n, channels, &n);
    if (overflow || count(x) != n || count(out) != n)
        throw std::invalid_argument("median_filter: x and out must hold planes*height*width*channels elements");
    const T *src = input_ptr(x);
    T *dst = output_ptr(out);
    py::gil_scoped_release release;
    std::vector<T> copy; // out overlapping x (e.g. in place): filter from a copy of the input
    if (n != 0 && src < dst + n && dst < src + n) {
        copy.assign(src, src + n);
        src = copy.data();
    }
    return median_filter(src, dst, planes, height, width, channels, size, chosen) == MedianStatus::ok;
}

} // namespace median_binding
namespace nl_means_binding {

// x and out are (N, H, W, C) uint8 with C = 1 (gray) or 3 (CIELAB); out may be x itself.
void nl_means_u8(const carray<uint8_t> &x, carray<uint8_t> &out, size_t search, size_t patch, float h,
                 float h_color, const std::string &isa) {
    if (x.ndim() != 4) throw std::invalid_argument("nl_means_u8: x must be (N, H, W, C)");
    for (py::ssize_t d = 0; d < 4; ++d)
        if (out.ndim() != 4 || out.shape(d) != x.shape(d))
            throw std::invalid_argument("nl_means_u8: out must have the shape of x");
    const Isa parsed = parse_isa(isa);
    const uint8_t *src = input_ptr(x);
    uint8_t *dst = output_ptr(out);
    const auto dim = [&](int d) { return static_cast<size_t>(x.shape(d)); };
    py::gil_scoped_release release;
    pyguard::nl_means_u8(parsed, src, dst, dim(0), dim(1), dim(2), dim(3), search, patch, h, h_color);
}

} // namespace nl_means_binding

namespace session_binding {

// The (nonfinite, out_of_range) per-sample counts of a guarded session's input as two new (N,) int64 arrays;
// out_of_range stays 0 when the input's range is unknown (ranged = false).
py::tuple count_arrays(const std::vector<CheckCounts> &counts, bool ranged) {
    carray<int64_t> nonfinite(static_cast<py::ssize_t>(counts.size()));
    carray<int64_t> out_of_range(static_cast<py::ssize_t>(counts.size()));
    int64_t *a = output_ptr(nonfinite), *b = output_ptr(out_of_range);
    for (size_t s = 0; s < counts.size(); ++s) {
        a[s] = counts[s].nonfinite;
        b[s] = ranged ? counts[s].out_of_range : 0;
    }
    return py::make_tuple(nonfinite, out_of_range);
}

void require_samples(size_t samples, size_t have) {
    if (samples == 0 || have % samples != 0) throw std::invalid_argument("bad sample count");
}

// One guarded run's verdict: flagged = non-finite or out-of-range input, or (channels > 0) an activation
// score above tolerance, where the score of a sample is the max of its `channels` monitor values
// (minmax_f32, NaN propagating) with NaN scored +inf. Returns (flagged, scores or None, flagged count).
py::tuple verdict(const carray<int64_t> &nonfinite, const carray<int64_t> &out_of_range, const carray<float> &excess,
                  size_t channels, float tolerance, const std::string &isa) {
    const size_t samples = count(nonfinite);
    if (samples == 0 || count(out_of_range) != samples) throw std::invalid_argument("count arrays differ in size");
    if (channels != 0 && (count(excess) / channels != samples || count(excess) % channels != 0))
        throw std::invalid_argument("excess must hold samples * channels values");
    const Isa chosen = parse_isa(isa);
    carray<bool> flagged(static_cast<py::ssize_t>(samples));
    bool *flags = output_ptr(flagged);
    const int64_t *nf = input_ptr(nonfinite), *oor = input_ptr(out_of_range);
    size_t hits = 0;
    if (channels == 0) {
        for (size_t s = 0; s < samples; ++s) hits += (flags[s] = nf[s] > 0 || oor[s] > 0);
        return py::make_tuple(flagged, py::none(), hits);
    }
    carray<float> scores(static_cast<py::ssize_t>(samples));
    float *score = output_ptr(scores);
    std::vector<float> mins(samples);
    {
        py::gil_scoped_release release;
        minmax_f32(input_ptr(excess), StatsLayout{samples, 1, 1, channels}, mins.data(), score, chosen);
    }
    for (size_t s = 0; s < samples; ++s) {
        if (std::isnan(score[s])) score[s] = std::numeric_limits<float>::infinity();
        hits += (flags[s] = nf[s] > 0 || oor[s] > 0 || score[s] > tolerance);
    }
    return py::make_tuple(flagged, scores, hits);
}

} // namespace session_binding

PYBIND11_MODULE(_core, m) {
    m.doc() = "pyguard native core: SIMD kernels for input checks, feature squeezing and activation ranges";
    m.def("supported_isas", &supported_isa_names, "ISA variants this CPU and build can run, best last");
    m.def("best_isa", [] { return std::string(isa_name(best_isa())); }, "The variant chosen for isa='auto'");

    // ---- bit_depth (begin) ----
    m.def(
        "bit_depth_f32",
        [](const carray<float> &x, carray<float> &out, int bits, double lo, double hi, const std::string &isa) {
            if (out.size() != x.size()) throw std::invalid_argument("out and x differ in size");
            const Isa chosen = parse_isa(isa);
            py::gil_scoped_release release;
            bit_depth_f32(input_ptr(x), output_ptr(out), count(x), bits, lo, hi, chosen);
        },
        py::arg("x").noconvert(), py::arg("out").noconvert(), py::arg("bits"), py::arg("lo"), py::arg("hi"),
        py::arg("isa"), "Bit-depth reduction of float32 values on [lo, hi] into out (may be x)");
    m.def(
        "bit_depth_u8",
        [](const carray<uint8_t> &x, carray<uint8_t> &out, int bits, const std::string &isa) {
            if (out.size() != x.size()) throw std::invalid_argument("out and x differ in size");
            const Isa chosen = parse_isa(isa);
            py::gil_scoped_release release;
            bit_depth_u8(input_ptr(x), output_ptr(out), count(x), bits, chosen);
        },
        py::arg("x").noconvert(), py::arg("out").noconvert(), py::arg("bits"), py::arg("isa"),
        "Bit-depth reduction of uint8 images (v means v/255) into out (may be x)");
    // ---- bit_depth (end) ----

    // ---- checks (begin) ----
    m.def(
        "sample_checks_f32",
        [](const carray<float> &x, size_t samples, float lo, float hi, bool grid, float scale,
           carray<int64_t> &nonfinite, carray<int64_t> &out_of_range, carray<int64_t> &off_grid,
           const std::string &isa) {
            if (samples == 0 || count(x) % samples != 0) throw std::invalid_argument("bad sample count");
            checks_binding::require_outputs(samples, nonfinite, out_of_range, off_grid);
            const Isa chosen = parse_isa(isa);
            CheckParams p;
            p.lo = lo;
            p.hi = hi;
            p.grid = grid;
            p.scale = scale;
            std::vector<CheckCounts> counts(samples);
            {
                py::gil_scoped_release release;
                sample_checks_f32(input_ptr(x), samples, count(x) / samples, p, counts.data(), chosen);
            }
            checks_binding::store_counts(counts, nonfinite, out_of_range, off_grid);
        },
        py::arg("x").noconvert(), py::arg("samples"), py::arg("lo"), py::arg("hi"), py::arg("grid"),
        py::arg("scale"), py::arg("nonfinite").noconvert(), py::arg("out_of_range").noconvert(),
        py::arg("off_grid").noconvert(), py::arg("isa"),
        "Per-sample counts of non-finite, out-of-range and off-grid float32 values");
    m.def(
        "sample_checks_u8",
        [](const carray<uint8_t> &x, size_t samples, int lo, int hi, carray<int64_t> &nonfinite,
           carray<int64_t> &out_of_range, carray<int64_t> &off_grid, const std::string &isa) {
            if (samples == 0 || count(x) % samples != 0) throw std::invalid_argument("bad sample count");
            if (lo < 0 || hi > 255 || lo > hi) throw std::invalid_argument("uint8 bounds must satisfy 0 <= lo <= hi <= 255");
            checks_binding::require_outputs(samples, nonfinite, out_of_range, off_grid);
            const Isa chosen = parse_isa(isa);
            std::vector<CheckCounts> counts(samples);
            {
                py::gil_scoped_release release;
                sample_checks_u8(input_ptr(x), samples, count(x) / samples, static_cast<uint8_t>(lo),
                                 static_cast<uint8_t>(hi), counts.data(), chosen);
            }
            checks_binding::store_counts(counts, nonfinite, out_of_range, off_grid);
        },
        py::arg("x").noconvert(), py::arg("samples"), py::arg("lo"), py::arg("hi"), py::arg("nonfinite").noconvert(),
        py::arg("out_of_range").noconvert(), py::arg("off_grid").noconvert(), py::arg("isa"),
        "Per-sample counts of uint8 values outside [lo, hi] (nonfinite and off_grid stay 0)");
    // ---- checks (end) ----

    // ---- session (begin) ----
    // The per-call work of a guarded session's common run (pyguard/session.py, _FastPath): new arrays
    // are allocated here so the run makes two native calls and no NumPy calls.
    m.def(
        "session_counts_f32",
        [](const carray<float> &x, size_t samples, float lo, float hi, bool ranged, const std::string &isa) {
            session_binding::require_samples(samples, count(x));
            const Isa chosen = parse_isa(isa);
            CheckParams p;
            p.lo = lo;
            p.hi = hi;
            p.grid = false;
            p.scale = 0.0f;
            std::vector<CheckCounts> counts(samples);
            {
                py::gil_scoped_release release;
                sample_checks_f32(input_ptr(x), samples, count(x) / samples, p, counts.data(), chosen);
            }
            return session_binding::count_arrays(counts, ranged);
        },
        py::arg("x").noconvert(), py::arg("samples"), py::arg("lo"), py::arg("hi"), py::arg("ranged"),
        py::arg("isa"), "(nonfinite, out_of_range) per-sample counts of float32 x (out_of_range 0 unless ranged)");
    m.def(
        "session_counts_u8",
        [](const carray<uint8_t> &x, size_t samples, int lo, int hi, const std::string &isa) {
            session_binding::require_samples(samples, count(x));
            if (lo < 0 || hi > 255 || lo > hi) throw std::invalid_argument("uint8 bounds must satisfy 0 <= lo <= hi <= 255");
            const Isa chosen = parse_isa(isa);
            std::vector<CheckCounts> counts(samples);
            {
                py::gil_scoped_release release;
                sample_checks_u8(input_ptr(x), samples, count(x) / samples, static_cast<uint8_t>(lo),
                                 static_cast<uint8_t>(hi), counts.data(), chosen);
            }
            return session_binding::count_arrays(counts, true);
        },
        py::arg("x").noconvert(), py::arg("samples"), py::arg("lo"), py::arg("hi"), py::arg("isa"),
        "(nonfinite, out_of_range) per-sample counts of uint8 x (nonfinite is 0)");
    m.def("session_verdict", &session_binding::verdict, py::arg("nonfinite").noconvert(),
          py::arg("out_of_range").noconvert(), py::arg("excess").noconvert(), py::arg("channels"),
          py::arg("tolerance"), py::arg("isa"),
          "(flagged, activation scores or None, flagged count) of one guarded run");
    // ---- session (end) ----

    // ---- stats (begin) ----
    m.def(
        "minmax_f32",
        [](const carray<float> &x, size_t samples, size_t outer, size_t channels, size_t inner, carray<float> &mins,
           carray<float> &maxs, const std::string &isa) {
            const StatsLayout l = stats_binding::layout(samples, outer, channels, inner, count(x));
            stats_binding::require_size(count(mins), samples * channels, "mins");
            stats_binding::require_size(count(maxs), samples * channels, "maxs");
            const Isa chosen = parse_isa(isa);
            py::gil_scoped_release release;
            minmax_f32(input_ptr(x), l, output_ptr(mins), output_ptr(maxs), chosen);
        },
        py::arg("x").noconvert(), py::arg("samples"), py::arg("outer"), py::arg("channels"), py::arg("inner"),
        py::arg("mins").noconvert(), py::arg("maxs").noconvert(), py::arg("isa"),
        "Per (sample, channel) min and max of x viewed as (samples, outer, channels, inner)");
    m.def(
        "range_check_f32",
        [](const carray<float> &x, size_t samples, size_t outer, size_t channels, size_t inner, const carray<float> &lo,
           const carray<float> &hi, carray<int64_t> &counts, carray<float> &max_excess, const std::string &isa) {
            const StatsLayout l = stats_binding::layout(samples, outer, channels, inner, count(x));
            stats_binding::require_size(count(lo), channels, "lo");
            stats_binding::require_size(count(hi), channels, "hi");
            stats_binding::require_size(count(counts), samples, "counts");
            stats_binding::require_size(count(max_excess), samples, "max_excess");
            const Isa chosen = parse_isa(isa);
            py::gil_scoped_release release;
            range_check_f32(input_ptr(x), l, input_ptr(lo), input_ptr(hi), output_ptr(counts), output_ptr(max_excess),
                            chosen);
        },
        py::arg("x").noconvert(), py::arg("samples"), py::arg("outer"), py::arg("channels"), py::arg("inner"),
        py::arg("lo").noconvert(), py::arg("hi").noconvert(), py::arg("counts").noconvert(),
        py::arg("max_excess").noconvert(), py::arg("isa"),
        "Per-sample count of values outside [lo, hi] (per-channel bounds) and their largest excess");
    m.def(
        "clamp_f32",
        [](const carray<float> &x, carray<float> &out, size_t samples, size_t outer, size_t channels, size_t inner,
           const carray<float> &lo, const carray<float> &hi, const std::string &isa) {
            const StatsLayout l = stats_binding::layout(samples, outer, channels, inner, count(x));
            stats_binding::require_size(count(out), count(x), "out");
            stats_binding::require_size(count(lo), channels, "lo");
            stats_binding::require_size(count(hi), channels, "hi");
            const Isa chosen = parse_isa(isa);
            py::gil_scoped_release release;
            clamp_f32(input_ptr(x), output_ptr(out), l, input_ptr(lo), input_ptr(hi), chosen);
        },
        py::arg("x").noconvert(), py::arg("out").noconvert(), py::arg("samples"), py::arg("outer"),
        py::arg("channels"), py::arg("inner"), py::arg("lo").noconvert(), py::arg("hi").noconvert(), py::arg("isa"),
        "np.clip with per-channel bounds into out (may be x)");
    // ---- stats (end) ----

    // ---- median (begin) ----
    m.def("median_filter_f32", &median_binding::filter<float>, median_binding::doc, py::arg("x").noconvert(),
          py::arg("out").noconvert(), py::arg("planes"), py::arg("height"), py::arg("width"), py::arg("channels"),
          py::arg("size"), py::arg("isa") = "auto");
    m.def("median_filter_u8", &median_binding::filter<uint8_t>, median_binding::doc, py::arg("x").noconvert(),
          py::arg("out").noconvert(), py::arg("planes"), py::arg("height"), py::arg("width"), py::arg("channels"),
          py::arg("size"), py::arg("isa") = "auto");
    // ---- median (end) ----

    // ---- nl_means (begin) ----
    m.def("nl_means_u8", &nl_means_binding::nl_means_u8, py::arg("x").noconvert(), py::arg("out").noconvert(),
          py::arg("search"), py::arg("patch"), py::arg("h"), py::arg("h_color"), py::arg("isa") = "auto",
          "Non-local means on (N, H, W, C) uint8, C = 1 (gray) or 3 (CIELAB: L with h, ab with h_color), "
          "bit-exact with OpenCV's fastNlMeansDenoising; out may be x");
    // ---- nl_means (end) ----
}
