"""A small guarded model, its profile and inputs, shared by the hardening tests (telemetry, audit...)."""

from __future__ import annotations

import functools

import numpy as np
from models import classifier, images

import pyguard


@functools.cache
def model_and_profile(size: int = 16) -> tuple[bytes, pyguard.GuardProfile]:
    """A 16x16 NCHW classifier (dynamic batch, probabilities out) calibrated on 96 smooth images."""
    model = classifier(size=size, outputs=("probs",))
    profile = pyguard.calibrate(model, images(96, size=size, seed=1), squeezers=("bit_depth:3", "median:2"),
                                fpr=0.1, detector="squeeze")
    return model, profile


def mixed_batch(n: int = 8, *, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n images in [0, 1], about half given a NaN or an out-of-range value (always flagged); returns the
    batch and which samples were tampered with."""
    rng = np.random.default_rng(seed)
    x = images(n, size=size, seed=seed + 100)
    tampered = rng.random(n) < 0.5
    for i in np.flatnonzero(tampered):
        if rng.integers(2):
            x[i, 0, rng.integers(size), rng.integers(size)] = np.nan
        else:
            x[i, 1, rng.integers(size), 0] = 1.5
    return x, tampered
