// Python bindings for the native core (module pyguard._core).
//
// Thin on purpose: every function takes C-contiguous arrays of the exact dtype (noconvert, so the caller's
// buffer is used with no copy), releases the GIL, and calls one family's dispatcher. Validation of
// shapes, layouts and user-facing errors lives in pyguard/ops.py.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>

#include "isa.h"
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

// ---- family sections: each kernel family registers its functions in its own block below ----

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

PYBIND11_MODULE(_core, m) {
    m.doc() = "pyguard native core: SIMD kernels for input checks, feature squeezing and activation ranges";
    m.def("supported_isas", &supported_isa_names, "ISA variants this CPU and build can run, best last");
    m.def("best_isa", [] { return std::string(isa_name(best_isa())); }, "The variant chosen for isa='auto'");

    // ---- bit_depth (begin) ----
    // ---- bit_depth (end) ----

    // ---- checks (begin) ----
    // ---- checks (end) ----

    // ---- stats (begin) ----
    // ---- stats (end) ----

    // ---- median (begin) ----
    // ---- median (end) ----

    // ---- nl_means (begin) ----
    m.def("nl_means_u8", &nl_means_binding::nl_means_u8, py::arg("x").noconvert(), py::arg("out").noconvert(),
          py::arg("search"), py::arg("patch"), py::arg("h"), py::arg("h_color"), py::arg("isa") = "auto",
          "Non-local means on (N, H, W, C) uint8, C = 1 (gray) or 3 (CIELAB: L with h, ab with h_color), "
          "bit-exact with OpenCV's fastNlMeansDenoising; out may be x");
    // ---- nl_means (end) ----
}
