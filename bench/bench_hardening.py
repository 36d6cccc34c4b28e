"""Cost of the hardening hooks on a guarded run (1 thread, batch 1, bundled digits model).

Rows (anchor = the same guarded session without the hook):
- telemetry + audit on a clean image (nothing flagged, nothing written): goal_max 1.05x;
- audit of a flagged image (one JSON line appended and fsync-ed before run returns): no goal, the
  figure is the price of durability on this disk;
- federated summary of 400 images vs pyguard.calibrate on the same images: no goal.
Run: python -m pytest bench/bench_hardening.py && python bench/report.py -k hardening
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
import pytest
from conftest import tag

import pyguard
from pyguard.audit import AuditLog
from pyguard.federated import summarize
from pyguard.telemetry import Telemetry

DIGITS = os.path.join(os.path.dirname(pyguard.__file__), "data", "digits")
MODEL = os.path.join(DIGITS, "model.onnx")


@pytest.fixture(scope="module")
def setup():
    x = np.load(os.path.join(DIGITS, "calib.npz"))["x"]
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    profile = pyguard.calibrate(MODEL, x, sess_options=so)
    return x, profile, so


def _session(setup, tmp_path, hooks: bool):
    _, profile, so = setup
    if not hooks:
        return pyguard.InferenceSession(MODEL, so, profile=profile)
    return pyguard.InferenceSession(MODEL, so, profile=profile, telemetry=Telemetry("bench"),
                                    audit=AuditLog(tmp_path / "audit.jsonl", max_bytes=1 << 30))


@pytest.mark.parametrize("role", ["anchor", "ours"])
def test_clean_run(benchmark, setup, tmp_path, role):
    x, profile, _ = setup
    sess = _session(setup, tmp_path, hooks=role == "ours")
    image = np.ascontiguousarray(x[:1])
    assert not sess.run_with_report(None, {"image": image})[1].any_flagged
    tag(benchmark, "telemetry+audit, clean image", role, goal_max=1.05)
    benchmark(sess.run, None, {"image": image})


@pytest.mark.parametrize("role", ["anchor", "ours"])
def test_flagged_run(benchmark, setup, tmp_path, role):
    x, profile, so = setup
    audit = AuditLog(tmp_path / "audit.jsonl", max_bytes=1 << 30) if role == "ours" else None
    sess = pyguard.InferenceSession(MODEL, so, profile=profile, audit=audit)
    image = np.ascontiguousarray(x[:1]).copy()
    image[0, 0, 0, 0] = 2.0  # out of range: flagged every time
    assert sess.run_with_report(None, {"image": image})[1].any_flagged
    tag(benchmark, "audit (fsync) of a flagged image", role)
    benchmark(sess.run, None, {"image": image})


@pytest.mark.parametrize("role", ["anchor", "ours"])
def test_site_summary(benchmark, setup, role):
    x, profile, so = setup
    tag(benchmark, "federated summary vs calibrate, 400 images", role)
    if role == "anchor":
        benchmark.pedantic(pyguard.calibrate, args=(MODEL, x), kwargs={"sess_options": so}, rounds=5)
    else:
        benchmark.pedantic(summarize, args=(MODEL, x, profile), kwargs={"sess_options": so}, rounds=5)
