"""pyguard.audit: one fsync-ed JSON line per flagged sample, rotation, quarantine, and no loss on SIGKILL."""

from __future__ import annotations

import datetime as dt
import glob
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from hardening_helpers import mixed_batch, model_and_profile

import pyguard
from pyguard.audit import AuditLog, input_sha256, read_records
from pyguard.report import GuardReport

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _session(audit, **kwargs):
    model, profile = model_and_profile()
    return pyguard.InferenceSession(model, profile=profile, audit=audit, **kwargs), profile


def _all_records(path) -> list[dict]:
    files = sorted(glob.glob(f"{path}.*"), key=lambda p: -int(p.rsplit(".", 1)[1])) + [path]
    return [r for f in files if os.path.exists(f) for r in read_records(f)]


def _fake_report(n, flagged_idx, scores=None) -> GuardReport:
    flagged = np.zeros(n, dtype=bool)
    flagged[list(flagged_idx)] = True
    return GuardReport(flagged=flagged, scores=scores or {"squeeze": np.arange(n, dtype=np.float64)},
                       reasons=[["squeeze"] if f else [] for f in flagged], threshold=0.5)


def test_flagged_samples_are_recorded_with_their_evidence(tmp_path):
    log = tmp_path / "audit.jsonl"
    with AuditLog(log) as audit:
        sess, profile = _session(audit)
        x, tampered = mixed_batch(10, seed=3)
        _, report = sess.run_with_report(None, {"image": x})
    records = read_records(log)
    flagged = np.flatnonzero(report.flagged)
    assert set(np.flatnonzero(tampered)) <= set(flagged)
    assert [r["sample"] for r in records] == flagged.tolist()
    for r in records:
        i = r["sample"]
        assert r["model_sha256"] == profile.model_sha256
        assert r["input_sha256"] == input_sha256(x[i])
        assert r["shape"] == [3, 16, 16] and r["dtype"] == "float32"
        assert r["reasons"] == report.reasons[i]
        squeeze = report.scores["squeeze"][i]
        assert r["scores"]["squeeze"] == (float(squeeze) if np.isfinite(squeeze) else str(float(squeeze)))
        assert r["scores"]["non_finite"] == report.scores["non_finite"][i]
        assert r["threshold"] == profile.threshold and r["action"] == "monitor"
        assert abs(dt.datetime.fromisoformat(r["time"]).timestamp() - time.time()) < 60
    assert (os.stat(log).st_mode & 0o777) == 0o600


def test_nothing_written_without_flags_and_reject_still_records(tmp_path):
    log = tmp_path / "audit.jsonl"
    audit = AuditLog(log)
    assert audit.record(_fake_report(4, []), np.zeros((4, 2), np.float32)) == []
    assert os.path.getsize(log) == 0
    sess, _ = _session(audit, action="reject")
    x, tampered = mixed_batch(6, seed=11)
    assert tampered.any()
    with pytest.raises(pyguard.AdversarialInputError) as info:
        sess.run(None, {"image": x})
    audit.close()
    assert [r["sample"] for r in read_records(log)] == np.flatnonzero(info.value.report.flagged).tolist()


