"""Bundled demo data: a small handwritten-digits CNN in ONNX, clean images and adversarial examples.

Everything is read from files shipped inside the package (see ``pyguard/data/README.md``); nothing is
downloaded. The files are produced by ``tools/make_demo.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DIGITS_DIR = Path(__file__).resolve().parent / "digits"


@dataclass(frozen=True)
class DigitsDemo:
    """The digits demo: model, clean calibration/test splits and adversarial examples of the test split.

    ``adversarial`` maps an attack name (e.g. ``"fgsm_0.3"``, ``"cw_l2_0"``) to ``(x_adv, idx)``: the
    adversarial images and, for each, the index of the clean test image it was made from (so its true label
    is ``y_test[idx]``). Only test images the model classifies correctly were attacked; an attack may fail
    on some of them (``x_adv`` is then still classified correctly).
    """

    model_path: Path
    x_calib: np.ndarray
    y_calib: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    adversarial: dict[str, tuple[np.ndarray, np.ndarray]] = field(repr=False)
    meta: dict[str, Any] = field(repr=False)

    @property
    def attacks(self) -> list[str]:
        return list(self.adversarial)

    def model_bytes(self) -> bytes:
        return self.model_path.read_bytes()


def _load_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as f:
        return f["x"], f["y"]


def _load_adversarial(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    with np.load(path) as f:
        names = [key[: -len("_x")] for key in f.files if key.endswith("_x")]
        return {name: (f[f"{name}_x"], f[f"{name}_idx"]) for name in names}


def load_digits_demo() -> DigitsDemo:
    """Load the bundled digits demo (model path, clean splits, adversarial examples, metadata)."""
    model_path = DIGITS_DIR / "model.onnx"
    if not model_path.is_file():
        raise FileNotFoundError(f"the demo data is missing from {DIGITS_DIR} "
                                "(regenerate it with tools/make_demo.py)")
    x_calib, y_calib = _load_split(DIGITS_DIR / "calib.npz")
    x_test, y_test = _load_split(DIGITS_DIR / "test.npz")
    meta = json.loads((DIGITS_DIR / "meta.json").read_text())
    return DigitsDemo(model_path=model_path, x_calib=x_calib, y_calib=y_calib, x_test=x_test, y_test=y_test,
                      adversarial=_load_adversarial(DIGITS_DIR / "adv.npz"), meta=meta)


__all__ = ["DIGITS_DIR", "DigitsDemo", "load_digits_demo"]
