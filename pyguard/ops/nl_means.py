"""Non-local means denoising: the NLM squeezer of Feature Squeezing (NLM_S_B_H), native and single-threaded.

Matches ``cv2.fastNlMeansDenoisingColored(img, None, h, h_color, patch, search)`` for 3-channel images and
``cv2.fastNlMeansDenoising(img, None, h, patch, search)`` for 1-channel ones. As OpenCV does, a colour
image is read as BGR, converted to CIELAB (with cv2.cvtColor), L is denoised with ``h`` and the (a, b) pair
jointly with ``h_color``, then converted back; the denoising itself is pyguard's C++ kernel, which
reproduces OpenCV's integer arithmetic (so results agree with OpenCV bit for bit).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .. import _core
from .._validate import as_input, check_isa, planes, prepare_out

NL_MEANS_LAYOUTS = ("HWC", "NHWC", "CHW", "NCHW", "HW", "NHW")
_MAX_SEARCH = 2901  # search^2 * 255 must fit the int32 fixed-point sums (as in OpenCV)
_MAX_PATCH = 127  # patch^2 * 255^2 * 2 must fit the int32 distance sums


def _check_window(name: str, value: object, largest: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0 or value % 2 == 0 or value > largest:
        raise ValueError(f"{name} must be a positive odd int <= {largest}, got {value}")
    return int(value)


def _check_strength(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value <= 0.0 or not math.isfinite(float(np.float32(value))):
        raise ValueError(f"{name} must be finite and > 0, got {value}")
    return value


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """float32 in [0, 1] -> uint8 as the squeezer does: rint(x * 255) clipped; uint8 passes through."""
    if x.dtype == np.uint8:
        return x
    if not np.isfinite(x).all():
        raise ValueError("x contains NaN or infinity")
    scaled = np.rint(x * np.float32(255.0))
    return np.clip(scaled, 0, 255, out=scaled).astype(np.uint8)


def _to_nhwc(x: np.ndarray, layout: str) -> np.ndarray:
    """A C-contiguous (N, H, W, C) view or copy of x."""
    if layout in ("HW", "NHW"):
        x = x[..., None]
    elif layout in ("CHW", "NCHW"):
        x = np.moveaxis(x, -3, -1)
    if x.ndim == 3:
        x = x[None]
    return np.ascontiguousarray(x)


def _from_nhwc(y: np.ndarray, layout: str, shape: tuple[int, ...]) -> np.ndarray:
    """Undo _to_nhwc: a view of y with the caller's layout and shape."""
    if layout in ("CHW", "NCHW"):
        y = np.moveaxis(y, -1, -3)
    return y.reshape(shape)


def _denoise_nhwc(
    x: np.ndarray, search: int, patch: int, h: float, h_color: float, isa: str, out: np.ndarray | None
) -> np.ndarray:
    """Denoise a contiguous (N, H, W, C) uint8 batch; out, if given, is a contiguous array of that shape."""
    n, height, width, channels = x.shape
    if channels == 1:
        y = np.empty_like(x) if out is None else out
        _core.nl_means_u8(x, y, search, patch, h, h_color, isa)
        return y
    rows = (n * height, width, 3)  # cvtColor works per pixel, so the batch is one tall image
    lab = cv2.cvtColor(x.reshape(rows), cv2.COLOR_LBGR2Lab).reshape(x.shape)
    _core.nl_means_u8(lab, lab, search, patch, h, h_color, isa)
    y = cv2.cvtColor(lab.reshape(rows), cv2.COLOR_Lab2LBGR)
    if out is None:
        return y.reshape(x.shape)
    out.reshape(rows)[...] = y
    return out


def nl_means(
    x: np.ndarray,
    *,
    search: int = 11,
    patch: int = 3,
    h: float = 4.0,
    h_color: float | None = None,
    layout: str = "HWC",
    out: np.ndarray | None = None,
    isa: str = "auto",
) -> np.ndarray:
    """Non-local means denoising of images with 1 or 3 channels (OpenCV's fastNlMeansDenoising[Colored]).

    Args:
        x: uint8, or float32 in [0, 1] (rounded to uint8 as ``rint(x * 255)`` clipped, denoised, returned
            divided by 255). Layouts "HWC", "NHWC", "CHW", "NCHW" (1 or 3 channels, 3 = BGR as in OpenCV)
            and "HW", "NHW" (grayscale).
        search: odd size of the search window (S in NLM_S_B_H; OpenCV's searchWindowSize).
        patch: odd size of the compared patches (B; OpenCV's templateWindowSize).
        h: filter strength for the luminance (or the single channel).
        h_color: strength for the two colour components; ``None`` means ``h``. Unused for 1 channel.
        layout: the layout of ``x``.
        out: optional C-contiguous array of x's shape and dtype to write into.
        isa: "auto" or a variant from ``available_isas()``.

    Returns:
        The denoised array, with x's shape, layout and dtype (``out`` if given).
    """
    check_isa(isa)
    if not isinstance(layout, str) or layout not in NL_MEANS_LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(NL_MEANS_LAYOUTS)}")
    search = _check_window("search", search, _MAX_SEARCH)
    patch = _check_window("patch", patch, _MAX_PATCH)
    h = _check_strength("h", h)
    h_color = h if h_color is None else _check_strength("h_color", h_color)
    x = as_input(x)
    planes(x.shape, layout)  # checks the number of dimensions against the layout
    channels = x.shape[layout.index("C")] if "C" in layout else 1
    if channels not in (1, 3):
        raise ValueError(f"nl_means needs 1 or 3 channels, got {channels} (shape {x.shape}, layout {layout})")
    out = prepare_out(out, x.shape, x.dtype)

    x8 = _to_nhwc(_to_uint8(x), layout)
    direct = x.dtype == np.uint8 and layout not in ("CHW", "NCHW")  # out already has the NHWC memory order
    y8 = _denoise_nhwc(x8, search, patch, h, h_color, isa, out.reshape(x8.shape) if direct else None)
    if direct:
        return out
    result = _from_nhwc(y8, layout, x.shape)
    if x.dtype == np.uint8:
        out[...] = result
    else:
        np.divide(result, np.float32(255.0), out=out)
    return out
