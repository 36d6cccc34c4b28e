"""Feature squeezers: the input transformations of the Feature Squeezing detector (Xu, Evans, Qi 2018).

Each squeezer is a small immutable object wrapping one native kernel of :mod:`pyguard.ops`. They work in
*pixel space*: float32 values in [0, 1] (or ``[lo, hi]`` for range-aware squeezers) or uint8, on a model
layout (``NCHW``, ``NHWC`` or ``NHW``), and write into a caller-owned ``out`` buffer so a session reuses
the same memory on every call. Build them from strings with :func:`parse`::

    parse("bit_depth:5"), parse("median:2"), parse("nl_means:11-3-4"), parse("jpeg:75")
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import ops
from .errors import ConfigError

#: Model layouts the session and the squeezers understand (batch first).
MODEL_LAYOUTS = ("NCHW", "NHWC", "NHW")


class Squeezer:
    """Base class. Subclasses define :attr:`spec` and :meth:`apply`."""

    #: True when the squeezer only accepts float values in [0, 1] (or uint8), so other ranges must be
    #: mapped to [0, 1] first; False when it is range-agnostic or takes ``lo``/``hi``.
    needs_unit_range = False

    @property
    def spec(self) -> str:
        raise NotImplementedError

    def apply(self, x: np.ndarray, out: np.ndarray, *, layout: str, lo: float = 0.0,
              hi: float = 1.0) -> np.ndarray:
        """Squeeze a batch ``x`` into ``out`` (same shape and dtype) and return ``out``."""
        raise NotImplementedError

    def __str__(self) -> str:
        return self.spec


def _channels_last_view(x: np.ndarray, layout: str) -> tuple[np.ndarray, str]:
    """Kernels without a grayscale batch layout see NHW as NHWC with one channel (a free view)."""
    if layout == "NHW":
        return x[..., None], "NHWC"
    return x, layout


@dataclass(frozen=True)
class BitDepth(Squeezer):
    """Reduce each value to ``bits`` bits: ``rint(x * (2^bits - 1)) / (2^bits - 1)`` on [lo, hi]."""

    bits: int

    def __post_init__(self) -> None:
        if not isinstance(self.bits, int) or not 1 <= self.bits <= 8:
            raise ConfigError(f"bit_depth bits must be an integer in 1..8, got {self.bits!r}")

    @property
    def spec(self) -> str:
        return f"bit_depth:{self.bits}"

    def apply(self, x, out, *, layout, lo=0.0, hi=1.0):
        if x.dtype == np.uint8:
            return ops.bit_depth(x, self.bits, out=out)
        return ops.bit_depth(x, self.bits, lo=lo, hi=hi, out=out)


@dataclass(frozen=True)
class Median(Squeezer):
    """Median smoothing over a ``size`` x ``size`` window per channel (SciPy ``reflect`` semantics)."""

    size: int

    def __post_init__(self) -> None:
        if self.size not in (2, 3, 5) or isinstance(self.size, bool):
            raise ConfigError(f"median size must be 2, 3 or 5, got {self.size!r}")

    @property
    def spec(self) -> str:
        return f"median:{self.size}"

    def apply(self, x, out, *, layout, lo=0.0, hi=1.0):
        return ops.median_filter(x, self.size, layout=layout, out=out)


@dataclass(frozen=True)
class NLMeans(Squeezer):
    """Non-local means denoising (``NLM_search_patch_h`` of the paper), in 8-bit pixel units."""

    search: int = 11
    patch: int = 3
    h: float = 4.0
    needs_unit_range = True

    def __post_init__(self) -> None:
        for name in ("search", "patch"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1 or v % 2 == 0:
                raise ConfigError(f"nl_means {name} must be a positive odd integer, got {v!r}")
        if not self.h > 0:
            raise ConfigError(f"nl_means h must be positive, got {self.h!r}")

    @property
    def spec(self) -> str:
        return f"nl_means:{self.search}-{self.patch}-{self.h:g}"

    def apply(self, x, out, *, layout, lo=0.0, hi=1.0):
        view, lay = _channels_last_view(x, layout)
        out_view, _ = _channels_last_view(out, layout)
        ops.nl_means(view, search=self.search, patch=self.patch, h=self.h, layout=lay, out=out_view)
        return out


@dataclass(frozen=True)
class Jpeg(Squeezer):
    """JPEG compression round trip at ``quality`` (1..100)."""

    quality: int
    needs_unit_range = True

    def __post_init__(self) -> None:
        if not isinstance(self.quality, int) or not 1 <= self.quality <= 100:
            raise ConfigError(f"jpeg quality must be an integer in 1..100, got {self.quality!r}")

    @property
    def spec(self) -> str:
        return f"jpeg:{self.quality}"

    def apply(self, x, out, *, layout, lo=0.0, hi=1.0):
        view, lay = _channels_last_view(x, layout)
        out_view, _ = _channels_last_view(out, layout)
        ops.jpeg(view, self.quality, layout=lay, out=out_view)
        return out


def _int(text: str, spec: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"bad squeezer {spec!r}: {text!r} is not an integer") from None


def parse(spec: str | Squeezer) -> Squeezer:
    """Build a squeezer from its string form (``"bit_depth:5"``, ``"median:2"``, ``"nl_means:11-3-4"``,
    ``"jpeg:75"``); squeezer objects are returned unchanged."""
    if isinstance(spec, Squeezer):
        return spec
    if not isinstance(spec, str):
        raise ConfigError("a squeezer is a string such as 'median:2' or a Squeezer, "
                          f"got {type(spec).__name__}")
    kind, sep, arg = spec.strip().partition(":")
    if not sep or not arg:
        raise ConfigError(f"bad squeezer {spec!r}: expected 'kind:argument', e.g. 'bit_depth:5', 'median:2'")
    if kind == "bit_depth":
        return BitDepth(_int(arg, spec))
    if kind == "median":
        return Median(_int(arg, spec))
    if kind == "jpeg":
        return Jpeg(_int(arg, spec))
    if kind == "nl_means":
        parts = arg.split("-")
        if len(parts) != 3:
            raise ConfigError(f"bad squeezer {spec!r}: nl_means takes search-patch-h, e.g. 'nl_means:11-3-4'")
        try:
            h = float(parts[2])
        except ValueError:
            raise ConfigError(f"bad squeezer {spec!r}: h={parts[2]!r} is not a number") from None
        return NLMeans(_int(parts[0], spec), _int(parts[1], spec), h)
    raise ConfigError(f"unknown squeezer {kind!r} in {spec!r}; known: bit_depth, median, nl_means, jpeg")


def parse_all(specs) -> tuple[Squeezer, ...]:
    if isinstance(specs, (str, Squeezer)):
        specs = (specs,)
    squeezers = tuple(parse(s) for s in specs)
    names = [s.spec for s in squeezers]
    if len(set(names)) != len(names):
        raise ConfigError(f"duplicate squeezers in {names}")
    return squeezers


__all__ = ["Squeezer", "BitDepth", "Median", "NLMeans", "Jpeg", "parse", "parse_all", "MODEL_LAYOUTS"]
