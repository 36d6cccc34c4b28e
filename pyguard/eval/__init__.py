"""Evaluation tools: white-box attacks used to build the demo data and to test the detector.

These need PyTorch (an optional, development-only dependency); ``import pyguard`` never imports it.
"""

from __future__ import annotations

from .whitebox import bim, carlini_wagner_l2, deepfool, fgsm, jsma, pgd_l2, pgd_linf, predict

__all__ = ["bim", "carlini_wagner_l2", "deepfool", "fgsm", "jsma", "pgd_l2", "pgd_linf", "predict"]
