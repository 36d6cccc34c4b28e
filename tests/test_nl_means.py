"""nl_means vs OpenCV's fastNlMeansDenoising[Colored] on real photos: every ISA, layouts, bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pyguard import ops

cv2.setNumThreads(1)

COLOR_PHOTOS = ("astronaut", "coffee", "chelsea", "sklearn0", "sklearn1")
PAPER_CONFIGS = [(11, 3, 4.0), (13, 3, 2.0)]  # NLM_S_B_H on ImageNet and CIFAR-10


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def cv2_nlm(img: np.ndarray, search: int, patch: int, h: float, h_color: float | None = None) -> np.ndarray:
    if img.ndim == 2 or img.shape[-1] == 1:
        return cv2.fastNlMeansDenoising(img, None, h, patch, search).reshape(img.shape)
    return cv2.fastNlMeansDenoisingColored(img, None, h, h if h_color is None else h_color, patch, search)


def crop(photo: np.ndarray, height: int, width: int) -> np.ndarray:
    y, x = (photo.shape[0] - height) // 2, (photo.shape[1] - width) // 2
    return np.ascontiguousarray(photo[y : y + height, x : x + width])


@pytest.mark.parametrize("name", COLOR_PHOTOS)
@pytest.mark.parametrize("search, patch, h", PAPER_CONFIGS)
def test_matches_cv2_colored_on_real_photos(photos, name, search, patch, h):
    img = crop(photos[name], 224, 224)
    expected = cv2_nlm(img, search, patch, h)
    got = ops.nl_means(img, search=search, patch=patch, h=h)
    assert got.dtype == np.uint8 and got.shape == img.shape
    assert psnr(got, expected) >= 40.0
    assert np.array_equal(got, expected)  # the integer arithmetic is OpenCV's, so it is exact here


OTHER_CONFIGS = [(7, 5, 10.0), (21, 7, 3.0), (5, 9, 25.0), (35, 1, 6.0)]  # incl. the two-pass patch path


@pytest.mark.parametrize("search, patch, h", PAPER_CONFIGS + OTHER_CONFIGS)
def test_every_isa_matches_cv2(photos, isa, search, patch, h):
    img = crop(photos["coffee"], 61, 83)
    gray = crop(photos["camera"], 47, 70)
    got = ops.nl_means(img, search=search, patch=patch, h=h, isa=isa)
    assert np.array_equal(got, cv2_nlm(img, search, patch, h))
    got_gray = ops.nl_means(gray, search=search, patch=patch, h=h, layout="HW", isa=isa)
    assert np.array_equal(got_gray, cv2_nlm(gray, search, patch, h))


def test_every_isa_matches_serial_on_a_full_photo(photos, isa):
    img = crop(photos["chelsea"], 223, 225)
    expected = ops.nl_means(img, isa="serial")
    assert np.array_equal(ops.nl_means(img, isa=isa), expected)


def test_separate_color_strength(photos):
    img = crop(photos["astronaut"], 100, 131)
    got = ops.nl_means(img, search=9, patch=3, h=3.0, h_color=12.0)
    assert np.array_equal(got, cv2_nlm(img, 9, 3, 3.0, 12.0))
    assert not np.array_equal(got, ops.nl_means(img, search=9, patch=3, h=3.0))


@pytest.mark.parametrize("h", [1e-30, 0.05, 150.0, 1e30])
def test_extreme_strengths(photos, h):
    """Tiny h keeps only identical patches (h*h underflows in float, as in OpenCV); huge h averages."""
    img = crop(photos["coffee"], 40, 50)
    assert np.array_equal(ops.nl_means(img, h=h), cv2_nlm(img, 11, 3, h))
    gray = np.ascontiguousarray(img[..., 1])
    assert np.array_equal(ops.nl_means(gray, h=h, layout="HW"), cv2_nlm(gray, 11, 3, h))


def test_grayscale_photo_and_single_channel_layouts(photos):
    gray = crop(photos["camera"], 224, 224)
    expected = cv2_nlm(gray, 11, 3, 4.0)
    assert psnr(ops.nl_means(gray, layout="HW"), expected) >= 40.0
    assert np.array_equal(ops.nl_means(gray, layout="HW"), expected)
    assert np.array_equal(ops.nl_means(gray[:, :, None]), expected[:, :, None])
    assert np.array_equal(ops.nl_means(gray[None], layout="CHW"), expected[None])
    assert np.array_equal(ops.nl_means(gray[None, None], layout="NCHW"), expected[None, None])


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (7, 5), (5, 7), (12, 1), (223, 225)])
def test_odd_and_tiny_sizes(photos, size):
    """Images smaller than the search window use OpenCV's repeated reflection of the border."""
    img = crop(photos["astronaut"], *size)
    for search, patch, h in PAPER_CONFIGS:
        got, expected = ops.nl_means(img, search=search, patch=patch, h=h), cv2_nlm(img, search, patch, h)
        assert psnr(got, expected) >= 40.0
        assert np.array_equal(got, expected)
        gray = np.ascontiguousarray(img[..., 0])
        got_gray = ops.nl_means(gray, search=search, patch=patch, h=h, layout="HW")
        assert np.array_equal(got_gray, cv2_nlm(gray, search, patch, h))


