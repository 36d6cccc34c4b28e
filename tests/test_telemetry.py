"""pyguard.telemetry: counters and histograms of guarded runs, Prometheus export, callback, bounded labels."""

from __future__ import annotations

import subprocess
import sys
import threading
import urllib.request

import numpy as np
import pytest
from hardening_helpers import mixed_batch, model_and_profile

import pyguard
from pyguard.report import GuardReport
from pyguard.telemetry import MAX_SCORE_NAMES, REASONS, Histogram, Telemetry, serve_metrics


def _session(**kwargs):
    model, profile = model_and_profile()
    return pyguard.InferenceSession(model, profile=profile, **kwargs), profile


def _fake_report(n: int, flagged_idx=(), reasons=("squeeze",), scores=None) -> GuardReport:
    flagged = np.zeros(n, dtype=bool)
    flagged[list(flagged_idx)] = True
    return GuardReport(flagged=flagged, scores=scores or {"squeeze": np.linspace(0, 1, n)},
                       reasons=[list(reasons) if f else [] for f in flagged], threshold=0.5,
                       timings={"inference": 2.0, "total": 3.0})


def test_session_counts_requests_samples_reasons_and_latency():
    events = []
    telemetry = Telemetry("digits", callback=events.append)
    sess, profile = _session(telemetry=telemetry)
    batches = [mixed_batch(8, seed=s) for s in range(3)]
    expected_reasons: dict[str, int] = {}
    flagged_total = 0
    for x, _ in batches:
        _, report = sess.run_with_report(None, {"image": x})
        flagged_total += int(report.flagged.sum())
        for i in np.flatnonzero(report.flagged):
            for r in report.reasons[i]:
                expected_reasons[r] = expected_reasons.get(r, 0) + 1
    snap = telemetry.snapshot()
    assert snap["requests"] == 3 and snap["samples"] == 24 and snap["flagged"] == flagged_total
    assert flagged_total >= sum(int(t.sum()) for _, t in batches)  # every NaN / range sample is flagged
    assert {k: v for k, v in snap["flagged_by_reason"].items() if v} == expected_reasons
    assert snap["scores"]["squeeze"]["count"] == 24
    assert snap["guard_latency_ms"]["count"] == snap["model_latency_ms"]["count"] == 3
    assert snap["model_latency_ms"]["sum"] > 0
    assert len(events) == 3 and sum(e["samples"] for e in events) == 24
    assert sum(e["flagged"] for e in events) == flagged_total
    assert all(e["session"] == "digits" and e["guard_ms"] >= 0 for e in events)


def test_histogram_buckets_follow_prometheus_le_semantics():
    h = Histogram([1.0, 2.0])
    for v in (0.5, 1.0, 1.5, 2.0, 3.0):
        h.add(v)
    h.add_many(np.array([1.0, np.inf, np.nan]))
    assert h.cumulative() == [("1.0", 3), ("2.0", 5), ("+Inf", 7)]
    assert h.count == 7 and h.total == pytest.approx(9.0)
    with pytest.raises(pyguard.ConfigError):
        Histogram([2.0, 1.0])


def test_histogram_bulk_and_value_by_value_agree():
    values = np.random.default_rng(0).exponential(0.2, 1000)
    values[::97] = np.nan
    values[::89] = np.inf
    bulk, single = Histogram([0.01, 0.1, 0.5, 1.0]), Histogram([0.01, 0.1, 0.5, 1.0])
    bulk.add_many(values)  # numpy path
    for chunk in np.array_split(values, 100):  # value-by-value path (small arrays)
        single.add_many(chunk)
    assert bulk.cumulative() == single.cumulative()
    assert bulk.count == single.count == int((~np.isnan(values)).sum())
    assert bulk.total == pytest.approx(single.total) and np.isfinite(bulk.total)


def test_labels_stay_bounded():
    telemetry = Telemetry()
    for i in range(3 * MAX_SCORE_NAMES):
        scores = {f"score_{i}": np.ones(2)}
        telemetry.observe(_fake_report(2, [0], reasons=(f"made_up_{i}", "squeeze"), scores=scores))
    snap = telemetry.snapshot()
    assert len(snap["scores"]) <= MAX_SCORE_NAMES + 1 and "other" in snap["scores"]
    assert set(snap["flagged_by_reason"]) == set(REASONS)
    assert snap["flagged_by_reason"]["other"] == 3 * MAX_SCORE_NAMES
    assert snap["flagged_by_reason"]["squeeze"] == 3 * MAX_SCORE_NAMES


