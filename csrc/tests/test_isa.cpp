#include <doctest/doctest.h>

#include "isa.h"

using namespace pyguard;

TEST_CASE("serial is always supported and best_isa is supported") {
    CHECK(isa_supported(Isa::serial));
    CHECK(isa_supported(best_isa()));
    CHECK(parse_isa("auto") == best_isa());
    CHECK(parse_isa("serial") == Isa::serial);
}

TEST_CASE("unknown or unsupported isa names are rejected") {
    CHECK_THROWS_AS(parse_isa("sse9"), std::invalid_argument);
#if PYGUARD_X86
    CHECK_THROWS_AS(parse_isa("neon"), std::invalid_argument);
#else
    CHECK_THROWS_AS(parse_isa("avx2"), std::invalid_argument);
#endif
}
