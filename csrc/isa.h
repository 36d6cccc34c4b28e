// Instruction-set selection shared by every kernel family.
//
// Each family has one dispatch header (e.g. bit_depth.h) and one file per ISA in a folder of the same
// name (bit_depth/serial.h, avx2.h, avx512.h, neon.h). The x86 variants live in the same translation
// unit as the baseline code and are compiled for their ISA through target pragmas, so one binary runs
// everywhere and picks the best variant at run time; each variant stays callable explicitly for tests.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#define PYGUARD_X86 1
#else
#define PYGUARD_X86 0
#endif

#if defined(__aarch64__) && defined(__ARM_NEON)
#define PYGUARD_NEON 1
#else
#define PYGUARD_NEON 0
#endif

// Target regions: every function defined between BEGIN and END (for AVX-512: PYGUARD_TARGET_AVX512_END) is
// compiled for that ISA. Templates defined outside a region (the standard library) keep the baseline
// target, so no AVX code can leak into code paths that run on older CPUs.
#if PYGUARD_X86
#if defined(__clang__)
#define PYGUARD_TARGET_AVX2_BEGIN                                                                          \
    _Pragma("clang attribute push(__attribute__((target(\"avx2,fma,bmi,bmi2,popcnt,f16c\"))), apply_to = function)")
#define PYGUARD_TARGET_AVX512_BEGIN                                                                        \
    _Pragma("clang attribute push(__attribute__((target(\"avx2,fma,bmi,bmi2,popcnt,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512cd\"))), apply_to = function)")
#define PYGUARD_TARGET_END _Pragma("clang attribute pop")
#define PYGUARD_TARGET_AVX512_END PYGUARD_TARGET_END
#else
#define PYGUARD_TARGET_AVX2_BEGIN                                                                          \
    _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma,bmi,bmi2,popcnt,f16c\")")
// GCC 12 flags the self-initialised placeholders of _mm512_undefined_*() inside its own intrinsics as
// (maybe-)uninitialized once they are inlined; the value is a don't-care operand, so AVX-512 regions
// silence those two warnings (and only there).
#define PYGUARD_TARGET_AVX512_BEGIN                                                                        \
    _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"")            \
        _Pragma("GCC diagnostic ignored \"-Wuninitialized\"") _Pragma("GCC push_options")                  \
            _Pragma("GCC target(\"avx2,fma,bmi,bmi2,popcnt,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512cd\")")
#define PYGUARD_TARGET_END _Pragma("GCC pop_options")
#define PYGUARD_TARGET_AVX512_END _Pragma("GCC pop_options") _Pragma("GCC diagnostic pop")
#endif
#include <immintrin.h>
#endif

#if PYGUARD_NEON
#include <arm_neon.h>
#endif

namespace pyguard {

enum class Isa : int { serial = 0, avx2 = 1, avx512 = 2, neon = 3 };

inline const char *isa_name(Isa isa) {
    switch (isa) {
    case Isa::serial: return "serial";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::neon: return "neon";
    }
    return "unknown";
}

// Whether this build contains the variant and this CPU (and OS) can run it.
inline bool isa_supported(Isa isa) {
    switch (isa) {
    case Isa::serial: return true;
#if PYGUARD_X86
    case Isa::avx2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2");
    case Isa::avx512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
               isa_supported(Isa::avx2);
#else
    case Isa::avx2:
    case Isa::avx512: return false;
#endif
    case Isa::neon: return PYGUARD_NEON != 0;
    }
    return false;
}

inline Isa best_isa() {
    static const Isa best = [] {
        for (Isa isa : {Isa::avx512, Isa::avx2, Isa::neon})
            if (isa_supported(isa)) return isa;
        return Isa::serial;
    }();
    return best;
}

inline std::vector<Isa> supported_isas() {
    std::vector<Isa> out;
    for (Isa isa : {Isa::serial, Isa::avx2, Isa::avx512, Isa::neon})
        if (isa_supported(isa)) out.push_back(isa);
    return out;
}

// "auto" means the best supported variant; naming an unsupported one is an error, never a silent fallback.
inline Isa parse_isa(const std::string &name) {
    if (name == "auto") return best_isa();
    for (Isa isa : {Isa::serial, Isa::avx2, Isa::avx512, Isa::neon}) {
        if (name == isa_name(isa)) {
            if (!isa_supported(isa))
                throw std::invalid_argument("isa '" + name + "' is not supported on this CPU or build");
            return isa;
        }
    }
    throw std::invalid_argument("unknown isa '" + name + "' (expected auto, serial, avx2, avx512 or neon)");
}

} // namespace pyguard