def test_concurrent_observers_lose_no_count():
    telemetry = Telemetry()
    per_thread, threads = 200, 8

    def work():
        for _ in range(per_thread):
            telemetry.observe(_fake_report(4, [1, 3]))

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    snap = telemetry.snapshot()
    runs = per_thread * threads
    assert snap["requests"] == runs and snap["samples"] == 4 * runs and snap["flagged"] == 2 * runs
    assert snap["scores"]["squeeze"]["count"] == 4 * runs
    assert snap["guard_latency_ms"]["buckets"][-1] == ("+Inf", runs)


def test_bad_arguments():
    with pytest.raises(pyguard.ConfigError):
        Telemetry("")
    with pytest.raises(pyguard.ConfigError):
        Telemetry(callback=42)
    model, profile = model_and_profile()
    with pytest.raises(pyguard.ConfigError):
        pyguard.InferenceSession(model, profile=profile, telemetry=object())


@pytest.fixture
def prometheus_client():
    return pytest.importorskip("prometheus_client")


def test_prometheus_registry_exposes_the_counters(prometheus_client):
    registry = prometheus_client.CollectorRegistry()
    telemetry = Telemetry("digits")
    collector = telemetry.register(registry)
    sess, _ = _session(telemetry=telemetry)
    x, tampered = mixed_batch(8, seed=5)
    sess.run(None, {"image": x})
    value = registry.get_sample_value
    labels = {"session": "digits"}
    assert value("pyguard_requests_total", labels) == 1
    assert value("pyguard_samples_total", labels) == 8
    assert value("pyguard_flagged_samples_total", labels) >= tampered.sum()
    assert value("pyguard_score_count", {**labels, "score": "squeeze"}) == 8
    assert value("pyguard_model_latency_ms_count", labels) == 1
    assert value("pyguard_score_bucket", {**labels, "score": "squeeze", "le": "+Inf"}) == 8
    text = prometheus_client.generate_latest(registry).decode()
    assert 'pyguard_flagged_by_reason_total{reason="non_finite",session="digits"}' in text
    registry.unregister(collector)
    assert registry.get_sample_value("pyguard_requests_total", labels) is None


def test_serve_metrics_on_localhost(prometheus_client):
    registry = prometheus_client.CollectorRegistry()
    telemetry = Telemetry("served")
    telemetry.register(registry)
    telemetry.observe(_fake_report(3, [2]))
    server = serve_metrics(0, registry=registry)
    try:
        assert server.server_address[0] == "127.0.0.1"
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=10).read()
    finally:
        server.shutdown()
    assert b'pyguard_samples_total{session="served"} 3.0' in body


def test_cli_serve_metrics(tmp_path, prometheus_client, outside_checkout):
    model, profile = model_and_profile()
    (tmp_path / "m.onnx").write_bytes(model)
    profile.save(tmp_path / "p.json")
    x, _ = mixed_batch(6, seed=9)
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyguard", "serve-metrics", str(tmp_path / "m.onnx"), "--profile",
         str(tmp_path / "p.json"), "--data", str(tmp_path / "x.npy"), "--port", "0", "--duration", "2",
         "--interval", "0.05", "--name", "cli"], stdout=subprocess.PIPE, text=True, env=outside_checkout)
    try:
        first = proc.stdout.readline()
        assert first.startswith("serving metrics on http://127.0.0.1:"), first
        url = first.split()[-1]
        body = b""
        for _ in range(40):  # wait for the first pass over the data
            body = urllib.request.urlopen(url, timeout=10).read()
            if b'pyguard_requests_total{session="cli"}' in body:
                break
            threading.Event().wait(0.1)
        assert b'pyguard_requests_total{session="cli"}' in body
        assert b'pyguard_flagged_by_reason_total{reason="non_finite",session="cli"}' in body
        rest = proc.communicate(timeout=60)[0]
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "samples" in rest
