"""Screening cascade vs plain onnxruntime vs the full fused detector, on a stream of clean images.

Model: the ResNet-18-shaped network of bench/models.py (random weights), batch 1, one thread. The fused
detector (squeezers bit_depth:5 + median:2, activation check, input and output statistics) is calibrated on
64 crops of bundled photos; the traffic is 32 other crops, one per call in turn, so the cascade's clearing
decision varies as it would on real traffic. Rows:
- cascade (``InferenceSession(..., cascade=True)``): mean latency target <= 1.5x plain;
- full fused detector (every request squeezed, one batched run of 3 copies), for reference (~3x).
The share of traffic the cascade forwarded to the squeezed passes is recorded in extra_info.
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from conftest import bench_models, single_thread_options, tag

import pyguard

HERE = Path(__file__).resolve().parent
CASCADE_GOAL = 1.5
SIDE = 224


def photo_crops(count: int, seed: int) -> np.ndarray:
    """Random 224x224 crops of bundled photos, float32 NCHW in [0, 1] (8-bit values)."""
    from skimage import data

    rng = np.random.default_rng(seed)
    photos = [
        getattr(data, n)()
        for n in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")
    ]
    crops = []
    for i in range(count):
        img = photos[i % len(photos)]
        top, left = rng.integers(0, img.shape[0] - SIDE + 1), rng.integers(0, img.shape[1] - SIDE + 1)
        crops.append(img[top : top + SIDE, left : left + SIDE, :3])
    return np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2).astype(np.float32) / 255.0)


@pytest.fixture(scope="module")
def setup():
    path = str(bench_models().resnet18_path())
    so = single_thread_options()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        profile = pyguard.calibrate(
            path,
            photo_crops(64, seed=1),
            detector="fused",
            squeezers=("bit_depth:5", "median:2"),
            batch_size=16,
            sess_options=so,
        )
    traffic = [x[None] for x in photo_crops(32, seed=2)]
    return {
        "plain": ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]),
        "cascade": pyguard.InferenceSession(path, so, profile=profile, cascade=True),
        "fused": pyguard.InferenceSession(path, so, profile=profile),
        "traffic": traffic,
        "profile": profile,
    }


def _stream(sess, traffic):
    name = sess.get_inputs()[0].name
    feeds = itertools.cycle([{name: x} for x in traffic])
    return lambda: sess.run(None, next(feeds))


@pytest.fixture(scope="module")
def interleaved(setup):
    """Mean CPU time of the calling thread per request, plain and cascade calls alternating over the same
    traffic (4 passes). onnxruntime runs on the calling thread with one intra-op thread, so thread CPU time
    is the work done, unaffected by other processes on a shared machine (wall-clock ratios on this 2-core
    machine swung from 1.1x to 1.7x with the load of other jobs)."""
    import time

    plain = _stream(setup["plain"], setup["traffic"])
    cascade = _stream(setup["cascade"], setup["traffic"])
    plain(), cascade()
    times = {"plain": [], "cascade": []}
    for _ in range(4 * len(setup["traffic"])):
        for name, call in (("plain", plain), ("cascade", cascade)):
            t0 = time.thread_time()
            call()
            times[name].append(time.thread_time() - t0)
    return {k: float(np.mean(v)) * 1e3 for k, v in times.items()}


def _mean_over_traffic(benchmark, call, traffic, cpu_mean_ms: float) -> None:
    """Two passes over the whole traffic, one call per round (wall clock, for the table's timing columns);
    the row's value is the interleaved MEAN CPU time (the cascade's cost is in the forwarded minority,
    which a median would hide)."""
    call()
    benchmark.pedantic(call, rounds=2 * len(traffic), iterations=1)
    benchmark.extra_info.update(
        value=cpu_mean_ms, unit="ms mean CPU",
        # no stats under --benchmark-disable (a smoke run of the benchmark code)
        wall_mean_ms=benchmark.stats.stats.mean * 1e3 if benchmark.stats else None
    )


def test_plain_for_cascade(benchmark, setup, interleaved):
    tag(benchmark, "resnet18 clean traffic: cascade (mean)", "anchor")
    _mean_over_traffic(
        benchmark, _stream(setup["plain"], setup["traffic"]), setup["traffic"], interleaved["plain"]
    )


def test_cascade(benchmark, setup, interleaved):
    tag(
        benchmark,
        "resnet18 clean traffic: cascade (mean)",
        "ours",
        goal_max=CASCADE_GOAL,
        goal=round(1 / CASCADE_GOAL, 4),
    )
    sess = setup["cascade"]
    call = _stream(sess, setup["traffic"])
    forwarded = []
    for _ in range(len(setup["traffic"])):
        call()
        forwarded.append(bool(sess.last_report.scores["forwarded"][0]))
    _mean_over_traffic(benchmark, call, setup["traffic"], interleaved["cascade"])
    benchmark.extra_info["forwarded_share"] = round(float(np.mean(forwarded)), 3)


def test_plain_for_fused(benchmark, setup):
    tag(benchmark, "resnet18 clean traffic: full fused detector", "anchor")
    benchmark(_stream(setup["plain"], setup["traffic"]))


def test_full_fused(benchmark, setup):
    tag(
        benchmark,
        "resnet18 clean traffic: full fused detector",
        "ours",
        goal_max=3.05,
        goal=round(1 / 3.05, 4),
    )
    benchmark(_stream(setup["fused"], setup["traffic"]))
