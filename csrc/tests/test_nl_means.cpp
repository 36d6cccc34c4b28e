#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "nl_means.h"

using namespace pyguard;
using nl_means_detail::reflect101;

namespace {

std::vector<uint8_t> random_image(size_t n, uint32_t seed, int lo = 0, int hi = 255) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> dist(lo, hi);
    std::vector<uint8_t> v(n);
    for (auto &x : v) x = static_cast<uint8_t>(dist(rng));
    return v;
}

// A smooth gradient plus noise: realistic distances, so many weights are neither 0 nor the maximum.
std::vector<uint8_t> noisy_gradient(size_t height, size_t width, size_t channels, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> noise(0.0, 6.0);
    std::vector<uint8_t> v(height * width * channels);
    for (size_t y = 0; y < height; ++y)
        for (size_t x = 0; x < width; ++x)
            for (size_t c = 0; c < channels; ++c) {
                const double base = 40.0 + 150.0 * (y + 2 * x + 30 * c) / (height + 2 * width + 90);
                const double value = base + noise(rng);
                v[(y * width + x) * channels + c] = static_cast<uint8_t>(std::min(255.0, std::max(0.0, value)));
            }
    return v;
}

// Brute force from the definition: no tiles, no running sums, the border folded in by index.
void naive_plane(const uint8_t *src, uint8_t *dst, size_t height, size_t width, size_t pixel_stride,
                 size_t channels, size_t search, size_t patch, float h) {
    const auto table = nl_means_detail::make_weight_table(search, patch, h, channels);
    const ptrdiff_t s = static_cast<ptrdiff_t>(search / 2), t = static_cast<ptrdiff_t>(patch / 2);
    const auto px = [&](ptrdiff_t y, ptrdiff_t x, size_t c) {
        return static_cast<int>(src[(reflect101(y, height) * width + reflect101(x, width)) * pixel_stride + c]);
    };
    for (ptrdiff_t i = 0; i < static_cast<ptrdiff_t>(height); ++i)
        for (ptrdiff_t j = 0; j < static_cast<ptrdiff_t>(width); ++j) {
            uint64_t wsum = 0, est[2] = {0, 0};
            for (ptrdiff_t oy = -s; oy <= s; ++oy)
                for (ptrdiff_t ox = -s; ox <= s; ++ox) {
                    int64_t dist = 0;
                    for (ptrdiff_t ty = -t; ty <= t; ++ty)
                        for (ptrdiff_t tx = -t; tx <= t; ++tx)
                            for (size_t c = 0; c < channels; ++c) {
                                const int d = px(i + ty, j + tx, c) - px(i + oy + ty, j + ox + tx, c);
                                dist += d * d;
                            }
                    const uint32_t index = std::min(static_cast<uint32_t>(dist >> table.shift), table.cap);
                    const uint64_t w = static_cast<uint64_t>(table.weights[index]);
                    wsum += w;
                    for (size_t c = 0; c < channels; ++c) est[c] += w * static_cast<uint64_t>(px(i + oy, j + ox, c));
                }
            for (size_t c = 0; c < channels; ++c)
                dst[(static_cast<size_t>(i) * width + static_cast<size_t>(j)) * pixel_stride + c] =
                    static_cast<uint8_t>((est[c] + wsum / 2) / wsum);
        }
}

std::vector<uint8_t> naive(const std::vector<uint8_t> &src, size_t count, size_t height, size_t width,
                           size_t channels, size_t search, size_t patch, float h, float h_color) {
    std::vector<uint8_t> out(src.size());
    const size_t image = height * width * channels;
    for (size_t k = 0; k < count; ++k) {
        const uint8_t *in = src.data() + k * image;
        uint8_t *dst = out.data() + k * image;
        if (channels == 1) {
            naive_plane(in, dst, height, width, 1, 1, search, patch, h);
        } else {
            naive_plane(in, dst, height, width, 3, 1, search, patch, h);
            naive_plane(in + 1, dst + 1, height, width, 3, 2, search, patch, h_color);
        }
    }
    return out;
}

std::vector<uint8_t> run(Isa isa, const std::vector<uint8_t> &src, size_t count, size_t height, size_t width,
                         size_t channels, size_t search, size_t patch, float h, float h_color) {
    std::vector<uint8_t> out(src.size(), 0xAB);
    nl_means_u8(isa, src.data(), out.data(), count, height, width, channels, search, patch, h, h_color);
    return out;
}

