"""Benchmarks run on one thread so ratios compare kernels, not core counts.

Convention (read by bench/report.py): every benchmark sets ``benchmark.extra_info`` with
``target`` (the row it belongs to), ``role`` ("anchor" or "ours"), optionally ``goal`` (the ratio
anchor/ours to reach) or ``goal_gbps`` with ``bytes`` (bytes streamed per call) for throughput targets.
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import importlib.util  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import pytest  # noqa: E402

cv2.setNumThreads(1)


def bench_models():
    """bench/models.py (the ResNet-18/MobileNetV2 builders), loaded by path: tests/ has a models.py too."""
    path = Path(__file__).with_name("models.py")
    spec = importlib.util.spec_from_file_location("pyguard_bench_models", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def single_thread_options() -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return so


def photo_crops_224() -> np.ndarray:
    """Eight 224x224 NCHW float32 crops of real photos (calibration data for timing runs)."""
    from skimage import data

    crops = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        img = getattr(data, name)()
        for top, left in ((0, 0), (img.shape[0] - 224, img.shape[1] - 224)):
            crops.append(img[top:top + 224, left:left + 224])
    return np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2).astype(np.float32) / 255.0)


def tag(benchmark, target: str, role: str, **extra) -> None:
    benchmark.extra_info.update(target=target, role=role, **extra)


@pytest.fixture(scope="session")
def photo_u8() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def image_nchw(photo_u8) -> np.ndarray:
    """1x3x224x224 float32 in [0, 1] from a real photo."""
    crop = photo_u8[100:324, 150:374]
    return np.ascontiguousarray(crop.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)


@pytest.fixture(scope="session")
def image_1080p_u8() -> np.ndarray:
    """1080x1920x3 uint8 built from real photo content (resized astronaut)."""
    from skimage import data

    return np.ascontiguousarray(cv2.resize(data.astronaut(), (1920, 1080), interpolation=cv2.INTER_LINEAR))
