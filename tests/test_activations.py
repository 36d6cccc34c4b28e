"""minmax / range_check / clamp vs NumPy on every ISA, per sample and per channel, in every layout."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ODD_SIZES

from pyguard import ops


def reduce_axes(ndim: int, channel_axis: int | None) -> tuple[int, ...]:
    keep = None if channel_axis is None else channel_axis % ndim
    return tuple(a for a in range(1, ndim) if a != keep)


def bound_shape(x: np.ndarray, value, channel_axis: int | None) -> np.ndarray:
    value = np.asarray(value, dtype=np.float32)
    if value.ndim == 0 or channel_axis is None:
        return value
    shape = [1] * x.ndim
    shape[channel_axis % x.ndim] = value.size
    return value.reshape(shape)


def numpy_minmax(x, channel_axis=None):
    axes = reduce_axes(x.ndim, channel_axis)
    if not axes:
        return x.copy(), x.copy()
    return x.min(axis=axes), x.max(axis=axes)


def numpy_range_check(x, lo, hi, channel_axis=None):
    lo_b, hi_b = bound_shape(x, lo, channel_axis), bound_shape(x, hi, channel_axis)
    with np.errstate(invalid="ignore", over="ignore"):
        bad = ~((x >= lo_b) & (x <= hi_b))
        excess = np.maximum(lo_b - x, x - hi_b)
    excess = np.where(np.isnan(x), np.float32(np.inf), excess)
    flat_bad = bad.reshape(x.shape[0], -1)
    flat_excess = np.where(bad, excess, np.float32(0)).reshape(x.shape[0], -1)
    return flat_bad.sum(1), flat_excess.max(1).astype(np.float32)


def numpy_clamp(x, lo, hi, channel_axis=None):
    return np.clip(x, bound_shape(x, lo, channel_axis), bound_shape(x, hi, channel_axis))


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.array_equal(got, want, equal_nan=True)


def assert_same_bits(got: np.ndarray, want: np.ndarray) -> None:
    assert_same(got, want)
    assert np.array_equal(np.signbit(got), np.signbit(want))


def activations(shape, seed=0, specials=True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.3, 2.0, size=shape).astype(np.float32)
    if specials:
        flat = x.reshape(-1)
        picks = np.array([np.inf, -np.inf, -0.0, 0.0, 1e-45, -1e-45, 3.4e38, -3.4e38, -1.0, 1.5], np.float32)
        idx = rng.choice(flat.size, size=max(1, flat.size // 50), replace=False)
        flat[idx] = rng.choice(picks, size=idx.size)
    return x


LAYOUT_CASES = [
    ((3, 3, 224, 224), None), ((3, 3, 224, 224), 1), ((2, 224, 224, 3), -1), ((2, 224, 224, 3), 3),
    ((2, 64, 7, 7), 1), ((2, 7, 7, 512), -1), ((4, 10), None), ((4, 10), 1), ((5, 6, 7, 8, 3), 2),
    ((6,), None), ((2, 3, 4099), 1),
]


def test_photo_batch(photo_batch_nchw, isa):
    for axis in (None, 1):
        mins, maxs = ops.minmax(photo_batch_nchw, channel_axis=axis, isa=isa)
        want_min, want_max = numpy_minmax(photo_batch_nchw, axis)
        assert_same(mins, want_min)
        assert_same(maxs, want_max)
    nhwc = np.ascontiguousarray(photo_batch_nchw.transpose(0, 2, 3, 1))
    assert_same(ops.minmax(nhwc, channel_axis=-1, isa=isa)[1], numpy_minmax(nhwc, -1)[1])
    lo, hi = np.array([0.1, 0.2, 0.3], np.float32), np.array([0.8, 0.9, 0.95], np.float32)
    for x, axis in ((photo_batch_nchw, 1), (nhwc, -1)):
        count, excess = ops.range_check(x, lo, hi, channel_axis=axis, isa=isa)
        want_count, want_excess = numpy_range_check(x, lo, hi, axis)
        assert np.array_equal(count, want_count) and count.dtype == np.int64
        assert_same_bits(excess, want_excess)
        # np.clip with array bounds may return the bound for a tie (+0.0 for -0.0): compare values.
        assert_same(ops.clamp(x, lo, hi, channel_axis=axis, isa=isa), numpy_clamp(x, lo, hi, axis))


@pytest.mark.parametrize("shape,axis", LAYOUT_CASES)
def test_layouts_match_numpy(isa, shape, axis):
    x = activations(shape, seed=len(shape) + (axis or 0))
    mins, maxs = ops.minmax(x, channel_axis=axis, isa=isa)
    want_min, want_max = numpy_minmax(x, axis)
    assert_same(mins, want_min)
    assert_same(maxs, want_max)
    channels = None if axis is None else shape[axis]
    for lo, hi in [(-1.0, 1.5), (0.0, 0.0), (-np.inf, 2.0)]:
        count, excess = ops.range_check(x, lo, hi, channel_axis=axis, isa=isa)
        want_count, want_excess = numpy_range_check(x, lo, hi)
        assert np.array_equal(count, want_count)
        assert_same_bits(excess, want_excess)
        assert_same_bits(ops.clamp(x, lo, hi, channel_axis=axis, isa=isa), numpy_clamp(x, lo, hi))
    if channels is not None:
        rng = np.random.default_rng(channels)
        lo = rng.uniform(-2, 0, channels).astype(np.float32)
        hi = (lo + rng.uniform(0, 3, channels)).astype(np.float32)
        count, excess = ops.range_check(x, lo, hi, channel_axis=axis, isa=isa)
        want_count, want_excess = numpy_range_check(x, lo, hi, axis)
        assert np.array_equal(count, want_count)
        assert_same_bits(excess, want_excess)
        # Array bounds: NumPy's inner loop decides whether a tie returns the bound, so compare values.
        assert_same(ops.clamp(x, lo, hi, channel_axis=axis, isa=isa), numpy_clamp(x, lo, hi, axis))
        relu_hi = np.maximum(hi, np.float32(0))  # scalar lo with per-channel hi (a ReLU6-like bound)
        got = ops.clamp(x, 0.0, relu_hi, channel_axis=axis, isa=isa)
        assert_same(got, numpy_clamp(x, 0.0, relu_hi, axis))


@pytest.mark.parametrize("size", ODD_SIZES)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC", "HW", "HWC"])
def test_odd_sizes(isa, size, layout):
    h, w = size
    shape, axis = {"NCHW": ((2, 3, h, w), 1), "NHWC": ((2, h, w, 3), -1), "HW": ((h, w), None),
                   "HWC": ((h, w, 3), -1)}[layout]
    x = activations(shape, seed=h * w, specials=h * w > 4)
    for ax in (None, axis):
        mins, maxs = ops.minmax(x, channel_axis=ax, isa=isa)
        assert_same(mins, numpy_minmax(x, ax)[0])
        assert_same(maxs, numpy_minmax(x, ax)[1])
    count, excess = ops.range_check(x, -1.0, 1.0, isa=isa)
    assert np.array_equal(count, numpy_range_check(x, -1.0, 1.0)[0])
    assert_same_bits(excess, numpy_range_check(x, -1.0, 1.0)[1])
    assert_same_bits(ops.clamp(x, -1.0, 1.0, isa=isa), numpy_clamp(x, -1.0, 1.0))


def test_nan_propagates_per_channel(isa):
    x = activations((2, 4, 9, 9), seed=3, specials=False)
    x[1, 2, 5, 5] = np.nan
    mins, maxs = ops.minmax(x, channel_axis=1, isa=isa)
    assert np.isnan(mins[1, 2]) and np.isnan(maxs[1, 2])
    assert np.isnan(mins).sum() == 1
    assert_same(mins, x.min(axis=(2, 3)))
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    mins, maxs = ops.minmax(nhwc, channel_axis=-1, isa=isa)
    assert_same(maxs, nhwc.max(axis=(1, 2)))
    assert np.isnan(maxs).sum() == 1
    count, excess = ops.range_check(x, -100.0, 100.0, isa=isa)
    assert count.tolist() == [0, 1] and excess[0] == 0 and np.isposinf(excess[1])
    clamped = ops.clamp(x, -1.0, 1.0, isa=isa)
    assert np.isnan(clamped[1, 2, 5, 5]) and np.isnan(clamped).sum() == 1


def test_signed_zero_and_bounds_are_kept_like_np_clip(isa):
    x = np.array([[-0.0, 0.0, 1.0, -1.0, 2.0, np.nan, np.inf, -np.inf] * 5], np.float32)
    for lo, hi in [(0.0, 1.0), (-0.0, 1.0), (-1.0, -0.0)]:
        assert_same_bits(ops.clamp(x, lo, hi, isa=isa), np.clip(x, np.float32(lo), np.float32(hi)))


def test_out_and_in_place(photo_batch_nchw, isa):
    want = numpy_clamp(photo_batch_nchw, 0.2, 0.7)
    out = np.empty_like(photo_batch_nchw)
    assert ops.clamp(photo_batch_nchw, 0.2, 0.7, out=out, isa=isa) is out
    assert_same_bits(out, want)
    x = photo_batch_nchw.copy()
    assert ops.clamp(x, 0.2, 0.7, out=x, isa=isa) is x
    assert_same_bits(x, want)


def test_non_contiguous_inputs(photo_batch_nchw, isa):
    view = photo_batch_nchw.transpose(0, 2, 3, 1)  # NHWC view of NCHW memory
    strided = photo_batch_nchw[:, :, ::3, 1::2]
    for x, axis in ((view, -1), (strided, 1)):
        assert not x.flags.c_contiguous
        assert_same(ops.minmax(x, channel_axis=axis, isa=isa)[0], numpy_minmax(x, axis)[0])
        assert np.array_equal(ops.range_check(x, 0.1, 0.9, isa=isa)[0], numpy_range_check(x, 0.1, 0.9)[0])
        assert_same_bits(ops.clamp(x, 0.1, 0.9, isa=isa), numpy_clamp(x, 0.1, 0.9))


def test_bad_inputs():
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(TypeError, match="dtype uint8"):
        ops.minmax(x.astype(np.uint8))
    with pytest.raises(TypeError, match="dtype float64"):
        ops.clamp(x.astype(np.float64), 0.0, 1.0)
    with pytest.raises(ValueError, match="empty"):
        ops.minmax(np.zeros((0, 3), np.float32))
    with pytest.raises(ValueError, match="dimension"):
        ops.minmax(np.array(1.0, np.float32))
    for axis in (0, 3, -3, 7):
        with pytest.raises(ValueError, match="channel_axis"):
            ops.minmax(x, channel_axis=axis)
    for axis in (1.0, True, "1"):
        with pytest.raises(TypeError, match="channel_axis"):
            ops.minmax(x, channel_axis=axis)
    with pytest.raises(ValueError, match="channel_axis"):
        ops.range_check(x, np.zeros(3, np.float32), 1.0)
    with pytest.raises(ValueError, match="shape"):
        ops.clamp(x, np.zeros(4, np.float32), 1.0, channel_axis=1)
    with pytest.raises(ValueError, match="NaN"):
        ops.clamp(x, np.nan, 1.0)
    with pytest.raises(ValueError, match="lo must be <= hi"):
        ops.range_check(x, 2.0, 1.0)
    with pytest.raises(ValueError, match="lo must be <= hi"):
        ops.clamp(x, np.array([0, 2, 0], np.float32), np.ones(3, np.float32), channel_axis=1)
    with pytest.raises(TypeError, match="lo"):
        ops.clamp(x, "0", 1.0)
    with pytest.raises(TypeError, match="hi"):
        ops.range_check(x, 0.0, [1.0])
    with pytest.raises(ValueError, match="shape"):
        ops.clamp(x, 0.0, 1.0, out=np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="isa"):
        ops.minmax(x, isa="mmx")
