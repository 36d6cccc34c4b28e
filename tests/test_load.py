"""Load: 8 threads hammering one guarded session give exactly the serial results, with flat memory.

PYGUARD_LOAD_SECONDS sets the duration (CI default 4 s; the long run used minutes, see the issue note).
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
from hardening_helpers import mixed_batch, model_and_profile

import pyguard
from pyguard.audit import AuditLog, read_records
from pyguard.telemetry import Telemetry

THREADS = 8
SECONDS = float(os.environ.get("PYGUARD_LOAD_SECONDS", "4"))
RSS_GROWTH_LIMIT = 16 << 20  # bytes between the warmed-up state and the end


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _fingerprint(outputs, report) -> tuple:
    scores = tuple((k, v.tobytes()) for k, v in sorted(report.scores.items()))
    return (tuple(o.tobytes() for o in outputs), report.flagged.tobytes(), scores,
            tuple(map(tuple, report.reasons)))


def test_threads_match_serial_with_flat_memory(tmp_path):
    model, profile = model_and_profile()
    telemetry = Telemetry("load")
    audit = AuditLog(tmp_path / "audit.jsonl", max_bytes=1 << 30)
    sess = pyguard.InferenceSession(model, profile=profile, telemetry=telemetry, audit=audit)
    batches = [mixed_batch(n, seed=s)[0] for s, n in enumerate([1, 4, 8, 8, 4, 1, 8, 4])]
    expected = [_fingerprint(*sess.run_with_report(None, {"image": x})) for x in batches]
    assert expected == [_fingerprint(*sess.run_with_report(None, {"image": x})) for x in batches]
    flagged_per_batch = [int(sess.run_with_report(None, {"image": x})[1].flagged.sum()) for x in batches]
    base_requests, base_flagged = telemetry.snapshot()["requests"], sum(flagged_per_batch) * 3

    counts, flagged = [0] * THREADS, [0] * THREADS
    mismatches: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def work(t: int) -> None:
        rng = np.random.default_rng(t)
        try:
            while not stop.is_set():
                i = int(rng.integers(len(batches)))
                outputs, report = sess.run_with_report(None, {"image": batches[i]})
                if _fingerprint(outputs, report) != expected[i] or sess.last_report is not report:
                    mismatches.append((t, i))
                counts[t] += 1
                flagged[t] += flagged_per_batch[i]
        except BaseException as e:  # surfaced by the assertions below
            errors.append(e)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for w in workers:
        w.start()
    time.sleep(min(1.0, SECONDS / 4))  # warm-up: every thread has its workspaces
    rss_warm, rss_samples = _rss(), []
    end = time.monotonic() + SECONDS
    while time.monotonic() < end:
        time.sleep(min(0.5, SECONDS / 8))
        rss_samples.append(_rss())
    stop.set()
    for w in workers:
        w.join()
    audit.close()
    rss_end = _rss()

    assert not errors, errors[:3]
    assert not mismatches, f"{len(mismatches)} results differ from the serial run, e.g. {mismatches[:5]}"
    assert all(c > 0 for c in counts)
    total = sum(counts)
    snap = telemetry.snapshot()
    assert snap["requests"] == base_requests + total
    assert len(read_records(tmp_path / "audit.jsonl")) == base_flagged + sum(flagged)
    growth = max(rss_samples + [rss_end]) - rss_warm
    print(f"\nload: {THREADS} threads x {SECONDS:.0f} s, {total} runs ({total / SECONDS:.0f}/s), "
          f"RSS warm {rss_warm / 2**20:.1f} MiB, max growth {growth / 2**20:+.2f} MiB, "
          f"end {rss_end / 2**20:.1f} MiB")
    if not os.environ.get("PYGUARD_SANITIZED"):  # ASan's quarantine holds freed memory by design
        assert growth < RSS_GROWTH_LIMIT, f"RSS grew by {growth / 2**20:.1f} MiB under load"
