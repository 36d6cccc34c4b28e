"""Audit log: one JSON line per flagged sample, durable before ``run`` returns.

``InferenceSession(..., audit=AuditLog("guard.jsonl"))`` writes every flagged sample of a run as one JSON
line: time, model sha256, the sample's index in the batch, its scores and reasons, the threshold and
action, and the sha256 of the sample's bytes (with dtype and shape). Optionally the sample itself is
quarantined as ``<input_sha256>.npy`` in a directory, as long as the directory stays under a byte budget.

Durability: all lines of one run are written with a single ``write`` on an ``O_APPEND`` descriptor and
``fsync``-ed before the call returns, so a process killed at any moment (SIGKILL, power loss once the disk
honours fsync) keeps every record of every ``run`` that returned. A crash mid-write can leave at most one
torn last line, which :func:`read_records` skips. Rotation by size: when the next write would take the file
past ``max_bytes`` it is renamed to ``<path>.1`` (older ones shift to ``.2`` ... ``.<backups>``, the
oldest is dropped) and a new file is started. One :class:`AuditLog` per file: threads of a process share
it, separate processes should write separate files (rotation is not coordinated between processes).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import math
import os
import threading
import time
from typing import Any

import numpy as np

from .errors import ConfigError

RECORD_VERSION = 1


def input_sha256(sample: np.ndarray) -> str:
    """sha256 of a sample's bytes in C order (what the audit log records as ``input_sha256``)."""
    return hashlib.sha256(np.ascontiguousarray(sample).tobytes()).hexdigest()


