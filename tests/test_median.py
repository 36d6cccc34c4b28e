"""median_filter against scipy.ndimage.median_filter(mode="reflect"), bit for bit, on every ISA."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ODD_SIZES
from scipy import ndimage

from pyguard import ops
from pyguard._validate import planes
from pyguard.ops import median as median_module
from pyguard.ops import median_filter

SIZES = (2, 3, 5)
# scipy window per layout: size k on H and W, 1 elsewhere
WINDOW = {
    "NCHW": lambda k: (1, 1, k, k),
    "NHWC": lambda k: (1, k, k, 1),
    "CHW": lambda k: (1, k, k),
    "HWC": lambda k: (k, k, 1),
    "HW": lambda k: (k, k),
    "NHW": lambda k: (1, k, k),
}
SHAPE = {  # a shape per layout from (h, w)
    "NCHW": lambda h, w: (2, 3, h, w),
    "NHWC": lambda h, w: (2, h, w, 3),
    "CHW": lambda h, w: (3, h, w),
    "HWC": lambda h, w: (h, w, 3),
    "HW": lambda h, w: (h, w),
    "NHW": lambda h, w: (2, h, w),
}


def scipy_median(x, k, layout="NCHW"):
    return ndimage.median_filter(x, size=WINDOW[layout](k), mode="reflect")


def random_image(rng, shape, dtype, distinct):
    values = rng.integers(0, distinct, size=shape)
    if dtype == np.uint8:
        return (values * (255 // max(1, distinct - 1))).astype(np.uint8)
    return (values.astype(np.float32) * np.float32(0.37) - np.float32(20.0)).astype(np.float32)


def assert_same(got, expect):
    assert got.dtype == expect.dtype and got.shape == expect.shape
    np.testing.assert_array_equal(got, expect)
    assert np.array_equal(got.view(np.uint8), expect.view(np.uint8)), "values equal but bits differ"


# ---- real photos ----

@pytest.mark.parametrize("k", SIZES)
def test_photos_uint8_hwc_match_scipy(photos, isa, k):
    for img in photos.values():
        crop = np.ascontiguousarray(img[:123, :157])
        layout = "HWC" if crop.ndim == 3 else "HW"
        assert_same(median_filter(crop, k, layout=layout, isa=isa), scipy_median(crop, k, layout))


@pytest.mark.parametrize("k", SIZES)
def test_photo_batch_float32_nchw_matches_scipy(photo_batch_nchw, isa, k):
    x = np.ascontiguousarray(photo_batch_nchw[:, :, :101, :131])
    assert_same(median_filter(x, k, isa=isa), scipy_median(x, k))


def test_every_isa_matches_serial_on_photos(photo_batch_nchw, isa):
    x = np.ascontiguousarray(photo_batch_nchw[:, :, 5:102, 7:140])
    for k in SIZES:
        assert_same(median_filter(x, k, isa=isa), median_filter(x, k, isa="serial"))


# ---- random data, odd sizes, every layout ----

@pytest.mark.parametrize("layout", list(WINDOW))
@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_layouts_and_odd_sizes_match_scipy(isa, layout, dtype):
    rng = np.random.default_rng(7)
    for h, w in ODD_SIZES:
        if (h, w) == (223, 225) and layout not in ("NCHW", "HWC"):
            continue  # the large size once per channel order keeps the file fast
        for distinct in (3, 1000):
            x = random_image(rng, SHAPE[layout](h, w), dtype, distinct)
            for k in SIZES:
                assert_same(median_filter(x, k, layout=layout, isa=isa), scipy_median(x, k, layout))


@pytest.mark.parametrize("hw", [(1, 2), (2, 1), (1, 9), (9, 1), (2, 2), (3, 4), (4, 3), (5, 5), (6, 33)])
def test_images_smaller_than_the_window_reflect_like_scipy(isa, hw):
    rng = np.random.default_rng(8)
    for dtype in (np.float32, np.uint8):
        x = random_image(rng, (2, 2, *hw), dtype, 50)
        for k in SIZES:
            assert_same(median_filter(x, k, isa=isa), scipy_median(x, k))


def test_one_dimensional_example_from_the_semantics(isa):
    x = np.array([[0, 10, 3, 7, 1]], np.float32)
    assert median_filter(x, 2, layout="HW", isa=isa).tolist() == [[0, 10, 10, 7, 7]]


def test_wide_rows_with_interleaved_channels(isa):
    rng = np.random.default_rng(9)
    for channels in (1, 2, 4, 5):
        x = random_image(rng, (1, 9, 151, channels), np.uint8, 256)
        for k in SIZES:
            assert_same(median_filter(x, k, layout="NHWC", isa=isa), scipy_median(x, k, "NHWC"))


def test_geometry_fast_path_agrees_with_validate_planes():
    for layout, (ndim, geometry) in median_module._GEOMETRY.items():
        shape = (2, 3, 5, 7)[:ndim]
        assert tuple(geometry(shape)) == planes(shape, layout)


# ---- special values ----

def test_infinities_are_ordinary_values(isa):
    rng = np.random.default_rng(10)
    pool = np.array([np.inf, -np.inf, 1.0, -1.0, 0.5, np.finfo(np.float32).max], np.float32)
    x = rng.choice(pool, size=(2, 3, 17, 29)).astype(np.float32)
    for k in SIZES:
        assert_same(median_filter(x, k, isa=isa), scipy_median(x, k))


def test_signed_zeros_equal_scipy_as_values_and_serial_as_bits(isa):
    rng = np.random.default_rng(11)
    x = rng.choice(np.array([0.0, -0.0, 1.0, -1.0], np.float32), size=(1, 2, 19, 37)).astype(np.float32)
    for k in SIZES:
        got = median_filter(x, k, isa=isa)
        np.testing.assert_array_equal(got, scipy_median(x, k))  # -0.0 == 0.0
        assert np.array_equal(got.view(np.uint32), median_filter(x, k, isa="serial").view(np.uint32))
    all_negative_zero = np.full((1, 1, 4, 5), -0.0, np.float32)
    assert np.signbit(median_filter(all_negative_zero, 3, isa=isa)).all()


@pytest.mark.parametrize("position", [(0, 0, 0, 0), (0, 1, 4, 6), (1, 2, 10, 12), (1, 2, 5, 0)])
def test_nan_raises(isa, position):
    x = np.ones((2, 3, 11, 13), np.float32)
    x[position] = np.nan
    for k in SIZES:
        with pytest.raises(ValueError, match="NaN"):
            median_filter(x, k, isa=isa)


# ---- memory: batches, non-contiguous input, out= ----

def test_batches_equal_per_image_calls(photo_batch_nchw, isa):
    together = median_filter(photo_batch_nchw, 3, isa=isa)
    for i, image in enumerate(photo_batch_nchw):
        assert_same(together[i], median_filter(image, 3, layout="CHW", isa=isa))


def test_non_contiguous_inputs(photos, isa):
    img = photos["astronaut"]
    strided = img[::3, 1::2]  # HWC view with gaps
    assert_same(median_filter(strided, 3, layout="HWC", isa=isa), scipy_median(strided, 3, "HWC"))
    planar = img[:64, :80].transpose(2, 0, 1).astype(np.float32)[None]
    view = planar[:, ::-1, :, ::2]
    assert not view.flags.c_contiguous
    assert_same(median_filter(view, 2, isa=isa), scipy_median(view, 2))


def test_out_is_filled_and_returned(isa):
    rng = np.random.default_rng(12)
    x = random_image(rng, (1, 3, 31, 47), np.float32, 1000)
    out = np.full_like(x, 7.0)
    result = median_filter(x, 5, out=out, isa=isa)
    assert result is out
    assert_same(out, scipy_median(x, 5))


def test_out_may_be_the_input(isa):
    rng = np.random.default_rng(13)
    x = random_image(rng, (2, 23, 29), np.uint8, 256)
    expect = scipy_median(x, 3, "NHW")
    assert median_filter(x, 3, layout="NHW", out=x, isa=isa) is x
    assert_same(x, expect)


# ---- bad input ----

@pytest.mark.parametrize("size", [0, 1, 4, 6, 7, -3])
def test_unsupported_sizes_raise_value_error(size):
    with pytest.raises(ValueError, match="size"):
        median_filter(np.zeros((1, 1, 4, 4), np.float32), size)


@pytest.mark.parametrize("size", [2.0, "3", True, None])
def test_non_integer_sizes_raise_type_error(size):
    with pytest.raises(TypeError, match="size"):
        median_filter(np.zeros((1, 1, 4, 4), np.float32), size)


def test_numpy_integer_size_is_accepted():
    x = np.arange(20, dtype=np.uint8).reshape(4, 5)
    assert_same(median_filter(x, np.int64(3), layout="HW"), scipy_median(x, 3, "HW"))


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.uint16, np.int8, bool])
def test_wrong_dtype_raises_type_error(dtype):
    with pytest.raises(TypeError, match="dtype"):
        median_filter(np.zeros((1, 1, 4, 4), dtype), 2)


def test_non_array_raises_type_error():
    with pytest.raises(TypeError, match="ndarray"):
        median_filter([[1.0, 2.0], [3.0, 4.0]], 2, layout="HW")


@pytest.mark.parametrize(("shape", "layout"), [((4, 4), "NCHW"), ((1, 4, 4), "NCHW"), ((1, 1, 4, 4), "HW"),
                                               ((4, 4, 3), "NHWC"), ((1, 4, 4), "HWCN"), ((4, 4), "hw")])
def test_layout_mismatch_raises_value_error(shape, layout):
    with pytest.raises(ValueError, match="layout"):
        median_filter(np.zeros(shape, np.float32), 3, layout=layout)


@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (1, 3, 0, 4), (1, 3, 4, 0)])
def test_empty_input_raises_value_error(shape):
    with pytest.raises(ValueError, match="empty"):
        median_filter(np.zeros(shape, np.float32), 2)


def test_bad_out_raises():
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="shape"):
        median_filter(x, 2, out=np.zeros((1, 1, 4, 5), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        median_filter(x, 2, out=np.zeros((1, 1, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="contiguous"):
        median_filter(x, 2, out=np.zeros((1, 1, 4, 8), np.float32)[..., ::2])
    read_only = np.zeros_like(x)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        median_filter(x, 2, out=read_only)


def test_bad_isa_raises():
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="isa"):
        median_filter(x, 2, isa="sse9")
    with pytest.raises(TypeError, match="isa"):
        median_filter(x, 2, isa=3)
    unsupported = {"serial", "avx2", "avx512", "neon"} - set(ops.available_isas())
    for name in unsupported:
        with pytest.raises(ValueError, match="not supported"):
            median_filter(x, 2, isa=name)
