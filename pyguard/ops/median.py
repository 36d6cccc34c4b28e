"""2-D median filter (feature squeezing's "median smoothing"), bit-exact with SciPy's reflect mode."""

from __future__ import annotations

import numpy as np

from .. import _core
from .._validate import as_input, check_isa, planes, prepare_out

SIZES = (2, 3, 5)


def median_filter(
    x: np.ndarray, size: int, *, layout: str = "NCHW", out: np.ndarray | None = None, isa: str = "auto"
) -> np.ndarray:
    """Median of every ``size`` x ``size`` window over H and W, each channel and image on its own.

    Equals ``scipy.ndimage.median_filter(x, size=(1, 1, size, size), mode="reflect")`` for NCHW (window
    size 1 on the other axes): a window covers offsets ``-(size // 2)`` to ``size - 1 - size // 2`` (2x2
    covers the pixel, the one above, to its left and above-left), the result is the value of ascending
    rank ``size * size // 2`` (for 2x2 the upper middle, no averaging), and borders reflect
    half-sample symmetrically (``d c b a | a b c d``).

    Args:
        x: float32 or uint8 array in ``layout`` (NCHW, NHWC, CHW, HWC, HW or NHW).
        size: 2, 3 or 5.
        out: optional C-contiguous array of x's shape and dtype that must not overlap x.
        isa: "auto" or one of ``available_isas()``.

    Returns:
        The filtered array (``out`` if given), same shape and dtype as ``x``.

    Raises:
        ValueError: on NaN in the input (its median is undefined), a bad size, layout or shape, or an
            ``out`` that overlaps ``x``. When NaN is found, ``out`` holds unspecified values.
        TypeError: on an unsupported dtype.
    """
    check_size(size)
    isa = check_isa(isa)
    x = as_input(x)
    n_planes, height, width, channels = planes(x.shape, layout)
    out = prepare_out(out, x.shape, x.dtype)
    if np.may_share_memory(x, out) and np.shares_memory(x, out):
        raise ValueError("median_filter: out must not overlap x")
    kernel = _core.median_filter_f32 if x.dtype == np.float32 else _core.median_filter_u8
    if not kernel(x, out, n_planes, height, width, channels, size, isa):
        raise ValueError("median_filter: input contains NaN")
    return out


def check_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise TypeError(f"median_filter: size must be an int (2, 3 or 5), got {type(size).__name__}")
    if int(size) not in SIZES:
        raise ValueError(f"median_filter: size must be 2, 3 or 5, got {size}")
    return int(size)
