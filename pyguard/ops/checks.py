"""Per-sample input checks in one pass: non-finite values, values out of range, values off the 8-bit grid."""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np

from .. import _core
from .._validate import as_input, check_isa

_FLOAT32_MAX = float(np.finfo(np.float32).max)
GRID_TOLERANCE = 1e-3


class SampleChecks(NamedTuple):
    """Per-sample counts, each an int64 array of shape (N,)."""

    nonfinite: np.ndarray
    out_of_range: np.ndarray
    off_grid: np.ndarray


def _real(value: object, name: str) -> float:
    if type(value) is float:
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number or None, got {type(value).__name__}")
    return float(value)


def _check_grid(grid: object) -> int | None:
    if grid is None:
        return None
    if isinstance(grid, (bool, np.bool_)) or not isinstance(grid, numbers.Integral):
        raise TypeError(f"grid must be a positive int or None, got {type(grid).__name__}")
    if grid < 1:
        raise ValueError(f"grid must be a positive int or None, got {grid}")
    return int(grid)


def _float_bounds(lo: object, hi: object, grid: int | None) -> tuple[float, float, float]:
    """float32 lo, hi and the grid scale float32(grid / (hi - lo)) (0 when the grid is off)."""
    lo_f = 0.0 if lo is None else _real(lo, "lo")
    hi_f = 1.0 if hi is None else _real(hi, "hi")
    if not (abs(lo_f) <= _FLOAT32_MAX and abs(hi_f) <= _FLOAT32_MAX):
        raise ValueError(f"lo and hi must be finite float32 values, got lo={lo_f}, hi={hi_f}")
    lo32, hi32 = float(np.float32(lo_f)), float(np.float32(hi_f))
    if grid is None:
        if hi32 < lo32:
            raise ValueError(f"hi must be >= lo, got lo={lo_f}, hi={hi_f}")
        return lo32, hi32, 0.0
    if not hi32 > lo32:
        raise ValueError(f"hi must be greater than lo to define a grid, got lo={lo_f}, hi={hi_f}")
    ratio = grid / (hi32 - lo32)
    scale = float(np.float32(ratio)) if ratio <= _FLOAT32_MAX else math.inf
    if not (0.0 < scale < math.inf):
        raise ValueError(f"grid / (hi - lo) = {ratio} does not fit float32")
    return lo32, hi32, scale


def _uint8_bounds(lo: object, hi: object) -> tuple[int, int]:
    """Integer bounds equivalent to lo <= v <= hi for integers v; may fall outside 0..255."""
    lo_f = 0.0 if lo is None else _real(lo, "lo")
    hi_f = 255.0 if hi is None else _real(hi, "hi")
    if math.isnan(lo_f) or math.isnan(hi_f):
        raise ValueError("lo and hi must not be NaN")
    if hi_f < lo_f:
        raise ValueError(f"hi must be >= lo, got lo={lo_f}, hi={hi_f}")
    lo_i = -1 if lo_f == -math.inf else (256 if lo_f == math.inf else math.ceil(lo_f))
    hi_i = -1 if hi_f == -math.inf else (256 if hi_f == math.inf else math.floor(hi_f))
    return max(lo_i, 0), min(hi_i, 255)


def sample_checks(
    x: np.ndarray,
    *,
    lo: float | None = None,
    hi: float | None = None,
    grid: int | None = 255,
    isa: str = "auto",
) -> SampleChecks:
    """Count, per sample (first axis), the values that cannot come from a valid image.

    float32 (lo, hi default to 0, 1; compared in float32): ``nonfinite`` counts NaN and +-Inf;
    ``out_of_range`` finite values below ``lo`` or above ``hi``; ``off_grid`` finite in-range values ``v``
    whose ``t = (v - lo) * float32(grid / (hi - lo))`` (float32 arithmetic) is more than 1e-3 from the
    nearest integer, i.e. not one of the ``grid + 1`` levels of an 8-bit image (``grid=None``: 0).
    uint8 (lo, hi default to 0, 255): only ``out_of_range`` is computed; the other two are 0.
    One pass over memory; the counts are int64 arrays of shape (N,) with N = ``x.shape[0]``.
    """
    isa = check_isa(isa)
    arr = as_input(x)
    if arr.ndim < 1:
        raise ValueError("x must have at least one dimension (the first axis holds the samples)")
    samples = arr.shape[0]
    grid_checked = _check_grid(grid)  # validated for uint8 too, where it has no effect
    nonfinite = np.zeros(samples, np.int64)
    out_of_range = np.zeros(samples, np.int64)
    off_grid = np.zeros(samples, np.int64)
    if arr.dtype == np.uint8:
        lo_i, hi_i = _uint8_bounds(lo, hi)
        if lo_i > hi_i:  # no uint8 value satisfies the bounds
            out_of_range[:] = arr.size // samples
        else:
            _core.sample_checks_u8(arr, samples, lo_i, hi_i, nonfinite, out_of_range, off_grid, isa)
    else:
        lo32, hi32, scale = _float_bounds(lo, hi, grid_checked)
        _core.sample_checks_f32(arr, samples, lo32, hi32, grid_checked is not None, scale,
                                nonfinite, out_of_range, off_grid, isa)
    return SampleChecks(nonfinite, out_of_range, off_grid)
