"""Plain onnxruntime latency (1 thread) on the ResNet-18- and MobileNetV2-shaped benchmark models.

These are the anchors the guarded session is compared with; the report lists them under
"plain onnxruntime". Inputs are crops of a real photo (the weights are random, so only timing matters).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from conftest import tag

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402

MODELS = {"resnet18": models.resnet18_path, "mobilenetv2": models.mobilenetv2_path}


@pytest.fixture(scope="module")
def sessions():
    return {name: models.single_thread_session(path_fn()) for name, path_fn in MODELS.items()}


def photo_batch(photo_u8: np.ndarray, batch: int) -> np.ndarray:
    """``batch`` different 224x224 crops of the photo, float32 NCHW in [0, 1]."""
    crops = [photo_u8[40 * i:40 * i + 224, 60 * i:60 * i + 224] for i in range(batch)]
    return np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2).astype(np.float32) / 255.0)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("name", list(MODELS))
def test_plain_ort(benchmark, sessions, photo_u8, name, batch):
    sess = sessions[name]
    feed = {models.INPUT: photo_batch(photo_u8, batch)}
    tag(benchmark, "plain onnxruntime", "anchor", model=name, batch=batch)
    logits = benchmark(sess.run, None, feed)[0]
    assert logits.shape == (batch, 1000) and np.isfinite(logits).all()
