"""minmax / range_check / clamp on 64 MB float32 tensors: memory speed and NumPy anchors, one thread."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tag

from pyguard import ops

GOAL_GBPS = 20


@pytest.fixture(scope="module")
def per_sample() -> np.ndarray:
    """(16, 1048576) float32 activations, 64 MiB."""
    return np.random.default_rng(0).normal(0.5, 1.0, size=(16, 1 << 20)).astype(np.float32)


@pytest.fixture(scope="module")
def nchw() -> np.ndarray:
    """(1, 256, 256, 256) float32 feature map, 64 MiB, channels first."""
    return np.random.default_rng(1).normal(0.5, 1.0, size=(1, 256, 256, 256)).astype(np.float32)


@pytest.fixture(scope="module")
def nhwc(nchw) -> np.ndarray:
    """The same feature map channels last."""
    return np.ascontiguousarray(nchw.transpose(0, 2, 3, 1))


# ---- minmax ----
def test_numpy_minmax_per_sample(benchmark, per_sample):
    tag(benchmark, "minmax per sample (16, 2^20) f32", "anchor")
    benchmark(lambda: (per_sample.min(axis=1), per_sample.max(axis=1)))


def test_pyguard_minmax_per_sample(benchmark, per_sample):
    tag(benchmark, "minmax per sample (16, 2^20) f32", "ours", goal_gbps=GOAL_GBPS, bytes=per_sample.nbytes)
    benchmark(ops.minmax, per_sample)


def test_numpy_minmax_per_channel_nchw(benchmark, nchw):
    tag(benchmark, "minmax per channel (1,256,256,256) NCHW", "anchor")
    benchmark(lambda: (nchw.min(axis=(2, 3)), nchw.max(axis=(2, 3))))


def test_pyguard_minmax_per_channel_nchw(benchmark, nchw):
    tag(benchmark, "minmax per channel (1,256,256,256) NCHW", "ours", goal_gbps=GOAL_GBPS, bytes=nchw.nbytes)
    benchmark(lambda: ops.minmax(nchw, channel_axis=1))


def test_numpy_minmax_per_channel_nhwc(benchmark, nhwc):
    tag(benchmark, "minmax per channel (1,256,256,256) NHWC", "anchor")
    benchmark(lambda: (nhwc.min(axis=(1, 2)), nhwc.max(axis=(1, 2))))


def test_pyguard_minmax_per_channel_nhwc(benchmark, nhwc):
    tag(benchmark, "minmax per channel (1,256,256,256) NHWC", "ours", goal_gbps=GOAL_GBPS, bytes=nhwc.nbytes)
    benchmark(lambda: ops.minmax(nhwc, channel_axis=-1))


# ---- range_check ----
def numpy_range_check(x, lo, hi):
    flat = x.reshape(x.shape[0], -1)
    bad = ~((flat >= lo) & (flat <= hi))
    excess = np.where(bad, np.maximum(lo - flat, flat - hi), np.float32(0)).max(axis=1)
    return bad.sum(axis=1), excess


def test_numpy_range_check_per_sample(benchmark, per_sample):
    tag(benchmark, "range_check per sample (16, 2^20) f32", "anchor")
    benchmark(numpy_range_check, per_sample, np.float32(-3), np.float32(4))


def test_pyguard_range_check_per_sample(benchmark, per_sample):
    tag(benchmark, "range_check per sample (16, 2^20) f32", "ours", goal_gbps=GOAL_GBPS,
        bytes=per_sample.nbytes)
    benchmark(ops.range_check, per_sample, -3.0, 4.0)


def test_numpy_range_check_per_channel(benchmark, nchw):
    tag(benchmark, "range_check per-channel bounds (1,256,256,256) NCHW", "anchor")
    lo = np.full((1, 256, 1, 1), -3, np.float32)
    hi = np.full((1, 256, 1, 1), 4, np.float32)
    benchmark(lambda: (~((nchw >= lo) & (nchw <= hi))).reshape(1, -1).sum(axis=1))


def test_pyguard_range_check_per_channel(benchmark, nchw):
    tag(benchmark, "range_check per-channel bounds (1,256,256,256) NCHW", "ours", goal_gbps=GOAL_GBPS,
        bytes=nchw.nbytes)
    lo, hi = np.full(256, -3, np.float32), np.full(256, 4, np.float32)
    benchmark(lambda: ops.range_check(nchw, lo, hi, channel_axis=1))


def test_numpy_range_check_per_channel_nhwc(benchmark, nhwc):
    tag(benchmark, "range_check per-channel bounds (1,256,256,256) NHWC", "anchor")
    lo, hi = np.full(256, -3, np.float32), np.full(256, 4, np.float32)
    benchmark(lambda: (~((nhwc >= lo) & (nhwc <= hi))).reshape(1, -1).sum(axis=1))


def test_pyguard_range_check_per_channel_nhwc(benchmark, nhwc):
    tag(benchmark, "range_check per-channel bounds (1,256,256,256) NHWC", "ours", goal_gbps=GOAL_GBPS,
        bytes=nhwc.nbytes)
    lo, hi = np.full(256, -3, np.float32), np.full(256, 4, np.float32)
    benchmark(lambda: ops.range_check(nhwc, lo, hi, channel_axis=-1))


# ---- clamp (in place, as a guard would run it on an activation) ----
def test_numpy_clip_in_place(benchmark, per_sample):
    tag(benchmark, "clamp in place (16, 2^20) f32", "anchor")
    x = per_sample.copy()
    benchmark(lambda: np.clip(x, np.float32(-3), np.float32(4), out=x))


def test_pyguard_clamp_in_place(benchmark, per_sample):
    tag(benchmark, "clamp in place (16, 2^20) f32", "ours")
    x = per_sample.copy()
    benchmark(lambda: ops.clamp(x, -3.0, 4.0, out=x))


def test_numpy_clip_per_channel(benchmark, nhwc):
    tag(benchmark, "clamp per-channel bounds, new array (1,256,256,256) NHWC", "anchor")
    lo, hi = np.full(256, -3, np.float32), np.full(256, 4, np.float32)
    benchmark(lambda: np.clip(nhwc, lo, hi))


def test_pyguard_clamp_per_channel(benchmark, nhwc):
    tag(benchmark, "clamp per-channel bounds, new array (1,256,256,256) NHWC", "ours")
    lo, hi = np.full(256, -3, np.float32), np.full(256, 4, np.float32)
    benchmark(lambda: ops.clamp(nhwc, lo, hi, channel_axis=-1))
