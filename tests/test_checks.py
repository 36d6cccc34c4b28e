"""sample_checks: per-sample non-finite / out-of-range / off-grid counts vs a NumPy reference, every ISA."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ODD_SIZES

from pyguard import ops


def numpy_checks(x: np.ndarray, lo: float = 0.0, hi: float = 1.0, grid: int | None = 255):
    flat = x.reshape(x.shape[0], -1)
    lo32, hi32 = np.float32(lo), np.float32(hi)
    finite = np.isfinite(flat)
    with np.errstate(invalid="ignore", over="ignore"):
        outside = (flat < lo32) | (flat > hi32)
        inside = finite & ~outside
        if grid is None:
            off = np.zeros_like(inside)
        else:
            scale = np.float32(grid / (float(hi32) - float(lo32)))
            t = (flat - lo32) * scale
            off = inside & (np.abs(t - np.rint(t)) > np.float32(1e-3))
    return (~finite).sum(1), (finite & outside).sum(1), off.sum(1)


def assert_checks(got: ops.SampleChecks, want) -> None:
    assert isinstance(got, ops.SampleChecks)
    for field, expected in zip(got, want):
        assert field.dtype == np.int64
        assert field.shape == expected.shape
        assert np.array_equal(field, expected)


def test_clean_photo_batch_has_no_findings(photo_batch_nchw, isa):
    got = ops.sample_checks(photo_batch_nchw, isa=isa)
    assert_checks(got, numpy_checks(photo_batch_nchw))
    assert got.nonfinite.tolist() == got.out_of_range.tolist() == got.off_grid.tolist() == [0, 0, 0]


def test_perturbed_photos_are_off_grid(photo_batch_nchw, isa):
    rng = np.random.default_rng(0)
    x = photo_batch_nchw.copy()
    x[1] += rng.uniform(-0.01, 0.01, size=x[1].shape).astype(np.float32)  # an FGSM-like perturbation
    x[2, 0, :5, :5] = np.nan
    x[2, 1, 0, :7] = np.inf
    got = ops.sample_checks(x, isa=isa)
    assert_checks(got, numpy_checks(x))
    assert got.off_grid[0] == 0 and got.off_grid[1] > x[1].size // 2
    assert got.out_of_range[1] > 0
    assert got.nonfinite.tolist() == [0, 0, 32]


@pytest.mark.parametrize("name", ["astronaut", "camera", "sklearn1"])
def test_photos_uint8_and_float(photos, isa, name):
    img = photos[name]
    batch = np.stack([img, 255 - img])
    got = ops.sample_checks(batch, isa=isa)
    assert got.out_of_range.tolist() == [0, 0] and got.off_grid.tolist() == [0, 0]
    got = ops.sample_checks(batch, lo=20, hi=230.5, isa=isa)
    want = ((batch < 20) | (batch > 230)).reshape(2, -1).sum(1)
    assert np.array_equal(got.out_of_range, want)
    assert got.nonfinite.tolist() == [0, 0]
    x = batch.astype(np.float32) / 255
    assert_checks(ops.sample_checks(x, isa=isa), numpy_checks(x))
    x255 = batch.astype(np.float32)
    assert_checks(ops.sample_checks(x255, lo=0, hi=255, isa=isa), numpy_checks(x255, 0, 255))


@pytest.mark.parametrize("lo,hi,grid", [(0.0, 1.0, 255), (0.0, 1.0, None), (-1.0, 1.0, 255), (0.1, 0.9, 16),
                                        (0.0, 255.0, 255), (-3.0, 3.0, 1000)])
def test_random_with_special_values(isa, lo, hi, grid):
    rng = np.random.default_rng(grid or 7)
    levels = rng.integers(0, 256, size=(4, 3, 17, 19)).astype(np.float32) / np.float32(255)
    x = (levels * np.float32(hi - lo) + lo).astype(np.float32)
    flat = x.reshape(-1)
    idx = rng.choice(flat.size, 400, replace=False)
    specials = [np.nan, np.inf, -np.inf, -0.0, 1e-45, 3.4e38, -3.4e38, lo - 1e-3, hi + 1e-3, 0.5, 1.0 + 1e-7]
    flat[idx] = rng.choice(np.array(specials, np.float32), size=400)
    flat[rng.choice(flat.size, 400, replace=False)] += rng.normal(0, 0.003, 400).astype(np.float32)
    bits = rng.integers(0, 2**32, size=300, dtype=np.uint32)
    flat[:300] = bits.view(np.float32)
    assert_checks(ops.sample_checks(x, lo=lo, hi=hi, grid=grid, isa=isa), numpy_checks(x, lo, hi, grid))


@pytest.mark.parametrize("size", ODD_SIZES)
@pytest.mark.parametrize("shape_of", ["NCHW", "NHWC", "HW", "HWC"])
def test_odd_sizes_and_layouts(isa, size, shape_of):
    h, w = size
    shape = {"NCHW": (2, 3, h, w), "NHWC": (2, h, w, 3), "HW": (h, w), "HWC": (h, w, 3)}[shape_of]
    rng = np.random.default_rng(h * w)
    x = rng.uniform(-0.1, 1.1, size=shape).astype(np.float32)
    assert_checks(ops.sample_checks(x, isa=isa), numpy_checks(x))
    u = rng.integers(0, 256, size=shape, dtype=np.uint8)
    got = ops.sample_checks(u, lo=10, hi=240, isa=isa)
    assert np.array_equal(got.out_of_range, ((u < 10) | (u > 240)).reshape(shape[0], -1).sum(1))


def test_one_dimensional_input_is_one_value_per_sample(isa):
    x = np.array([0.5, np.nan, 2.0, 3 / 255], np.float32)
    got = ops.sample_checks(x, isa=isa)
    assert got.nonfinite.tolist() == [0, 1, 0, 0]
    assert got.out_of_range.tolist() == [0, 0, 1, 0]
    assert got.off_grid.tolist() == [1, 0, 0, 0]


def test_non_contiguous_inputs(photo_batch_nchw, isa):
    view = photo_batch_nchw.transpose(0, 2, 3, 1)[:, ::3]
    x = view + np.float32(0.002)
    for arr in (view, x[:, :, ::2]):
        assert not arr.flags.c_contiguous
        assert_checks(ops.sample_checks(arr, isa=isa), numpy_checks(arr))


def test_uint8_bounds_edge_cases(isa):
    u = np.arange(256, dtype=np.uint8).reshape(2, 128)
    assert ops.sample_checks(u, isa=isa).out_of_range.tolist() == [0, 0]
    assert ops.sample_checks(u, lo=300, hi=400, isa=isa).out_of_range.tolist() == [128, 128]
    assert ops.sample_checks(u, lo=-np.inf, hi=-1, isa=isa).out_of_range.tolist() == [128, 128]
    assert ops.sample_checks(u, lo=0.5, hi=127.9, isa=isa).out_of_range.tolist() == [1, 128]
    assert ops.sample_checks(u, lo=127, hi=128, isa=isa).out_of_range.tolist() == [127, 127]


def test_bad_inputs():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="dtype float64"):
        ops.sample_checks(x.astype(np.float64))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        ops.sample_checks([0.5])
    with pytest.raises(ValueError, match="empty"):
        ops.sample_checks(np.zeros((0, 4), np.float32))
    with pytest.raises(ValueError, match="dimension"):
        ops.sample_checks(np.array(0.5, np.float32))
    with pytest.raises(ValueError, match="greater"):
        ops.sample_checks(x, lo=1.0, hi=1.0)
    with pytest.raises(ValueError, match=">= lo"):
        ops.sample_checks(x, lo=1.0, hi=0.0, grid=None)
    for lo, hi in [(np.nan, 1.0), (0.0, np.inf), (-1e39, 1.0)]:
        with pytest.raises(ValueError, match="finite"):
            ops.sample_checks(x, lo=lo, hi=hi)
    with pytest.raises(ValueError, match="float32"):
        ops.sample_checks(x, lo=0.0, hi=1e-44, grid=255)
    with pytest.raises(ValueError, match="NaN"):
        ops.sample_checks(np.zeros(3, np.uint8), lo=np.nan)
    for grid in (0, -5):
        with pytest.raises(ValueError, match="grid"):
            ops.sample_checks(x, grid=grid)
    for grid in (2.5, True, "255"):
        with pytest.raises(TypeError, match="grid"):
            ops.sample_checks(x, grid=grid)
    with pytest.raises(TypeError, match="lo"):
        ops.sample_checks(x, lo="0")
    with pytest.raises(ValueError, match="isa"):
        ops.sample_checks(x, isa="avx1024")
