#pragma once
#include "../isa.h"
#include "serial.h"
#if PYGUARD_X86
namespace pyguard { namespace nl_means_detail {
inline RowKernels row_kernels_avx2() { return row_kernels_serial(); }
} }
#endif
