"""pyguard: a native inference guard for ONNX Runtime."""

from __future__ import annotations

__version__ = "0.1.0"

from . import ops

__all__ = ["ops", "__version__"]
