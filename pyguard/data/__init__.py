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
PHOTOS_DIR = Path(__file__).resolve().parent / "photos"


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


def _as_float(x: np.ndarray) -> np.ndarray:
    """uint8 files (images on the 8-bit grid) load as float32 in [0, 1], like the model's input."""
    return (x.astype(np.float32) / np.float32(255.0)) if x.dtype == np.uint8 else x


def _load_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as f:
        return _as_float(f["x"]), f["y"]


def _load_adversarial(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    with np.load(path) as f:
        names = [key[: -len("_x")] for key in f.files if key.endswith("_x")]
        return {name: (_as_float(f[f"{name}_x"]), f[f"{name}_idx"]) for name in names}


def load_digits_demo() -> DigitsDemo:
    """Load the bundled digits demo (model path, clean splits, adversarial examples, metadata)."""
    return _load_demo(DIGITS_DIR, "tools/make_demo.py")


def load_photos_demo() -> DigitsDemo:
    """Load the natural-photo demo: a CNN telling which bundled photo a 32x32 patch comes from, calibration
    and test patches from different parts of each photo, adversarial examples on the 8-bit grid
    (``tools/make_photos.py``). Same fields as :func:`load_digits_demo`; images are float32 in [0, 1]."""
    return _load_demo(PHOTOS_DIR, "tools/make_photos.py")


def _load_demo(folder: Path, script: str) -> DigitsDemo:
    model_path = folder / "model.onnx"
    if not model_path.is_file():
        raise FileNotFoundError(f"the demo data is missing from {folder} (regenerate it with {script})")
    x_calib, y_calib = _load_split(folder / "calib.npz")
    x_test, y_test = _load_split(folder / "test.npz")
    meta = json.loads((folder / "meta.json").read_text())
    return DigitsDemo(model_path=model_path, x_calib=x_calib, y_calib=y_calib, x_test=x_test, y_test=y_test,
                      adversarial=_load_adversarial(folder / "adv.npz"), meta=meta)


__all__ = ["DIGITS_DIR", "PHOTOS_DIR", "DigitsDemo", "load_digits_demo", "load_photos_demo"]