class AuditLog:
    """Append-only, fsync-ed JSON-lines log of flagged samples, rotated by size.

    Args:
        path: the log file (created with mode 0600 if missing; its directory must exist).
        max_bytes: rotate when the file would grow past this size.
        backups: rotated files kept (``path.1`` .. ``path.<backups>``).
        quarantine_dir: when set, flagged samples are saved there as ``<input_sha256>.npy``.
        quarantine_budget_bytes: total size the quarantine directory may reach; samples that do not fit
            are recorded with ``"quarantine": null``.
        fsync: ``False`` skips fsync (tests of throughput only: records may then be lost on a crash).
    """

    def __init__(self, path: str | os.PathLike, *, max_bytes: int = 64 << 20, backups: int = 5,
                 quarantine_dir: str | os.PathLike | None = None, quarantine_budget_bytes: int = 256 << 20,
                 fsync: bool = True) -> None:
        if not isinstance(max_bytes, int) or max_bytes < 1024:
            raise ConfigError(f"max_bytes must be an integer >= 1024, got {max_bytes!r}")
        if not isinstance(backups, int) or backups < 1:
            raise ConfigError(f"backups must be a positive integer, got {backups!r}")
        if not isinstance(quarantine_budget_bytes, int) or quarantine_budget_bytes < 0:
            raise ConfigError(f"quarantine_budget_bytes must be a non-negative integer, "
                              f"got {quarantine_budget_bytes!r}")
        self.path = os.fspath(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.fsync = fsync
        self.quarantine_dir = os.fspath(quarantine_dir) if quarantine_dir is not None else None
        self.quarantine_budget = quarantine_budget_bytes
        self._lock = threading.Lock()
        created = not os.path.exists(self.path)
        self._fd = self._open()
        if created:  # make the new file's directory entry durable too
            _fsync_dir(os.path.dirname(os.path.abspath(self.path)))
        self._size = os.fstat(self._fd).st_size
        self._quarantined = self._quarantine_usage()

    # ---- files --------------------------------------------------------------------------------------
    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def _rotate(self) -> None:
        os.close(self._fd)
        for i in range(self.backups - 1, 0, -1):
            older = f"{self.path}.{i}"
            if os.path.exists(older):
                os.replace(older, f"{self.path}.{i + 1}")
        os.replace(self.path, f"{self.path}.1")
        self._fd = self._open()
        self._size = 0
        _fsync_dir(os.path.dirname(os.path.abspath(self.path)))

    def _quarantine_usage(self) -> int:
        if self.quarantine_dir is None:
            return 0
        os.makedirs(self.quarantine_dir, mode=0o700, exist_ok=True)
        return sum(e.stat().st_size for e in os.scandir(self.quarantine_dir)
                   if e.is_file() and e.name.endswith(".npy"))

    def _quarantine(self, sample: np.ndarray, digest: str) -> str | None:
        """Save the sample as <digest>.npy if it fits the budget (already there: reuse it)."""
        target = os.path.join(self.quarantine_dir, f"{digest}.npy")
        if os.path.exists(target):
            return target
        if self._quarantined + _npy_size(sample) > self.quarantine_budget:
            return None
        tmp = f"{target}.tmp{os.getpid()}.{threading.get_ident()}"
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(sample), allow_pickle=False)
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())
        self._quarantined += os.path.getsize(tmp)
        os.replace(tmp, target)
        return target

    # ---- recording ----------------------------------------------------------------------------------
    def record(self, report, x: np.ndarray | None, *, model_sha256: str | None = None,
               session: str | None = None) -> list[dict[str, Any]]:
        """Write one line per flagged sample of ``report`` (``x`` = the guarded input, first axis = samples)
        and fsync before returning the records. Nothing is written when nothing is flagged."""
        flagged = np.flatnonzero(report.flagged)
        if flagged.size == 0:
            return []
        now = time.time()
        stamp = _dt.datetime.fromtimestamp(now, _dt.timezone.utc).isoformat(timespec="microseconds")
        samples = x if isinstance(x, np.ndarray) and x.ndim and x.shape[0] == len(report) else None
        records = []
        with self._lock:
            for i in flagged.tolist():
                rec = {"v": RECORD_VERSION, "time": stamp, "unix": now, "session": session,
                       "model_sha256": model_sha256, "sample": i,
                       "scores": {k: _number(v[i]) for k, v in report.scores.items()
                                  if isinstance(v, np.ndarray) and v.ndim == 1 and v.shape[0] == len(report)},
                       "reasons": list(report.reasons[i]), "threshold": _number(report.threshold),
                       "action": report.action, "input_sha256": None, "dtype": None, "shape": None,
                       "quarantine": None}
                if samples is not None:
                    sample = samples[i]
                    digest = input_sha256(sample)
                    rec.update(input_sha256=digest, dtype=str(sample.dtype), shape=list(sample.shape))
                    if self.quarantine_dir is not None:
                        rec["quarantine"] = self._quarantine(sample, digest)
                records.append(rec)
            self._append(b"".join(json.dumps(r, separators=(",", ":"), allow_nan=False).encode() + b"\n"
                                  for r in records))
        return records

    def _append(self, data: bytes) -> None:
        if self._size and self._size + len(data) > self.max_bytes:
            self._rotate()
        view = memoryview(data)
        while view:  # a regular file takes it in one write; loop only for robustness
            written = os.write(self._fd, view)
            view = view[written:]
        if self.fsync:
            os.fsync(self._fd)
        self._size += len(data)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _number(v) -> float | str | None:
    """JSON has no Inf/NaN: they are written as the strings "inf", "-inf", "nan"."""
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else str(f)


def _npy_size(sample: np.ndarray) -> int:
    """Bytes np.save writes for this array (format 1.0 header + data)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(sample))
    return len(header.getvalue()) + sample.nbytes


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every complete record of one log file (a torn last line left by a crash is skipped)."""
    with open(path, "rb") as f:
        data = f.read()
    records = []
    for line in data.split(b"\n"):
        if not line:
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if not data.endswith(line):  # only the very last line may be torn
                raise
    return records


__all__ = ["AuditLog", "read_records", "input_sha256", "RECORD_VERSION"]
