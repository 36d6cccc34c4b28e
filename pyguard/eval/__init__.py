"""Security evaluation: black-box, white-box and adaptive attacks, metrics, reports, scale-out.

Black-box attacks (:mod:`.blackbox`) need only onnxruntime. White-box and adaptive attacks
(:mod:`.whitebox`, :mod:`.adaptive`) need PyTorch, an optional dependency; ``import pyguard`` never imports
it, and neither does this package until a torch-based function runs.
"""

from __future__ import annotations

from .blackbox import BlackBoxResult, QueryModel, simba, square_l2, square_linf
from .whitebox import bim, carlini_wagner_l2, deepfool, fgsm, jsma, pgd_l2, pgd_linf, predict


def __getattr__(name: str):
    # Lazy: these modules pull in matplotlib / torch helpers only when used.
    if name in ("adaptive_pgd", "non_adaptive", "SqueezeDetector"):
        from . import adaptive

        return getattr(adaptive, name)
    if name == "adaptive_fused_pgd":  # issue 5: the adaptive attack on every fused signal
        from .adaptive_fused import adaptive_fused_pgd

        return adaptive_fused_pgd
    if name == "to_torch":
        from .onnx_torch import to_torch

        return to_torch
    if name in ("run_evaluation", "EvalSettings", "EvalResult"):
        from . import suite

        return getattr(suite, name)
    if name == "write_report":
        from .report import write_report

        return write_report
    raise AttributeError(f"module 'pyguard.eval' has no attribute {name!r}")


__all__ = ["bim", "carlini_wagner_l2", "deepfool", "fgsm", "jsma", "pgd_l2", "pgd_linf", "predict",
           "square_linf", "square_l2", "simba", "QueryModel", "BlackBoxResult", "adaptive_pgd",
           "non_adaptive", "SqueezeDetector", "to_torch", "run_evaluation", "EvalSettings", "EvalResult",
           "write_report", "adaptive_fused_pgd"]
