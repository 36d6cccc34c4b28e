"""bit_depth: bit-exact with the NumPy one-liner (float32) and with its uint8 definition, on every ISA."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ODD_SIZES

from pyguard import ops


def numpy_bit_depth(x: np.ndarray, bits: int, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    m = 2**bits - 1
    with np.errstate(all="ignore"):
        return np.rint((x - lo) / (hi - lo) * m) / m * (hi - lo) + lo


def numpy_bit_depth_u8(v: np.ndarray, bits: int) -> np.ndarray:
    return np.rint(numpy_bit_depth(v.astype(np.float32) / 255, bits) * 255).astype(np.uint8)


def assert_same_float32(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype == np.float32
    assert got.shape == want.shape
    assert np.array_equal(got, want, equal_nan=True)
    finite = ~np.isnan(want)
    assert np.array_equal(np.signbit(got[finite]), np.signbit(want[finite]))  # -0.0 vs +0.0 too


def with_specials(x: np.ndarray, seed: int = 0) -> np.ndarray:
    x = x.copy()
    flat = x.reshape(-1)
    rng = np.random.default_rng(seed)
    specials = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-45, -1e-45, 1.17e-38, 3.4e38, -3.4e38, 1e30,
                         0.5, 1.0, -1e-9, 255.0, 2.0], dtype=np.float32)
    idx = rng.choice(flat.size, size=min(flat.size, 64), replace=False)
    flat[idx] = rng.choice(specials, size=idx.size)
    return x


RANGES = [(0.0, 1.0), (-1.0, 1.0), (0.1, 0.9), (-0.0, 1.0), (0.0, 255.0), (-123.25, 4096.5)]


@pytest.mark.parametrize("bits", range(1, 9))
def test_photo_batch_matches_numpy(photo_batch_nchw, isa, bits):
    got = ops.bit_depth(photo_batch_nchw, bits, isa=isa)
    assert_same_float32(got, numpy_bit_depth(photo_batch_nchw, bits))


@pytest.mark.parametrize("name", ["astronaut", "coffee", "camera", "sklearn0"])
def test_photos_hwc_float_and_uint8(photos, isa, name):
    img = photos[name]
    x = img.astype(np.float32) / 255
    for bits in (1, 4, 5, 7):
        assert_same_float32(ops.bit_depth(x, bits, isa=isa), numpy_bit_depth(x, bits))
        assert np.array_equal(ops.bit_depth(img, bits, isa=isa), numpy_bit_depth_u8(img, bits))


@pytest.mark.parametrize("lo,hi", RANGES)
@pytest.mark.parametrize("bits", [1, 3, 5, 8])
def test_random_with_special_values(isa, lo, hi, bits):
    rng = np.random.default_rng(bits)
    x = (lo + (hi - lo) * rng.uniform(-0.3, 1.3, size=(2, 3, 37, 41))).astype(np.float32)
    x = with_specials(x, seed=bits)
    assert_same_float32(ops.bit_depth(x, bits, lo=lo, hi=hi, isa=isa), numpy_bit_depth(x, bits, lo, hi))


def test_random_bit_patterns(isa):
    bits_pattern = np.random.default_rng(1).integers(0, 2**32, size=100_003, dtype=np.uint32)
    x = bits_pattern.view(np.float32)
    for bits, (lo, hi) in [(5, (0.0, 1.0)), (2, (0.1, 0.9)), (8, (-1.0, 1.0))]:
        assert_same_float32(ops.bit_depth(x, bits, lo=lo, hi=hi, isa=isa), numpy_bit_depth(x, bits, lo, hi))


@pytest.mark.parametrize("size", ODD_SIZES)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC", "HW", "HWC"])
def test_odd_sizes_and_layouts(isa, size, layout):
    h, w = size
    shape = {"NCHW": (2, 3, h, w), "NHWC": (2, h, w, 3), "HW": (h, w), "HWC": (h, w, 3)}[layout]
    rng = np.random.default_rng(h * 1000 + w)
    x = rng.random(shape, dtype=np.float32)
    u = rng.integers(0, 256, size=shape, dtype=np.uint8)
    assert_same_float32(ops.bit_depth(x, 5, isa=isa), numpy_bit_depth(x, 5))
    assert np.array_equal(ops.bit_depth(u, 3, isa=isa), numpy_bit_depth_u8(u, 3))


@pytest.mark.parametrize("bits", range(1, 9))
def test_uint8_every_value_matches_definition(isa, bits):
    v = np.tile(np.arange(256, dtype=np.uint8), 3)[:700]  # every value, odd length for the tail
    got = ops.bit_depth(v, bits, isa=isa)
    want = numpy_bit_depth_u8(v, bits)
    assert got.dtype == np.uint8
    assert np.array_equal(got, want)
    assert len(np.unique(ops.bit_depth(np.arange(256, dtype=np.uint8), bits, isa=isa))) == 2**bits


def test_non_contiguous_inputs(photo_batch_nchw, isa):
    nhwc_view = photo_batch_nchw.transpose(0, 2, 3, 1)
    strided = photo_batch_nchw[:, :, ::2, 1::3]
    for x in (nhwc_view, strided):
        assert not x.flags.c_contiguous
        assert_same_float32(ops.bit_depth(x, 5, isa=isa), numpy_bit_depth(x, 5))
    u = (photo_batch_nchw * 255).astype(np.uint8)[:, :, :, ::3]
    assert np.array_equal(ops.bit_depth(u, 2, isa=isa), numpy_bit_depth_u8(u, 2))


def test_out_and_in_place(photo_batch_nchw, isa):
    want = numpy_bit_depth(photo_batch_nchw, 4)
    out = np.empty_like(photo_batch_nchw)
    assert ops.bit_depth(photo_batch_nchw, 4, out=out, isa=isa) is out
    assert_same_float32(out, want)
    x = photo_batch_nchw.copy()
    assert ops.bit_depth(x, 4, out=x, isa=isa) is x
    assert_same_float32(x, want)
    u = (photo_batch_nchw * 255).astype(np.uint8)
    want_u = numpy_bit_depth_u8(u, 3)
    assert ops.bit_depth(u, 3, out=u, isa=isa) is u
    assert np.array_equal(u, want_u)


def test_bad_inputs():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="dtype float64"):
        ops.bit_depth(x.astype(np.float64), 5)
    with pytest.raises(TypeError, match="dtype int16"):
        ops.bit_depth(x.astype(np.int16), 5)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        ops.bit_depth([[0.5]], 5)
    with pytest.raises(ValueError, match="empty"):
        ops.bit_depth(np.zeros((0, 3), np.float32), 5)
    for bits in (0, 9, -1):
        with pytest.raises(ValueError, match="bits"):
            ops.bit_depth(x, bits)
    for bits in (2.0, True, "5", None):
        with pytest.raises(TypeError, match="bits"):
            ops.bit_depth(x, bits)
    for lo, hi in [(1.0, 1.0), (1.0, 0.0), (np.nan, 1.0), (0.0, np.inf), (-1e39, 1.0), (0.0, 1e-60)]:
        with pytest.raises(ValueError):
            ops.bit_depth(x, 5, lo=lo, hi=hi)
    with pytest.raises(TypeError, match="lo"):
        ops.bit_depth(x, 5, lo="0")
    with pytest.raises(ValueError, match="defaults"):
        ops.bit_depth(np.zeros(4, np.uint8), 5, hi=255.0)
    with pytest.raises(ValueError, match="shape"):
        ops.bit_depth(x, 5, out=np.zeros((3, 2), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        ops.bit_depth(x, 5, out=np.zeros((2, 3), np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        ops.bit_depth(x, 5, out=np.zeros((3, 2), np.float32).T)
    with pytest.raises(ValueError, match="isa"):
        ops.bit_depth(x, 5, isa="sse9")
    with pytest.raises(TypeError, match="isa"):
        ops.bit_depth(x, 5, isa=2)
