"""Activation-range statistics and enforcement (Ranger-style bounds): min/max, range checks, clamp.

Every op views a float32 batch as (samples, outer, channels, inner): the first axis holds the samples and,
with ``channel_axis``, statistics are kept per channel. They stream through memory once and never copy a
C-contiguous input.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .. import _core
from .._validate import as_input, check_isa, prepare_out

_FLOAT32 = (np.dtype(np.float32),)


def _input(x: object) -> np.ndarray:
    arr = as_input(x, dtypes=_FLOAT32)
    if arr.ndim < 1:
        raise ValueError("x must have at least one dimension (the first axis holds the samples)")
    return arr


def _layout(shape: tuple[int, ...], channel_axis: object) -> tuple[int, int, int, int]:
    """(samples, outer, channels, inner) for a C-contiguous array of this shape."""
    samples = shape[0]
    if channel_axis is None:
        return samples, 1, 1, math.prod(shape[1:])
    if isinstance(channel_axis, (bool, np.bool_)) or not isinstance(channel_axis, numbers.Integral):
        raise TypeError(f"channel_axis must be an int or None, got {type(channel_axis).__name__}")
    ndim = len(shape)
    axis = int(channel_axis) + ndim if channel_axis < 0 else int(channel_axis)
    if not 1 <= axis < ndim:
        raise ValueError(f"channel_axis {channel_axis} is not a non-sample axis of a {ndim}-D array "
                         "(axis 0 holds the samples)")
    return samples, math.prod(shape[1:axis]), shape[axis], math.prod(shape[axis + 1:])


def _bound(value: object, name: str, channels: int | None) -> np.ndarray:
    """A scalar bound as a 1-element float32 array, or a per-channel (C,) array (needs channel_axis)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a real number or an array of shape (C,)")
    if isinstance(value, numbers.Real):
        bound = np.array([value], dtype=np.float32)
    elif isinstance(value, np.ndarray):
        if value.dtype.kind not in "fiu":
            raise TypeError(f"{name} has dtype {value.dtype}; expected a real dtype")
        if channels is None:
            raise ValueError(f"{name} is an array: per-channel bounds need channel_axis")
        if value.shape != (channels,):
            raise ValueError(f"{name} has shape {value.shape}, expected ({channels},) for the channel axis")
        bound = np.ascontiguousarray(value, dtype=np.float32)
    else:
        kind = type(value).__name__
        raise TypeError(f"{name} must be a real number or a numpy array of shape (C,), got {kind}")
    if np.isnan(bound).any():
        raise ValueError(f"{name} must not be NaN")
    return bound


def _bounds(lo: object, hi: object, channels: int | None) -> tuple[np.ndarray, np.ndarray]:
    """float32 bounds, both scalar (1 value) or both per channel (C values), with lo <= hi."""
    lo_b, hi_b = _bound(lo, "lo", channels), _bound(hi, "hi", channels)
    if lo_b.size != hi_b.size:  # one scalar, one per channel: broadcast the scalar
        lo_b, hi_b = np.broadcast_to(lo_b, (channels,)).copy(), np.broadcast_to(hi_b, (channels,)).copy()
    if (lo_b > hi_b).any():
        raise ValueError("lo must be <= hi")
    return lo_b, hi_b


def _layout_for_bounds(arr: np.ndarray, channel_axis: object, lo_b: np.ndarray) -> tuple[int, int, int, int]:
    samples, outer, channels, inner = _layout(arr.shape, channel_axis)
    if lo_b.size == 1 and channel_axis is not None:  # scalar bounds: the channel axis changes nothing
        return samples, 1, 1, outer * channels * inner
    return samples, outer, channels, inner


def minmax(
    x: np.ndarray, *, channel_axis: int | None = None, isa: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample (N,) or per-sample-and-channel (N, C) minimum and maximum, in one pass.

    NaN propagates like ``np.min`` / ``np.max``. ``channel_axis`` is any axis but 0 (negative counts from the
    end). Per-tensor values are ``mins.min(axis=0)`` / ``maxs.max(axis=0)``.
    """
    isa = check_isa(isa)
    arr = _input(x)
    samples, outer, channels, inner = _layout(arr.shape, channel_axis)
    shape = (samples,) if channel_axis is None else (samples, channels)
    mins, maxs = np.empty(shape, np.float32), np.empty(shape, np.float32)
    _core.minmax_f32(arr, samples, outer, channels, inner, mins, maxs, isa)
    return mins, maxs


def range_check(
    x: np.ndarray, lo: float | np.ndarray, hi: float | np.ndarray, *, channel_axis: int | None = None,
    isa: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: how many values lie outside [lo, hi] and by how much at most.

    Returns ``(count, max_excess)``, int64 and float32 arrays of shape (N,). NaN counts as a violation with
    excess +inf; the excess of a violator ``v`` is ``max(lo - v, v - hi)`` in float32, and 0 when there is
    none. ``lo`` / ``hi`` are scalars or (with ``channel_axis``) arrays of shape (C,), compared in float32.
    """
    isa = check_isa(isa)
    arr = _input(x)
    channels = _layout(arr.shape, channel_axis)[2] if channel_axis is not None else None
    lo_b, hi_b = _bounds(lo, hi, channels)
    samples, outer, channels_used, inner = _layout_for_bounds(arr, channel_axis, lo_b)
    counts, excess = np.empty(samples, np.int64), np.empty(samples, np.float32)
    _core.range_check_f32(arr, samples, outer, channels_used, inner, lo_b, hi_b, counts, excess, isa)
    return counts, excess


def clamp(
    x: np.ndarray, lo: float | np.ndarray, hi: float | np.ndarray, *, channel_axis: int | None = None,
    out: np.ndarray | None = None, isa: str = "auto",
) -> np.ndarray:
    """``np.clip(x, lo, hi)`` bit for bit (NaN stays NaN, like ONNX Clip), with optional per-channel bounds.

    ``out=x`` clamps in place. ``lo`` / ``hi`` are scalars or (with ``channel_axis``) arrays of shape (C,).
    A value equal to a bound is returned as is, as np.clip does with scalar bounds (with array bounds NumPy
    sometimes returns the bound, which only differs as -0.0 vs +0.0).
    """
    isa = check_isa(isa)
    arr = _input(x)
    channels = _layout(arr.shape, channel_axis)[2] if channel_axis is not None else None
    lo_b, hi_b = _bounds(lo, hi, channels)
    samples, outer, channels_used, inner = _layout_for_bounds(arr, channel_axis, lo_b)
    result = np.empty_like(arr) if out is None else prepare_out(out, arr.shape, arr.dtype)
    _core.clamp_f32(arr, result, samples, outer, channels_used, inner, lo_b, hi_b, isa)
    return result
