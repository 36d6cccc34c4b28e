"""Guarded vs plain onnxruntime: latency of one image (batch 1, 1 thread) and peak RSS.

Models: the ResNet-18-shaped and MobileNetV2-shaped networks of bench/models.py (random weights). Rows:
- joint detector (bit_depth:5 + median:2, and bit_depth:1 + median:2): the original and both squeezed
  copies in one batched run; target <= 3.05x plain (three inferences cost >= ~2.9x);
- sanity-only monitor mode (no profile): target <= 1.02x plain;
- the same detector assembled from ART's FeatureSqueezing + SpatialSmoothing + three onnxruntime runs
  (3.27x plain when measured here), against ours: goal 3.27 / 3.05;
- peak RSS of a process running the guarded session vs one running the plain session (target <= 1.2x),
  each measured in a fresh subprocess.
Upper-bound targets are recorded as ``goal_max`` (ours / anchor at most), see bench/report.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from conftest import bench_models, photo_crops_224, single_thread_options, tag

import pyguard

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
JOINT_GOAL, SANITY_GOAL, RSS_GOAL, ART_RATIO = 3.05, 1.02, 1.2, 3.27
DETECTORS = {"bd5+med2": ("bit_depth:5", "median:2"), "bd1+med2": ("bit_depth:1", "median:2")}


@pytest.fixture(scope="module", params=["resnet18", "mobilenetv2"])
def model(request):
    builders = bench_models()
    return request.param, str(getattr(builders, f"{request.param}_path")())


@pytest.fixture(scope="module")
def sessions(model, tmp_path_factory):
    name, path = model
    so = single_thread_options()
    plain = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    out = {"name": name, "path": path, "input": plain.get_inputs()[0].name, "plain": plain,
           "sanity": pyguard.InferenceSession(path, so, ["CPUExecutionProvider"])}
    calib = photo_crops_224()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # eight images are few for fpr 0.05; irrelevant to timing
        for key, squeezers in DETECTORS.items():
            profile = pyguard.calibrate(path, calib, squeezers=squeezers, fpr=0.125, batch_size=8,
                                        sess_options=so)
            out[key] = pyguard.InferenceSession(path, so, ["CPUExecutionProvider"], profile=profile)
            profile_path = tmp_path_factory.mktemp("profiles") / f"{name}-{key}.json"
            profile.save(profile_path)
            out[f"{key}:profile"] = str(profile_path)
    return out


def _run(sess, feed):
    return lambda: sess.run(None, feed)


def _interleaved_ratio(plain, guarded, feed, rounds: int = 25) -> float:
    """guarded / plain from alternating calls: robust to load changes on a shared machine (extra_info)."""
    from pyguard._timing import interleaved_medians

    ms = interleaved_medians({"plain": _run(plain, feed), "guarded": _run(guarded, feed)}, seconds=0.0,
                             min_rounds=rounds)
    return round(ms["guarded"] / ms["plain"], 4)


@pytest.mark.parametrize("detector", list(DETECTORS))
def test_plain_for_detector(benchmark, sessions, image_nchw, detector):
    tag(benchmark, f"{sessions['name']} joint {'+'.join(DETECTORS[detector])}", "anchor")
    benchmark(_run(sessions["plain"], {sessions["input"]: image_nchw}))


@pytest.mark.parametrize("detector", list(DETECTORS))
def test_guarded_joint_detector(benchmark, sessions, image_nchw, detector):
    tag(benchmark, f"{sessions['name']} joint {'+'.join(DETECTORS[detector])}", "ours", goal_max=JOINT_GOAL,
        goal=round(1 / JOINT_GOAL, 4))
    sess = sessions[detector]
    feed = {sessions["input"]: image_nchw}
    sess.run(None, feed)  # the first call with a shape also checks that the batched run is exact
    benchmark(_run(sess, feed))
    assert sess._detector.joint_ok[image_nchw.shape]  # one batched run per call was measured
    benchmark.extra_info["interleaved_ratio"] = _interleaved_ratio(sessions["plain"], sess, feed)


def test_plain_for_sanity(benchmark, sessions, image_nchw):
    tag(benchmark, f"{sessions['name']} sanity-only monitor", "anchor")
    benchmark(_run(sessions["plain"], {sessions["input"]: image_nchw}))


def test_guarded_sanity_only(benchmark, sessions, image_nchw):
    tag(benchmark, f"{sessions['name']} sanity-only monitor", "ours", goal_max=SANITY_GOAL,
        goal=round(1 / SANITY_GOAL, 4))
    feed = {sessions["input"]: image_nchw}
    benchmark(_run(sessions["sanity"], feed))
    ratio = _interleaved_ratio(sessions["plain"], sessions["sanity"], feed)
    benchmark.extra_info["interleaved_ratio"] = ratio


def test_art_assembled_detector(benchmark, sessions, image_nchw):
    """ART's squeezers + three onnxruntime runs: what a user would assemble without pyguard."""
    from art.defences.preprocessor import FeatureSqueezing, SpatialSmoothing

    if sessions["name"] != "resnet18":
        pytest.skip("the ART anchor was measured on ResNet-18")
    tag(benchmark, f"{sessions['name']} bd1+med2 detector vs ART assembly", "anchor")
    plain, name = sessions["plain"], sessions["input"]
    bits = FeatureSqueezing(clip_values=(0.0, 1.0), bit_depth=1)
    smooth = SpatialSmoothing(window_size=2, channels_first=True, clip_values=(0.0, 1.0))

    def detector():
        p0 = plain.run(None, {name: image_nchw})[0]
        p1 = plain.run(None, {name: bits(image_nchw)[0].astype(np.float32)})[0]
        p2 = plain.run(None, {name: smooth(image_nchw)[0].astype(np.float32)})[0]
        return p0, p1, p2

    benchmark(detector)


