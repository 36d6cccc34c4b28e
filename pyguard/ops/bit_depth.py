"""Bit-depth reduction (the feature-squeezing squeezer of Xu et al.), bit-exact with NumPy."""

from __future__ import annotations

import numbers

import numpy as np

from .. import _core
from .._validate import as_input, check_isa, prepare_out

_FLOAT32 = np.dtype(np.float32)
_DEFAULT_LO, _DEFAULT_HI = 0.0, 1.0

# |v| below this rounds to a finite float32; a positive v above _FLOAT32_TINY rounds to a positive one.
_FLOAT32_LIMIT = 3.4028235677973366e38
_FLOAT32_TINY = 2.0**-150


def _check_bits(bits: object) -> int:
    if type(bits) is not int:  # the common case stays cheap; numpy integers are accepted too
        if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, numbers.Integral):
            raise TypeError(f"bits must be an int, got {type(bits).__name__}")
        bits = int(bits)
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be in 1..8, got {bits}")
    return bits


def _real(value: object, name: str) -> float:
    if type(value) is float:
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def _check_range(lo: object, hi: object) -> tuple[float, float]:
    """NumPy rounds lo and hi - lo to float32: both must be finite there, with hi > lo."""
    lo_f, hi_f = _real(lo, "lo"), _real(hi, "hi")
    if not (abs(lo_f) < _FLOAT32_LIMIT and abs(hi_f) < _FLOAT32_LIMIT):
        raise ValueError(f"lo and hi must be finite float32 values, got lo={lo_f}, hi={hi_f}")
    span = hi_f - lo_f
    if not span > 0:
        raise ValueError(f"hi must be greater than lo, got lo={lo_f}, hi={hi_f}")
    if not (_FLOAT32_TINY < span < _FLOAT32_LIMIT):
        raise ValueError(f"hi - lo = {span} is not a finite, positive float32")
    return lo_f, hi_f


def bit_depth(
    x: np.ndarray,
    bits: int,
    *,
    lo: float = _DEFAULT_LO,
    hi: float = _DEFAULT_HI,
    out: np.ndarray | None = None,
    isa: str = "auto",
) -> np.ndarray:
    """Reduce ``x`` to ``2**bits`` levels on ``[lo, hi]``.

    float32: bit for bit what NumPy computes for
    ``np.rint((x - lo) / (hi - lo) * m) / m * (hi - lo) + lo`` with ``m = 2**bits - 1`` (round half to even;
    NaN and infinities propagate as in NumPy). uint8: ``v`` stands for ``v / 255``; the result is
    ``rint(bit_depth(v / 255) * 255)`` (lo and hi must keep their defaults).
    Any shape and batch works (the op is element-wise). ``out`` may be ``x`` to reduce in place.
    """
    # The squeezer runs on every guarded inference: the common call (contiguous float32, default range,
    # new output or a fitting out=) skips the general validation, which costs about as much as the kernel
    # on small images.
    if (type(x) is np.ndarray and x.dtype is _FLOAT32 and type(bits) is int and 0 < bits < 9
            and lo is _DEFAULT_LO and hi is _DEFAULT_HI and type(isa) is str
            and x.flags.c_contiguous and x.size
            and (out is None or (type(out) is np.ndarray and out.dtype is _FLOAT32 and out.shape == x.shape
                                 and (flags := out.flags).c_contiguous and flags.writeable))):
        result = np.empty(x.shape, _FLOAT32) if out is None else out
        _core.bit_depth_f32(x, result, bits, 0.0, 1.0, isa)
        return result
    bits = _check_bits(bits)
    lo_f, hi_f = _check_range(lo, hi)
    isa = check_isa(isa)
    arr = as_input(x)
    result = np.empty_like(arr) if out is None else prepare_out(out, arr.shape, arr.dtype)
    if arr.dtype == np.uint8:
        if (lo_f, hi_f) != (0.0, 1.0):
            raise ValueError("uint8 input means values v/255 on [0, 1]: lo and hi must keep their defaults")
        _core.bit_depth_u8(arr, result, bits, isa)
    else:
        _core.bit_depth_f32(arr, result, bits, lo_f, hi_f, isa)
    return result