def test_batch_nhwc_and_nchw(photos):
    batch = np.stack([crop(photos[k], 64, 96) for k in ("astronaut", "coffee", "chelsea")])
    expected = np.stack([cv2_nlm(img, 11, 3, 4.0) for img in batch])
    assert np.array_equal(ops.nl_means(batch, layout="NHWC"), expected)
    nchw = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
    assert np.array_equal(ops.nl_means(nchw, layout="NCHW"), expected.transpose(0, 3, 1, 2))
    chw = ops.nl_means(nchw[1], layout="CHW")
    assert np.array_equal(chw, expected[1].transpose(2, 0, 1))


def squeeze_reference(x: np.ndarray, search: int, patch: int, h: float) -> np.ndarray:
    """The Feature Squeezing NLM squeezer on float NCHW: to uint8, cv2 per image, back to [0, 1]."""
    u8 = np.clip(np.rint(x * np.float32(255)), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    den = np.stack([cv2_nlm(np.ascontiguousarray(img), search, patch, h) for img in u8])
    return (den.astype(np.float32) / np.float32(255)).transpose(0, 3, 1, 2)


def test_float32_batch_like_the_squeezer(photo_batch_nchw):
    got = ops.nl_means(photo_batch_nchw, layout="NCHW")
    assert got.dtype == np.float32 and got.shape == photo_batch_nchw.shape
    np.testing.assert_array_equal(got, squeeze_reference(photo_batch_nchw, 11, 3, 4.0))


def test_float32_is_rounded_and_clipped(photos):
    img = crop(photos["coffee"], 30, 41).astype(np.float32) / 255
    img[0, 0] = [-0.5, 1.5, 0.5]
    img[1, 1] = [0.5 / 255, 1.5 / 255, 254.5 / 255]  # halves round to even, as numpy's rint does
    u8 = np.clip(np.rint(img * np.float32(255)), 0, 255).astype(np.uint8)
    expected = cv2_nlm(u8, 11, 3, 4.0).astype(np.float32) / 255
    np.testing.assert_array_equal(ops.nl_means(img), expected)


def test_non_contiguous_input(photos):
    base = photos["chelsea"][:120:2, 10:200:3]  # strided rows and columns
    assert not base.flags.c_contiguous
    expected = cv2_nlm(np.ascontiguousarray(base), 11, 3, 4.0)
    assert np.array_equal(ops.nl_means(base), expected)
    bgr_view = photos["chelsea"][:50, :60, ::-1]  # reversed channels
    assert np.array_equal(ops.nl_means(bgr_view), cv2_nlm(np.ascontiguousarray(bgr_view), 11, 3, 4.0))


@pytest.mark.parametrize("layout", ["HWC", "CHW"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_out_argument(photos, layout, dtype):
    img = crop(photos["astronaut"], 40, 52)
    x = img if layout == "HWC" else np.ascontiguousarray(img.transpose(2, 0, 1))
    x = x if dtype == np.uint8 else x.astype(np.float32) / 255
    expected = ops.nl_means(x, layout=layout)
    out = np.full_like(x, 7)
    result = ops.nl_means(x, layout=layout, out=out)
    assert result is out
    assert np.array_equal(out, expected)


def test_in_place_uint8(photos):
    for img in (crop(photos["coffee"], 33, 45), crop(photos["camera"], 33, 45)):
        layout = "HWC" if img.ndim == 3 else "HW"
        expected = ops.nl_means(img, layout=layout)
        work = img.copy()
        assert ops.nl_means(work, layout=layout, out=work) is work
        assert np.array_equal(work, expected)


def test_input_is_not_modified(photos):
    img = crop(photos["coffee"], 33, 45)
    before = img.copy()
    ops.nl_means(img)
    ops.nl_means(img.astype(np.float32) / 255)
    assert np.array_equal(img, before)


@pytest.mark.parametrize(
    "x, kwargs, error",
    [
        (np.zeros((8, 8, 3), np.float64), {}, TypeError),
        (np.zeros((8, 8, 3), np.int32), {}, TypeError),
        ([[1, 2], [3, 4]], {"layout": "HW"}, TypeError),
        (np.zeros((8, 8, 2), np.uint8), {}, ValueError),
        (np.zeros((8, 8, 4), np.uint8), {}, ValueError),
        (np.zeros((4, 8, 8), np.uint8), {"layout": "CHW"}, ValueError),
        (np.zeros((1, 2, 8, 8), np.float32), {"layout": "NCHW"}, ValueError),
        (np.zeros((0, 8, 3), np.uint8), {}, ValueError),
        (np.zeros((2, 0, 8, 3), np.uint8), {"layout": "NHWC"}, ValueError),
        (np.zeros((8, 8), np.uint8), {}, ValueError),  # 2-D needs layout="HW"
        (np.zeros((8, 8, 3), np.uint8), {"layout": "WHC"}, ValueError),
        (np.zeros((8, 8, 3), np.uint8), {"patch": 4}, ValueError),
        (np.zeros((8, 8, 3), np.uint8), {"patch": 0}, ValueError),
        (np.zeros((8, 8, 3), np.uint8), {"patch": -3}, ValueError),
        (np.zeros((8, 8, 3), np.uint8), {"patch": 129}, ValueError),
        (np.zeros((8, 8, 3), np.uint8), {"search": 10}, ValueError),
        (np.zeros((8, 8, 3), np.uint8), {"search": 0}, ValueError),
        (np.zeros((8, 8, 3), np.uint8), {"search": -11}, ValueError),
        (np.zeros((8, 8, 3), np.uint8), {"search": 3.0}, TypeError),
        (np.zeros((8, 8, 3), np.uint8), {"patch": True}, TypeError),
        (np.zeros((8, 8, 3), np.uint8), {"h": 0.0}, ValueError),
        (np.zeros((8, 8, 3), np.uint8), {"h": -4.0}, ValueError),
        (np.zeros((8, 8, 3), np.uint8), {"h": float("nan")}, ValueError),
        (np.zeros((8, 8, 3), np.uint8), {"h": float("inf")}, ValueError),
        (np.zeros((8, 8, 3), np.uint8), {"h_color": 0.0}, ValueError),
        (np.zeros((8, 8, 3), np.uint8), {"h": "4"}, TypeError),
        (np.full((8, 8, 3), np.nan, np.float32), {}, ValueError),
        (np.zeros((8, 8, 3), np.uint8), {"isa": "sse9"}, ValueError),
        (np.zeros((8, 8, 3), np.uint8), {"isa": 3}, TypeError),
        (np.zeros((8, 8, 3), np.uint8), {"out": np.zeros((8, 8, 3), np.float32)}, TypeError),
        (np.zeros((8, 8, 3), np.uint8), {"out": np.zeros((8, 9, 3), np.uint8)}, ValueError),
        (np.zeros((8, 8, 3), np.uint8), {"out": np.zeros((8, 8, 6), np.uint8)[..., ::2]}, ValueError),
    ],
)
def test_bad_input(x, kwargs, error):
    with pytest.raises(error):
        ops.nl_means(x, **kwargs)


@pytest.mark.parametrize("shape, layout", [((8, 8, 2), "HWC"), ((4, 8, 8), "CHW"), ((2, 4, 8, 8), "NCHW")])
def test_channel_count_error_names_the_problem(shape, layout):
    with pytest.raises(ValueError, match="1 or 3 channels"):
        ops.nl_means(np.zeros(shape, np.uint8), layout=layout)


def test_unsupported_isa_is_refused():
    missing = [isa for isa in ("avx2", "avx512", "neon") if isa not in ops.available_isas()]
    for isa in missing:
        with pytest.raises(ValueError, match="not supported"):
            ops.nl_means(np.zeros((8, 8, 3), np.uint8), isa=isa)