struct Case {
    size_t count, height, width, channels, search, patch;
    float h, h_color;
};

} // namespace

TEST_CASE("nl_means: serial equals the brute-force definition") {
    const Case cases[] = {
        {1, 9, 11, 1, 5, 3, 10.0f, 10.0f}, {1, 13, 7, 3, 7, 3, 12.0f, 8.0f}, {2, 6, 5, 3, 3, 1, 20.0f, 30.0f},
        {1, 5, 19, 1, 7, 5, 25.0f, 25.0f}, {1, 1, 1, 3, 11, 3, 4.0f, 4.0f},   {1, 2, 3, 1, 13, 3, 2.0f, 2.0f},
        {1, 3, 2, 3, 11, 7, 30.0f, 40.0f}, {1, 21, 40, 3, 5, 3, 6.0f, 6.0f},  {1, 19, 23, 3, 21, 9, 9.0f, 9.0f},
    };
    uint32_t seed = 1;
    for (const Case &c : cases) {
        const size_t n = c.count * c.height * c.width * c.channels;
        for (const auto &src : {noisy_gradient(c.count * c.height, c.width, c.channels, seed),
                                random_image(n, seed + 100, 100, 140)}) {
            CAPTURE(c.height);
            CAPTURE(c.width);
            CAPTURE(c.channels);
            CAPTURE(c.search);
            CAPTURE(c.patch);
            CHECK(run(Isa::serial, src, c.count, c.height, c.width, c.channels, c.search, c.patch, c.h, c.h_color) ==
                  naive(src, c.count, c.height, c.width, c.channels, c.search, c.patch, c.h, c.h_color));
        }
        ++seed;
    }
}

TEST_CASE("nl_means: every supported ISA equals serial exactly") {
    // Sizes straddle the 16-row / 192-column tiles and the 16-lane blocks; h values give weight tables
    // of every lookup size (a handful of entries up to thousands).
    const Case cases[] = {
        {1, 37, 53, 3, 11, 3, 4.0f, 4.0f},   {2, 19, 35, 3, 13, 3, 2.0f, 2.0f},  {1, 33, 200, 1, 11, 3, 4.0f, 4.0f},
        {1, 17, 400, 3, 5, 3, 7.0f, 9.0f},   {1, 23, 31, 1, 7, 5, 15.0f, 15.0f}, {1, 9, 17, 3, 3, 1, 1.0f, 50.0f},
        {1, 1, 1, 3, 11, 3, 4.0f, 4.0f},     {1, 2, 3, 1, 13, 3, 2.0f, 2.0f},    {1, 7, 5, 3, 11, 3, 4.0f, 4.0f},
        {1, 16, 16, 3, 21, 7, 80.0f, 120.0f}, {1, 18, 33, 1, 9, 3, 0.3f, 0.3f},
        // Patches wider than the look-ahead block (two-pass path) and offsets taller than the last tile.
        {1, 21, 30, 3, 7, 9, 20.0f, 20.0f},   {1, 12, 45, 1, 5, 11, 30.0f, 30.0f}, {1, 37, 41, 3, 21, 3, 5.0f, 5.0f},
    };
    uint32_t seed = 7;
    for (const Case &c : cases) {
        const size_t n = c.count * c.height * c.width * c.channels;
        const std::vector<std::vector<uint8_t>> inputs = {
            noisy_gradient(c.count * c.height, c.width, c.channels, seed), random_image(n, seed),
            random_image(n, seed + 1, 120, 136), std::vector<uint8_t>(n, 0), std::vector<uint8_t>(n, 255)};
        for (size_t k = 0; k < inputs.size(); ++k) {
            const auto expected =
                run(Isa::serial, inputs[k], c.count, c.height, c.width, c.channels, c.search, c.patch, c.h, c.h_color);
            for (Isa isa : supported_isas()) {
                CAPTURE(isa_name(isa));
                CAPTURE(k);
                CAPTURE(c.height);
                CAPTURE(c.width);
                CAPTURE(c.h);
                CHECK(run(isa, inputs[k], c.count, c.height, c.width, c.channels, c.search, c.patch, c.h,
                          c.h_color) == expected);
            }
        }
        ++seed;
    }
}

