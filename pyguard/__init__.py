"""pyguard: a native inference guard for ONNX Runtime.

Change one import and inference is guarded::

    import pyguard
    profile = pyguard.calibrate("model.onnx", clean_images)
    sess = pyguard.InferenceSession("model.onnx", profile=profile, action="monitor")
    outputs = sess.run(None, {"input": batch})       # exactly what onnxruntime returns
    print(sess.last_report.flagged)
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import activations, faults, ops, squeezers  # noqa: E402
from .calibrate import calibrate  # noqa: E402
from .errors import (  # noqa: E402
    AdversarialInputError,
    ConfigError,
    GuardError,
    InputError,
    ModelError,
    ProfileError,
)
from .harden import harden  # noqa: E402
from .patch import is_patched, patch, unpatch  # noqa: E402
from .profile import GuardProfile  # noqa: E402
from .report import GuardReport  # noqa: E402
from .session import InferenceSession  # noqa: E402

__all__ = [
    "__version__", "ops", "squeezers", "calibrate", "GuardProfile", "GuardReport", "InferenceSession",
    "patch", "unpatch", "is_patched", "GuardError", "InputError", "ConfigError", "ProfileError", "ModelError",
    "AdversarialInputError", "compile_guard", "build_guard_graph", "harden", "activations", "faults",
]


def __getattr__(name: str):
    """``compile_guard`` / ``build_guard_graph`` load pyguard.graph (and onnx, ~0.15 s) on first use only."""
    if name in ("compile_guard", "build_guard_graph"):
        from . import graph

        return getattr(graph, name)
    raise AttributeError(f"module 'pyguard' has no attribute {name!r}")
