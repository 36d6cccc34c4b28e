#pragma once
#include "../isa.h"
#include "serial.h"
#if PYGUARD_NEON
namespace pyguard { namespace nl_means_detail {
inline RowKernels row_kernels_neon() { return row_kernels_serial(); }
} }
#endif
