#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "median.h"

using namespace pyguard;

namespace {

// Independent reference: sort every window (reflected indices) by IEEE totalOrder (-0.0 < +0.0, as the
// kernels rank) and take rank floor(n/2).
template <class T> bool total_less(T a, T b) {
    if constexpr (std::is_same<T, float>::value) {
        if (a == b) return std::signbit(a) && !std::signbit(b); // only -0.0 vs +0.0 differ
        return a < b;
    } else {
        return a < b;
    }
}

template <class T>
std::vector<T> brute_force(const std::vector<T> &x, size_t planes, size_t h, size_t w, size_t c, int k) {
    std::vector<T> y(x.size());
    const ptrdiff_t first = -(k / 2);
    std::vector<T> window;
    for (size_t p = 0; p < planes; ++p)
        for (size_t i = 0; i < h; ++i)
            for (size_t j = 0; j < w; ++j)
                for (size_t ch = 0; ch < c; ++ch) {
                    window.clear();
                    for (int r = 0; r < k; ++r)
                        for (int s = 0; s < k; ++s) {
                            size_t si = median_detail::reflect(static_cast<ptrdiff_t>(i) + first + r, h);
                            size_t sj = median_detail::reflect(static_cast<ptrdiff_t>(j) + first + s, w);
                            window.push_back(x[((p * h + si) * w + sj) * c + ch]);
                        }
                    std::sort(window.begin(), window.end(), total_less<T>);
                    y[((p * h + i) * w + j) * c + ch] = window[window.size() / 2];
                }
    return y;
}

// Floats are shifted by `offset`: 0 keeps them non-negative (the raw-bits fast path), -20 mixes signs.
template <class T> std::vector<T> sample_data(size_t n, std::mt19937 &rng, int distinct, float offset = -20.0f) {
    std::uniform_int_distribution<int> dist(0, distinct - 1);
    std::vector<T> x(n);
    for (auto &v : x) {
        int d = dist(rng);
        if constexpr (std::is_same<T, float>::value) v = static_cast<float>(d) * 0.37f + offset;
        else v = static_cast<T>(d * 255 / std::max(1, distinct - 1));
    }
    return x;
}

template <class T> bool same_bits(const std::vector<T> &a, const std::vector<T> &b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

template <class T> std::vector<T> run(const std::vector<T> &x, size_t planes, size_t h, size_t w, size_t c, int k, Isa isa) {
    // Guard bytes around the output catch writes out of bounds even without a sanitizer.
    std::vector<T> y(x.size() + 128, T(7));
    MedianStatus st = median_filter(x.data(), y.data() + 64, planes, h, w, c, k, isa);
    REQUIRE(st == MedianStatus::ok);
    for (size_t i = 0; i < 64; ++i) REQUIRE((y[i] == T(7) && y[y.size() - 1 - i] == T(7)));
    return std::vector<T>(y.begin() + 64, y.end() - 64);
}

struct Shape { size_t planes, h, w, c; };
const Shape kShapes[] = {{1, 1, 1, 1}, {1, 1, 7, 1},  {1, 7, 1, 1},  {2, 2, 3, 1},  {1, 7, 5, 1},  {1, 5, 7, 3},
                         {3, 4, 4, 3}, {1, 9, 33, 1}, {2, 3, 17, 2}, {1, 6, 70, 1}, {1, 5, 23, 3}, {1, 33, 40, 4},
                         {1, 2, 129, 1}, {1, 13, 67, 3}, {1, 5, 2, 1},  {2, 3, 2, 3},  {1, 1, 2, 1},  {1, 4, 100, 1}};

template <class T> void check_all_variants(int distinct, unsigned seed, float offset = -20.0f) {
    std::mt19937 rng(seed);
    for (const Shape &s : kShapes)
        for (int k : {2, 3, 5}) {
            auto x = sample_data<T>(s.planes * s.h * s.w * s.c, rng, distinct, offset);
            auto expect = brute_force(x, s.planes, s.h, s.w, s.c, k);
            for (Isa isa : supported_isas()) {
                CAPTURE(isa_name(isa));
                CAPTURE(k);
                CAPTURE(s.h);
                CAPTURE(s.w);
                CAPTURE(s.c);
                auto got = run(x, s.planes, s.h, s.w, s.c, k, isa);
                CHECK(same_bits(got, expect));
            }
        }
}

} // namespace

TEST_CASE("median matches a sort-based reference on every variant (float32)") {
    check_all_variants<float>(1000, 1);
    check_all_variants<float>(3, 2); // many duplicates
    check_all_variants<float>(1000, 5, 0.0f); // non-negative: ranked by raw bits
    check_all_variants<float>(4, 6, 0.0f);
}

// 2x2 runs in bands of rows and vertical strips placed by the input's alignment, so every start offset,
// long rows (several wide strips, a ragged end, column 0 with many channels) and several bands are checked.
template <class T> void check_2x2_offsets(float offset) {
    std::mt19937 rng(11);
    const Shape shapes[] = {{2, 6, 300, 1}, {1, 5, 90, 3}, {1, 4, 17, 1}, {1, 3, 16, 1}, {1, 3, 15, 1},
                            {1, 4, 20, 16}, {1, 3, 40, 17}, {1, 4, 700, 1}, {1, 3, 130, 5}, {1, 19, 70, 1},
                            {2, 17, 40, 3}, {1, 8, 33, 1}, {1, 9, 16, 2}};
    for (const Shape &s : shapes)
        for (size_t shift : {0, 1, 3, 5, 15, 33}) {
            const size_t n = s.planes * s.h * s.w * s.c;
            auto x = sample_data<T>(n, rng, 1000, offset);
            auto expect = brute_force(x, s.planes, s.h, s.w, s.c, 2);
            std::vector<T> shifted(n + shift);
            std::copy(x.begin(), x.end(), shifted.begin() + static_cast<ptrdiff_t>(shift));
            for (Isa isa : supported_isas()) {
                CAPTURE(isa_name(isa));
                CAPTURE(s.w);
                CAPTURE(s.c);
                CAPTURE(shift);
                std::vector<T> y(n + 128, T(7));
                REQUIRE(median_filter(shifted.data() + shift, y.data() + 64, s.planes, s.h, s.w, s.c, 2, isa) ==
                        MedianStatus::ok);
                for (size_t i = 0; i < 64; ++i) REQUIRE((y[i] == T(7) && y[y.size() - 1 - i] == T(7)));
                CHECK(same_bits(std::vector<T>(y.begin() + 64, y.end() - 64), expect));
            }
        }
}

TEST_CASE("2x2 strips at every input alignment") {
    check_2x2_offsets<float>(0.0f);   // raw bits
    check_2x2_offsets<float>(-20.0f); // keys, or vrangeps on AVX-512
    check_2x2_offsets<uint8_t>(0.0f);
}

TEST_CASE("one negative value or -0.0 anywhere sends floats from raw bits back to keys") {
    std::mt19937 rng(7);
    const float unusual[] = {-1.0f, -0.0f, -std::numeric_limits<float>::infinity()};
    for (int k : {2, 3, 5})
        for (float u : unusual)
            for (size_t pos : {size_t(0), size_t(40), size_t(2 * 9 * 21 - 1)}) {
                auto x = sample_data<float>(2 * 9 * 21, rng, 50, 0.0f);
                x[pos] = u;
                auto expect = brute_force(x, 2, 9, 21, 1, k);
                for (Isa isa : supported_isas()) {
                    CAPTURE(isa_name(isa));
                    CAPTURE(pos);
                    CHECK(same_bits(run(x, 2, 9, 21, 1, k, isa), expect));
                }
            }
}

TEST_CASE("median matches a sort-based reference on every variant (uint8)") {
    check_all_variants<uint8_t>(256, 3);
    check_all_variants<uint8_t>(2, 4);
}

TEST_CASE("median ranks infinities and signed zeros by totalOrder on every variant") {
    std::mt19937 rng(5);
    const float inf = std::numeric_limits<float>::infinity();
    const float specials[] = {inf, -inf, 0.0f, -0.0f, 1.0f, -1.0f, std::numeric_limits<float>::max(),
                              std::numeric_limits<float>::denorm_min()};
    std::uniform_int_distribution<int> pick(0, 7);
    for (int k : {2, 3, 5}) {
        std::vector<float> x(3 * 11 * 37);
        for (auto &v : x) v = specials[pick(rng)];
        auto expect = brute_force(x, 3, 11, 37, 1, k);
        for (Isa isa : supported_isas()) {
            CAPTURE(isa_name(isa));
            CHECK(same_bits(run(x, 3, 11, 37, 1, k, isa), expect));
        }
    }
}

TEST_CASE("median reports NaN input on every variant, wherever the NaN is") {
    for (Isa isa : supported_isas())
        for (int k : {2, 3, 5})
            for (size_t pos : {size_t(0), size_t(5), size_t(76), size_t(3 * 9 * 13 - 1)}) {
                std::vector<float> x(3 * 9 * 13, 1.0f), y(x.size());
                x[pos] = std::numeric_limits<float>::quiet_NaN();
                CAPTURE(isa_name(isa));
                CAPTURE(pos);
                CHECK(median_filter(x.data(), y.data(), 3, 9, 13, 1, k, isa) == MedianStatus::nan_input);
                x[pos] = 2.0f;
                CHECK(median_filter(x.data(), y.data(), 3, 9, 13, 1, k, isa) == MedianStatus::ok);
            }
}

TEST_CASE("median rejects unsupported sizes") {
    std::vector<float> x(16, 0.0f), y(16);
    for (int k : {0, 1, 4, 6, 7})
        CHECK_THROWS_AS(median_filter(x.data(), y.data(), 1, 4, 4, 1, k, Isa::serial), std::invalid_argument);
}

TEST_CASE("1-D example from the SciPy semantics") {
    std::vector<float> x = {0, 10, 3, 7, 1};
    for (Isa isa : supported_isas()) {
        auto got = run(x, 1, 1, 5, 1, 2, isa);
        CHECK(got == std::vector<float>({0, 10, 10, 7, 7}));
    }
}
