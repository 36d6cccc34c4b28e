"""Native kernels on numpy arrays: feature squeezers, input checks and activation-range statistics.

Every op takes float32 or uint8 arrays (activation ops: float32), batches, an ``out=`` array, and works on
the caller's buffer without copying when it is C-contiguous. ``isa=`` picks a SIMD variant explicitly
("serial", "avx2", "avx512", "neon"); the default "auto" uses the best this CPU supports.
"""

from __future__ import annotations

from .. import _core
from .activations import clamp, minmax, range_check
from .bit_depth import bit_depth
from .checks import SampleChecks, sample_checks
from .median import median_filter

# Ops built on OpenCV load it on first use: importing cv2 costs ~16 MB of RSS and ~0.1 s in every process
# that imports pyguard, most of which never squeeze with JPEG or non-local means.
_LAZY = {"jpeg": ".jpeg", "nl_means": ".nl_means"}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    fn = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = fn  # importing the submodule bound its name to the module: rebind to the function
    return fn


def available_isas() -> list[str]:
    """The SIMD variants this CPU and build can run; "serial" (the scalar reference) is always there."""
    return list(_core.supported_isas())


def best_isa() -> str:
    """The variant ``isa="auto"`` resolves to."""
    return str(_core.best_isa())


__all__ = [
    "SampleChecks", "available_isas", "best_isa", "bit_depth", "clamp", "jpeg", "median_filter", "minmax",
    "nl_means", "range_check", "sample_checks",
]