TEST_CASE("nl_means: edge values, constant images and in-place operation") {
    for (Isa isa : supported_isas()) {
        CAPTURE(isa_name(isa));
        // Alternating 0/255 columns: the largest distances the kernels can see.
        std::vector<uint8_t> stripes(20 * 37 * 3);
        for (size_t i = 0; i < stripes.size(); ++i) stripes[i] = ((i / 3) % 2) ? 255 : 0;
        CHECK(run(isa, stripes, 1, 20, 37, 3, 11, 3, 4.0f, 4.0f) ==
              naive(stripes, 1, 20, 37, 3, 11, 3, 4.0f, 4.0f));
        const std::vector<uint8_t> flat(10 * 12, 77);
        CHECK(run(isa, flat, 1, 10, 12, 1, 11, 3, 4.0f, 4.0f) == flat);
        auto image = noisy_gradient(24, 29, 3, 5);
        const auto expected = run(Isa::serial, image, 1, 24, 29, 3, 11, 3, 4.0f, 6.0f);
        nl_means_u8(isa, image.data(), image.data(), 1, 24, 29, 3, 11, 3, 4.0f, 6.0f);
        CHECK(image == expected);
    }
}

TEST_CASE("nl_means: weight table follows OpenCV's construction") {
    const auto table = nl_means_detail::make_weight_table(11, 3, 4.0f, 1);
    CHECK(table.fixed_point_mult == 2147483647 / (11 * 11 * 255));
    CHECK(table.shift == 4);                                  // 9 -> 16
    CHECK(table.weights[0] == table.fixed_point_mult);        // identical patches get the full weight
    CHECK(table.weights[table.cap] == 0);                     // cut after the first dropped weight
    CHECK(table.weights.size() % 128 == 0);
    for (size_t i = 1; i <= table.cap; ++i) CHECK(table.weights[i] <= table.weights[i - 1]);
    const auto tiny = nl_means_detail::make_weight_table(11, 3, 1e-30f, 2); // h*h underflows to 0 in float
    CHECK(tiny.weights[0] == tiny.fixed_point_mult);
    CHECK(tiny.cap == 1);
    const auto wide = nl_means_detail::make_weight_table(3, 1, 1000.0f, 2); // no weight is dropped
    CHECK(wide.cap == 255u * 255u * 2u);
    CHECK(wide.weights[wide.cap] > 0);
    CHECK(wide.weights[wide.cap] > 0);
}

TEST_CASE("nl_means: bad parameters throw") {
    std::vector<uint8_t> img(4 * 4 * 3, 1), out(img.size());
    const auto call = [&](size_t channels, size_t search, size_t patch, float h, float hc) {
        nl_means_u8(Isa::serial, img.data(), out.data(), 1, 4, 4, channels, search, patch, h, hc);
    };
    CHECK_THROWS_AS(call(2, 11, 3, 4.0f, 4.0f), std::invalid_argument);
    CHECK_THROWS_AS(call(4, 11, 3, 4.0f, 4.0f), std::invalid_argument);
    CHECK_THROWS_AS(call(3, 10, 3, 4.0f, 4.0f), std::invalid_argument);
    CHECK_THROWS_AS(call(3, 11, 4, 4.0f, 4.0f), std::invalid_argument);
    CHECK_THROWS_AS(call(3, 0, 3, 4.0f, 4.0f), std::invalid_argument);
    CHECK_THROWS_AS(call(3, 11, 129, 4.0f, 4.0f), std::invalid_argument);
    CHECK_THROWS_AS(call(3, 2903, 3, 4.0f, 4.0f), std::invalid_argument);
    CHECK_THROWS_AS(call(3, 11, 3, 0.0f, 4.0f), std::invalid_argument);
    CHECK_THROWS_AS(call(3, 11, 3, 4.0f, -1.0f), std::invalid_argument);
    CHECK_THROWS_AS(call(1, 11, 3, std::nanf(""), 4.0f), std::invalid_argument);
    for (Isa isa : {Isa::serial, Isa::avx2, Isa::avx512, Isa::neon})
        if (!isa_supported(isa))
            CHECK_THROWS_AS(nl_means_u8(isa, img.data(), out.data(), 1, 4, 4, 3, 11, 3, 4.0f, 4.0f),
                            std::invalid_argument);
}
