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
    // ---- nl_means (end) ----
}
