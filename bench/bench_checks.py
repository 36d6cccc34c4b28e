"""sample_checks on a batch vs the NumPy expressions a user would write for the same three counts."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tag

from pyguard import ops


@pytest.fixture(scope="module")
def batch16(image_nchw) -> np.ndarray:
    """16 x 3 x 224 x 224 float32 real-photo batch (9.6 MB)."""
    return np.ascontiguousarray(np.repeat(image_nchw, 16, axis=0))


def numpy_sample_checks(x: np.ndarray):
    flat = x.reshape(x.shape[0], -1)
    finite = np.isfinite(flat)
    outside = (flat < 0) | (flat > 1)
    t = flat * np.float32(255)
    off = finite & ~outside & (np.abs(t - np.rint(t)) > np.float32(1e-3))
    return (~finite).sum(1), (finite & outside).sum(1), off.sum(1)


def test_numpy_sample_checks(benchmark, batch16):
    tag(benchmark, "sample_checks 16x3x224x224 f32", "anchor")
    benchmark(numpy_sample_checks, batch16)


def test_pyguard_sample_checks(benchmark, batch16):
    tag(benchmark, "sample_checks 16x3x224x224 f32", "ours", goal_gbps=20, bytes=batch16.nbytes)
    benchmark(ops.sample_checks, batch16)


def test_numpy_isfinite_only(benchmark, batch16):
    tag(benchmark, "sample_checks 16x3x224x224 f32 (vs isfinite alone)", "anchor")
    benchmark(lambda: (~np.isfinite(batch16.reshape(16, -1))).sum(1))


def test_pyguard_sample_checks_vs_isfinite(benchmark, batch16):
    tag(benchmark, "sample_checks 16x3x224x224 f32 (vs isfinite alone)", "ours")
    benchmark(ops.sample_checks, batch16)


def test_numpy_uint8_range(benchmark, image_1080p_u8):
    tag(benchmark, "sample_checks 1080x1920x3 uint8 range [16, 235]", "anchor")
    x = image_1080p_u8[None]
    benchmark(lambda: ((x < 16) | (x > 235)).reshape(1, -1).sum(1))


def test_pyguard_uint8_range(benchmark, image_1080p_u8):
    tag(benchmark, "sample_checks 1080x1920x3 uint8 range [16, 235]", "ours")
    x = image_1080p_u8[None]
    benchmark(lambda: ops.sample_checks(x, lo=16, hi=235))