def test_rotation_by_size_keeps_the_newest_records(tmp_path):
    log = tmp_path / "audit.jsonl"
    audit = AuditLog(log, max_bytes=4096, backups=3)
    x = np.arange(40 * 6, dtype=np.float32).reshape(40, 6)
    for start in range(0, 400, 4):
        audit.record(_fake_report(4, [0, 1, 2, 3], {"squeeze": np.arange(start, start + 4.0)}),
                     x[(start // 4) % 10 * 4:][:4])
    audit.close()
    files = [log, *(tmp_path / f"audit.jsonl.{i}" for i in (1, 2, 3))]
    assert all(f.exists() for f in files) and not (tmp_path / "audit.jsonl.4").exists()
    assert all(os.path.getsize(f) <= 4096 for f in files)
    kept = [r["scores"]["squeeze"] for r in _all_records(log)]
    assert kept == sorted(kept) and kept[-1] == 399.0  # oldest dropped, order preserved, nothing torn
    assert len(kept) == len(set(kept)) and len(kept) < 400


def test_quarantine_respects_the_disk_budget(tmp_path):
    qdir = tmp_path / "quarantine"
    x = np.random.default_rng(0).random((6, 3, 16, 16), dtype=np.float32)  # 3072 bytes each
    audit = AuditLog(tmp_path / "a.jsonl", quarantine_dir=qdir, quarantine_budget_bytes=3 * 3300)
    records = audit.record(_fake_report(6, range(6)), x)
    saved = [r["quarantine"] for r in records]
    assert all(s is not None for s in saved[:3]) and saved[3:] == [None] * 3
    for r in records[:3]:
        np.testing.assert_array_equal(np.load(r["quarantine"]), x[r["sample"]])
        assert os.path.basename(r["quarantine"]) == f"{r['input_sha256']}.npy"
    assert sum(os.path.getsize(p) for p in glob.glob(str(qdir / "*.npy"))) <= 3 * 3300
    audit.close()
    again = AuditLog(tmp_path / "a.jsonl", quarantine_dir=qdir, quarantine_budget_bytes=3 * 3300)
    assert again.record(_fake_report(6, [4]), x)[0]["quarantine"] is None  # usage survives a restart
    assert again.record(_fake_report(6, [0]), x)[0]["quarantine"] == saved[0]  # same input: reused


def test_concurrent_writers_produce_whole_lines(tmp_path):
    log = tmp_path / "audit.jsonl"
    audit = AuditLog(log, fsync=False)
    x = np.zeros((3, 4), np.float32)

    def work(t):
        for i in range(100):
            audit.record(_fake_report(3, [0, 2], {"squeeze": np.full(3, t * 1000.0 + i)}), x)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    audit.close()
    records = read_records(log)
    assert len(records) == 8 * 100 * 2
    assert len({r["scores"]["squeeze"] for r in records}) == 800


def test_torn_last_line_is_skipped_but_a_torn_middle_line_is_an_error(tmp_path):
    log = tmp_path / "a.jsonl"
    log.write_bytes(b'{"sample": 0}\n{"sample": 1}\n{"sam')
    assert [r["sample"] for r in read_records(log)] == [0, 1]
    log.write_bytes(b'{"sample": 0}\n{"sam\n{"sample": 1}\n')
    with pytest.raises(ValueError):
        read_records(log)


def test_bad_arguments(tmp_path):
    for kwargs in ({"max_bytes": 10}, {"backups": 0}, {"quarantine_budget_bytes": -1}):
        with pytest.raises(pyguard.ConfigError):
            AuditLog(tmp_path / "a.jsonl", **kwargs)
    model, profile = model_and_profile()
    with pytest.raises(pyguard.ConfigError):
        pyguard.InferenceSession(model, profile=profile, audit=str(tmp_path / "a.jsonl"))


_CHILD = textwrap.dedent("""
    import os, sys
    sys.path[:0] = [{root!r}, {tests!r}]
    import numpy as np
    import pyguard
    from pyguard.audit import AuditLog, input_sha256
    from hardening_helpers import mixed_batch, model_and_profile
    model, profile = model_and_profile()
    sess = pyguard.InferenceSession(model, profile=profile,
                                    audit=AuditLog({log!r}, max_bytes=32768, backups=1000))
    out = os.fdopen(1, "w", buffering=1)
    for seed in range(10 ** 6):
        x, _ = mixed_batch(8, seed=seed)
        _, report = sess.run_with_report(None, {{"image": x}})
        # run returned: from here on these records must survive anything
        for i in np.flatnonzero(report.flagged):
            out.write(input_sha256(x[i]) + "\\n")
""")


@pytest.mark.parametrize("delay", [0.3, 1.1])
def test_sigkill_during_a_burst_loses_no_returned_record(tmp_path, delay, outside_checkout):
    log = tmp_path / "audit.jsonl"
    # the child imports the pyguard under test (installed or in-place), and the tests' helpers
    root = os.path.dirname(os.path.dirname(os.path.abspath(pyguard.__file__)))
    code = _CHILD.format(root=root, tests=os.path.join(ROOT, "tests"), log=str(log))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             env=outside_checkout)
    returned: list[str] = []
    reader = threading.Thread(target=lambda: returned.extend(line.strip() for line in child.stdout))
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while len(returned) < 20 and time.monotonic() < deadline:  # the burst is under way
            time.sleep(0.02)
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        reader.join(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert len(returned) >= 20
    logged = {r["input_sha256"] for r in _all_records(log)}
    lost = [s for s in returned if s and s not in logged]
    assert not lost, f"{len(lost)} of {len(returned)} returned records missing from the log"
    assert glob.glob(f"{log}.1") or delay < 1  # the longer burst went through at least one rotation
