"""Activations on one thread: the native ops (minmax / range_check / clamp on 64 MB float32 tensors: memory
speed and NumPy anchors) and the activation guard (checks and restriction vs plain onnxruntime, batch 1, on
the bench models).

Activation guard targets (issue 4): monitor mode with activation checks <= 3% over plain onnxruntime
(ours/anchor <= 1.03) and restriction alone <= 1% (<= 1.01). Those rows compare median CPU times measured
in alternating rounds (see ``cpu_ms``), which is what a shared machine needs to resolve 1-2% differences;
the pytest-benchmark statistics of each run are still recorded.
``tools/activation_overhead.py`` times the alternatives the design was chosen from (exposing every activation,
exposing the chosen ones and reducing on the host, reducing every activation in the graph).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from conftest import bench_models, photo_crops_224, single_thread_options, tag

import pyguard
from pyguard import ops
from pyguard.harden import harden

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


# ---- activation guard ------------------------------------------------------------------------------------

HERE = Path(__file__).resolve().parent
MONITOR_GOAL, RESTRICT_GOAL = 1.03, 1.01


@pytest.fixture(scope="module", params=["resnet18", "mobilenetv2"])
def sessions(request):
    path = str(getattr(bench_models(), f"{request.param}_path")())
    so = single_thread_options()
    calib = photo_crops_224()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        profile = pyguard.calibrate(path, calib, squeezers=(), batch_size=8, sess_options=so,
                                    activations=True)
    plain = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    def hardened_session(**kw):
        return ort.InferenceSession(harden(path, profile, **kw).SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])

    hardened = hardened_session()
    guarded = pyguard.InferenceSession(path, so, ["CPUExecutionProvider"], profile=profile)
    sanity = pyguard.InferenceSession(path, so, ["CPUExecutionProvider"])  # the session's own checks only
    return {"name": request.param, "input": plain.get_inputs()[0].name, "plain": plain, "guarded": guarded,
            "hardened": hardened, "sanity": sanity, "profile": profile,
            "hardened_fused": hardened_session(placement="fused"),
            "hardened_zero": hardened_session(mode="zero")}


def _run(sess, feed):
    return lambda: sess.run(None, feed)


def _run_and_read_report(sess, feed):
    """run() then last_report: run() leaves the report to be built when it is read."""
    return lambda: (sess.run(None, feed), sess.last_report)


@pytest.fixture(scope="module")
def cpu_ms(sessions, image_nchw):
    """Median CPU milliseconds of plain, guarded and hardened runs, measured in alternating rounds.

    With one intra-op thread onnxruntime runs in the calling thread, so its CPU time leaves out the time
    other processes hold the core; alternating rounds spread the rest of the machine's noise evenly. The
    rows' ``value`` is this measure, so "met" does not depend on load changes between two benchmarks.
    """
    import time

    feed = {sessions["input"]: image_nchw}
    fns = {k: _run(sessions[k], feed)
           for k in ("plain", "guarded", "hardened", "sanity", "hardened_fused", "hardened_zero")}
    fns["guarded_report"] = _run_and_read_report(sessions["guarded"], feed)
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    rounds = max(40, int(4.0 / max(_one_run_seconds(fns["plain"]), 1e-4)))
    for _ in range(min(rounds, 400)):
        for k, fn in fns.items():
            t0 = time.thread_time()
            fn()
            times[k].append(time.thread_time() - t0)
    return {k: float(np.median(v)) * 1e3 for k, v in times.items()}


def _one_run_seconds(fn) -> float:
    import time

    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _tag_cpu(benchmark, target: str, role: str, ms: float, **extra) -> None:
    tag(benchmark, target, role, value=ms, unit="ms CPU (interleaved)", **extra)


def test_plain_for_activation_checks(benchmark, sessions, image_nchw, cpu_ms):
    _tag_cpu(benchmark, f"{sessions['name']} monitor with activation checks", "anchor", cpu_ms["plain"])
    benchmark(_run(sessions["plain"], {sessions["input"]: image_nchw}))


def test_guarded_activation_checks(benchmark, sessions, image_nchw, cpu_ms):
    monitor = sessions["profile"].activations.monitor
    _tag_cpu(benchmark, f"{sessions['name']} monitor with activation checks", "ours", cpu_ms["guarded"],
             goal_max=MONITOR_GOAL, goal=round(1 / MONITOR_GOAL, 4), tensors=len(monitor.tensors),
             estimated=monitor.estimated_overhead)
    feed = {sessions["input"]: image_nchw}
    outputs, report = sessions["guarded"].run_with_report(None, feed)
    assert "activation_range" in report.scores
    assert all(np.array_equal(a, b) for a, b in zip(outputs, sessions["plain"].run(None, feed)))
    benchmark(_run(sessions["guarded"], feed))


def test_plain_for_report_read(benchmark, sessions, image_nchw, cpu_ms):
    _tag_cpu(benchmark, f"{sessions['name']} monitor with activation checks, report read every run", "anchor",
             cpu_ms["plain"])
    benchmark(_run(sessions["plain"], {sessions["input"]: image_nchw}))


def test_guarded_activation_checks_report_read(benchmark, sessions, image_nchw, cpu_ms):
    """The monitor session with ``last_report`` read after every run, as a caller logging each report does
    (``run`` alone builds the report only when it is read; with telemetry or an audit log it is built at
    once, as here)."""
    _tag_cpu(benchmark, f"{sessions['name']} monitor with activation checks, report read every run", "ours",
             cpu_ms["guarded_report"], goal_max=MONITOR_GOAL, goal=round(1 / MONITOR_GOAL, 4))
    benchmark(_run_and_read_report(sessions["guarded"], {sessions["input"]: image_nchw}))


def test_sanity_only_reference(benchmark, sessions, image_nchw, cpu_ms):
    """The guarded session without a profile (issue 3's sanity-only target, <= 1.02x): the activation checks
    add to this row's overhead."""
    _tag_cpu(benchmark, f"{sessions['name']} sanity-only session (reference)", "ours", cpu_ms["sanity"],
             goal_max=1.02, goal=round(1 / 1.02, 4))
    benchmark(_run(sessions["sanity"], {sessions["input"]: image_nchw}))


def test_plain_for_sanity_reference(benchmark, sessions, image_nchw, cpu_ms):
    _tag_cpu(benchmark, f"{sessions['name']} sanity-only session (reference)", "anchor", cpu_ms["plain"])
    benchmark(_run(sessions["plain"], {sessions["input"]: image_nchw}))


def test_plain_for_restriction(benchmark, sessions, image_nchw, cpu_ms):
    _tag_cpu(benchmark, f"{sessions['name']} restriction (harden)", "anchor", cpu_ms["plain"])
    benchmark(_run(sessions["plain"], {sessions["input"]: image_nchw}))


def test_restriction(benchmark, sessions, image_nchw, cpu_ms):
    _tag_cpu(benchmark, f"{sessions['name']} restriction (harden)", "ours", cpu_ms["hardened"],
             goal_max=RESTRICT_GOAL, goal=round(1 / RESTRICT_GOAL, 4))
    benchmark(_run(sessions["hardened"], {sessions["input"]: image_nchw}))


def test_plain_for_restriction_fused(benchmark, sessions, image_nchw, cpu_ms):
    _tag_cpu(benchmark, f"{sessions['name']} restriction, placement='fused'", "anchor", cpu_ms["plain"])
    benchmark(_run(sessions["plain"], {sessions["input"]: image_nchw}))


def test_restriction_fused(benchmark, sessions, image_nchw, cpu_ms):
    """Clamps only where onnxruntime fuses them into the convolution (plus the last tensor)."""
    _tag_cpu(benchmark, f"{sessions['name']} restriction, placement='fused'", "ours",
             cpu_ms["hardened_fused"], goal_max=RESTRICT_GOAL, goal=round(1 / RESTRICT_GOAL, 4))
    benchmark(_run(sessions["hardened_fused"], {sessions["input"]: image_nchw}))


def test_plain_for_restriction_zero(benchmark, sessions, image_nchw, cpu_ms):
    _tag_cpu(benchmark, f"{sessions['name']} restriction, mode='zero' (cost only)", "anchor", cpu_ms["plain"])
    benchmark(_run(sessions["plain"], {sessions["input"]: image_nchw}))


def test_restriction_zero(benchmark, sessions, image_nchw, cpu_ms):
    """Zero mode (NaN and far-out values -> 0): what its fault containment costs; no speed goal."""
    _tag_cpu(benchmark, f"{sessions['name']} restriction, mode='zero' (cost only)", "ours",
             cpu_ms["hardened_zero"], goal_max=None)
    benchmark(_run(sessions["hardened_zero"], {sessions["input"]: image_nchw}))
