"""Argument validation shared by the ops: clear errors before anything reaches the native core."""

from __future__ import annotations

from typing import Any

import numpy as np

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.uint8))


def as_input(x: Any, name: str = "x", dtypes: tuple[np.dtype, ...] = SUPPORTED_DTYPES) -> np.ndarray:
    """Return ``x`` as a C-contiguous array of a supported dtype.

    A contiguous array of a supported dtype is returned as is (no copy); a non-contiguous one is copied
    into contiguous memory, as OpenCV does. Other dtypes are refused rather than silently converted, so
    a float64 or int array never changes meaning on the way in.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype not in dtypes:
        allowed = ", ".join(str(d) for d in dtypes)
        raise TypeError(f"{name} has dtype {x.dtype}; supported dtypes: {allowed}")
    if x.size == 0:
        raise ValueError(f"{name} is empty (shape {x.shape})")
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    return x


def prepare_out(
    out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype, name: str = "out"
) -> np.ndarray:
    """Validate a caller-supplied output array, or allocate one."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} has shape {out.shape}, expected {tuple(shape)}")
    if out.dtype != dtype:
        raise TypeError(f"{name} has dtype {out.dtype}, expected {np.dtype(dtype)}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")
    return out


def check_isa(isa: str) -> str:
    if not isinstance(isa, str):
        raise TypeError(f"isa must be a string, got {type(isa).__name__}")
    return isa


LAYOUTS = ("NCHW", "NHWC", "CHW", "HWC", "HW", "NHW")


def planes(shape: tuple[int, ...], layout: str) -> tuple[int, int, int, int]:
    """Describe an image array as (planes, height, width, interleaved channels).

    Channel-first layouts are a stack of independent HxW planes; channel-last layouts interleave
    channels, so a plane holds ``channels`` values per pixel.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    if len(shape) != len(layout):
        raise ValueError(f"layout {layout} needs a {len(layout)}-D array, got shape {shape}")
    dims = dict(zip(layout, shape))
    n = dims.get("N", 1)
    c = dims.get("C", 1)
    h, w = dims["H"], dims["W"]
    if layout.endswith("C"):
        return n, h, w, c
    return n * c, h, w, 1