def test_ours_vs_art_assembled(benchmark, sessions, image_nchw):
    if sessions["name"] != "resnet18":
        pytest.skip("the ART anchor was measured on ResNet-18")
    tag(benchmark, f"{sessions['name']} bd1+med2 detector vs ART assembly", "ours",
        goal=round(ART_RATIO / JOINT_GOAL, 3))
    sess = sessions["bd1+med2"]
    feed = {sessions["input"]: image_nchw}
    sess.run(None, feed)
    benchmark(_run(sess, feed))


# ---- peak RSS: one fresh process per configuration -----------------------------------------------------
RSS_SCRIPT = """
import json, sys
import numpy as np, onnxruntime as ort
mode, model, profile = sys.argv[1:4]
so = ort.SessionOptions(); so.intra_op_num_threads = 1; so.inter_op_num_threads = 1
if mode == "plain":
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
else:
    import pyguard
    profile = None if profile == "-" else profile
    sess = pyguard.InferenceSession(model, so, ["CPUExecutionProvider"], profile=profile)
x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
name = sess.get_inputs()[0].name
for _ in range(10):
    sess.run(None, {name: x})
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across execve, so a child would report pytest's own peak.
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"peak_rss_mb": int(hwm.split()[1]) / 1024}))
"""


def _peak_rss_mb(mode: str, model: str, profile: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", RSS_SCRIPT, mode, model, profile], capture_output=True,
                          text=True, check=True, cwd=ROOT, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mb"]


@pytest.mark.parametrize("config", ["bd5+med2", "sanity"])
@pytest.mark.parametrize("role", ["plain", "guarded"])
def test_peak_rss(benchmark, sessions, config, role):
    """Peak RSS (VmHWM) in MB of a fresh process, reported as the row's value (see bench/report.py)."""
    if sessions["name"] != "resnet18":
        pytest.skip("the memory target is on ResNet-18")
    profile = sessions[f"{config}:profile"] if config in DETECTORS else "-"
    values = []
    benchmark.pedantic(lambda: values.append(_peak_rss_mb(role, sessions["path"], profile)), rounds=1,
                       iterations=1)
    target = f"{sessions['name']} peak RSS, {'joint ' + config if config in DETECTORS else 'sanity-only'}"
    if role == "plain":
        tag(benchmark, target, "anchor", value=values[0], unit="MB")
    else:
        tag(benchmark, target, "ours", value=values[0], unit="MB", goal_max=RSS_GOAL)
