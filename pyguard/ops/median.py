"""2-D median filter (feature squeezing's "median smoothing"), bit-exact with SciPy's reflect mode."""

from __future__ import annotations

import numpy as np

from .. import _core
from .._validate import as_input, check_isa, planes, prepare_out

SIZES = (2, 3, 5)
_F32, _U8 = np.dtype(np.float32), np.dtype(np.uint8)
_KERNELS = {_F32: _core.median_filter_f32, _U8: _core.median_filter_u8}
_F32_KERNEL, _U8_KERNEL = _core.median_filter_f32, _core.median_filter_u8

# (planes, height, width, channels) per layout, as _validate.planes computes them, without its generic
# parsing (it costs microseconds per call, a tenth of a 2x2 median). Anything unusual goes to planes().
_GEOMETRY = {
    "NCHW": (4, lambda s: (s[0] * s[1], s[2], s[3], 1)),
    "NHWC": (4, lambda s: s),
    "CHW": (3, lambda s: (s[0], s[1], s[2], 1)),
    "HWC": (3, lambda s: (1, s[0], s[1], s[2])),
    "HW": (2, lambda s: (1, s[0], s[1], 1)),
    "NHW": (3, lambda s: (s[0], s[1], s[2], 1)),
}


def median_filter(
    x: np.ndarray, size: int, *, layout: str = "NCHW", out: np.ndarray | None = None, isa: str = "auto"
) -> np.ndarray:
    """Median of every ``size`` x ``size`` window over H and W, each channel and image on its own.

    Equals ``scipy.ndimage.median_filter(x, size=(1, 1, size, size), mode="reflect")`` for NCHW (window
    size 1 on the other axes; ``(1, size, size, 1)`` for NHWC, ``(size, size)`` for HW): a window covers
    offsets ``-(size // 2)`` to ``size - 1 - size // 2`` (so 2x2 covers the pixel, the one above, the one
    to its left and the one above-left), the result is the value of ascending rank ``size * size // 2``
    (for 2x2 the upper middle of four, no averaging), and borders reflect half-sample symmetrically
    (``d c b a | a b c d``), repeating for images smaller than the window. Infinities are ordinary values;
    -0.0 equals 0.0, so where a window's median is a zero of either sign the sign may differ from SciPy's.

    Args:
        x: float32 or uint8 array in ``layout`` (NCHW, NHWC, CHW, HWC, HW or NHW). Non-contiguous input is
            copied first.
        size: 2, 3 or 5.
        out: optional C-contiguous, writeable array of x's shape and dtype. It may be ``x`` itself (or
            overlap it): the input is then copied first.
        isa: "auto" or one of ``pyguard.ops.available_isas()``.

    Returns:
        The filtered array (``out`` when given), same shape and dtype as ``x``.

    Raises:
        ValueError: on NaN in the input (a median of NaN is undefined; ``out`` then holds unspecified
            values), a bad size, an unknown layout, a shape that does not fit the layout, or empty input.
        TypeError: on an unsupported dtype, a non-array input or a non-integer size.
    """
    # The common call (contiguous float32 or uint8 array, known layout, a fitting or no out) is checked with
    # identity tests only: general validation costs about 1 us, a tenth of a 2x2 median on 3x224x224.
    dtype = x.dtype if x.__class__ is np.ndarray else None
    kernel = _F32_KERNEL if dtype is _F32 else _U8_KERNEL if dtype is _U8 else None
    ndim, geometry = _GEOMETRY.get(layout, (None, None))
    shape = x.shape if kernel is not None else None
    if (kernel is None or size.__class__ is not int or size not in SIZES or isa.__class__ is not str
            or ndim != len(shape) or not x.flags.c_contiguous or not x.size
            or not (out is None or (out.__class__ is np.ndarray and out.dtype is dtype and out.shape == shape
                                    and (flags := out.flags).c_contiguous and flags.writeable))):
        return _median_filter_checked(x, size, layout, out, isa)
    if out is None:
        out = np.empty(shape, dtype)
    n_planes, height, width, channels = geometry(shape)
    if not kernel(x, out, n_planes, height, width, channels, size, isa):
        raise ValueError("median_filter: input contains NaN")
    return out


def _median_filter_checked(x: object, size: object, layout: str, out: object, isa: object) -> np.ndarray:
    """median_filter for any call: every argument validated, non-contiguous input copied."""
    size = _check_size(size)
    isa = check_isa(isa)
    x = as_input(x)
    shape = x.shape
    ndim, geometry = _GEOMETRY.get(layout, (None, None))
    n_planes, height, width, channels = geometry(shape) if ndim == len(shape) else planes(shape, layout)
    out = prepare_out(out, shape, x.dtype)
    if not _KERNELS[x.dtype](x, out, n_planes, height, width, channels, size, isa):
        raise ValueError("median_filter: input contains NaN")
    return out


def _check_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise TypeError(f"median_filter: size must be an int (2, 3 or 5), got {type(size).__name__}")
    if int(size) not in SIZES:
        raise ValueError(f"median_filter: size must be 2, 3 or 5, got {size}")
    return int(size)
