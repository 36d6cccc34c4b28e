"""Shared fixtures: real photos (bundled with scikit-image and scikit-learn) and odd shapes."""

from __future__ import annotations

import numpy as np
import pytest

from pyguard import ops

ODD_SIZES = [(1, 1), (2, 3), (7, 5), (223, 225)]


def _photos() -> dict[str, np.ndarray]:
    from skimage import data
    from sklearn.datasets import load_sample_images

    photos = {
        "astronaut": data.astronaut(),
        "coffee": data.coffee(),
        "chelsea": data.chelsea(),
        "camera": data.camera(),
    }
    for i, img in enumerate(load_sample_images().images):
        photos[f"sklearn{i}"] = np.ascontiguousarray(img)
    return photos


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Real uint8 photos, HxWx3 (camera is HxW)."""
    return _photos()


@pytest.fixture(scope="session")
def photo_batch_nchw(photos) -> np.ndarray:
    """A float32 NCHW batch of three 224x224 real photo crops in [0, 1]."""
    crops = [photos[k][:224, :224] for k in ("astronaut", "coffee", "chelsea")]
    return np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2).astype(np.float32) / 255.0)


def isa_params():
    return [pytest.param(isa, id=isa) for isa in ops.available_isas()]


@pytest.fixture(params=isa_params())
def isa(request) -> str:
    """Every SIMD variant this machine can run, plus the scalar reference."""
    return request.param


@pytest.fixture
def outside_checkout(tmp_path, monkeypatch) -> dict[str, str]:
    """For tests that start other Python processes (subprocess, Ray workers).

    A child started in the repository root would import the source folder ``pyguard/`` rather than the
    package under test (after ``pip install .`` the source folder has no compiled ``_core``). So the child
    runs in an empty folder, and PYTHONPATH names the folder holding the pyguard these tests import.
    """
    import os

    import pyguard

    monkeypatch.chdir(tmp_path)
    root = os.path.dirname(os.path.dirname(os.path.abspath(pyguard.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env
