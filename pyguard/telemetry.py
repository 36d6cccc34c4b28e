"""Per-session telemetry: counters and histograms of guarded runs, for Prometheus or any other system.

A :class:`Telemetry` is attached to a session (``InferenceSession(..., telemetry=t)``) and observes every
guarded ``run``: requests, samples, flagged samples by reason, the distribution of each score, guard latency
(checks + squeezing + scoring) and model latency (onnxruntime). Labels are bounded: the session name chosen
by the user, reasons from a fixed set (anything else counts as ``"other"``) and at most
``MAX_SCORE_NAMES`` score names; nothing derived from an input ever becomes a label.

Two ways out, both reading the same thread-safe state:

- ``telemetry.register(registry)`` adds a collector to a ``prometheus_client`` registry (optional extra
  ``metrics``: ``pip install prometheus_client``); :func:`serve_metrics` serves a registry over HTTP.
- ``Telemetry(callback=f)`` calls ``f(event)`` after each run with a small dict (see :meth:`observe`), and
  :meth:`snapshot` returns every counter and histogram as plain Python values.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .errors import ConfigError

REASONS = ("squeeze", "input_range", "non_finite", "activation_range", "other")
MAX_SCORE_NAMES = 16  # squeeze, one per squeezer, and a few more; the rest are folded into "other"
# Squeeze scores are L1 distances between probability vectors, in [0, 2]; count scores have other ranges.
SCORE_BUCKETS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 10.0, 100.0, 1e4)
_SMALL = 16  # arrays up to this size are histogrammed value by value
LATENCY_BUCKETS_MS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000)


class Histogram:
    """Cumulative-bucket histogram (Prometheus semantics: ``le`` upper bounds, then +Inf)."""

    __slots__ = ("bounds", "_edges", "counts", "total", "count")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(float(b) for b in bounds)
        if list(self.bounds) != sorted(set(self.bounds)):
            raise ConfigError(f"histogram bounds must be strictly increasing, got {bounds!r}")
        self._edges = np.asarray(self.bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # last: above every bound (+Inf)
        self.total = 0.0
        self.count = 0

    def add(self, value: float) -> None:
        """Count one value (NaN is skipped; +-Inf lands in the outer buckets and stays out of the sum)."""
        if value != value:
            return
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        if math.isfinite(value):
            self.total += value
        self.count += 1

    def add_many(self, values: np.ndarray) -> None:
        """Count every value of an array, with :meth:`add`'s rules."""
        if values.size <= _SMALL:  # the common batch sizes: plain Python beats numpy's per-call overhead
            for value in values.ravel().tolist():
                self.add(value)
            return
        v = values.ravel().astype(np.float64, copy=False)
        v = v[~np.isnan(v)]
        if v.size == 0:
            return
        binned = np.bincount(np.searchsorted(self._edges, v, side="left"), minlength=len(self.counts))
        self.counts = [a + b for a, b in zip(self.counts, binned.tolist())]
        self.total += float(v[np.isfinite(v)].sum())
        self.count += int(v.size)

    def cumulative(self) -> list[tuple[str, int]]:
        """[(le, cumulative count)], ending with ("+Inf", count)."""
        out, running = [], 0
        for bound, c in zip([*map(_le, self.bounds), "+Inf"], self.counts):
            running += c
            out.append((bound, running))
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"buckets": self.cumulative(), "sum": self.total, "count": self.count}


def _le(bound: float) -> str:
    return repr(float(bound))


class Telemetry:
    """Thread-safe counters and histograms for one guarded session.

    Args:
        name: the ``session`` label (choose a bounded set of names: one per deployed model, not per input).
        callback: called as ``callback(event)`` after each observed run, outside the lock (see
            :meth:`observe`); exceptions it raises propagate to the caller of ``run``.
        score_buckets / latency_buckets_ms: histogram upper bounds.
    """

    def __init__(self, name: str = "default", *, callback: Callable[[dict], None] | None = None,
                 score_buckets: Sequence[float] = SCORE_BUCKETS,
                 latency_buckets_ms: Sequence[float] = LATENCY_BUCKETS_MS) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"telemetry name must be a non-empty string, got {name!r}")
        if callback is not None and not callable(callback):
            raise ConfigError("telemetry callback must be callable")
        self.name = name
        self.callback = callback
        self._lock = threading.Lock()
        self._score_buckets = tuple(score_buckets)
        self.requests = 0
        self.samples = 0
        self.flagged = 0
        self.flagged_by_reason = dict.fromkeys(REASONS, 0)
        self.scores: dict[str, Histogram] = {}
        self.guard_latency = Histogram(latency_buckets_ms)
        self.model_latency = Histogram(latency_buckets_ms)

    # ---- observing ----------------------------------------------------------------------------------
    def observe(self, report) -> None:
        """Count one run's :class:`~pyguard.GuardReport`. With a callback, passes it the event
        ``{"session", "samples", "flagged", "reasons": {reason: samples}, "guard_ms", "model_ms",
        "max_score": {name: float}}``."""
        n = len(report)
        flagged = int(np.count_nonzero(report.flagged))
        reasons = _reason_counts(report.reasons, report.flagged) if flagged else {}
        timings = report.timings
        model_ms = float(timings.get("inference", 0.0))
        guard_ms = max(float(timings.get("total", model_ms)) - model_ms, 0.0)
        with self._lock:
            self.requests += 1
            self.samples += n
            self.flagged += flagged
            for reason, c in reasons.items():
                self.flagged_by_reason[reason] += c
            for key, values in report.scores.items():
                self._score_histogram(key).add_many(np.asarray(values))
            self.guard_latency.add(guard_ms)
            self.model_latency.add(model_ms)
        if self.callback is not None:
            self.callback({"session": self.name, "samples": n, "flagged": flagged, "reasons": reasons,
                           "guard_ms": guard_ms, "model_ms": model_ms,
                           "max_score": {k: _max(np.asarray(v)) for k, v in report.scores.items()}})

    def _score_histogram(self, key: str) -> Histogram:
        h = self.scores.get(key)
        if h is None:
            if len(self.scores) >= MAX_SCORE_NAMES:
                key = "other"
                h = self.scores.get(key)
            if h is None:
                h = self.scores[key] = Histogram(self._score_buckets)
        return h

    # ---- reading ------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of every counter and histogram as plain Python values."""
        with self._lock:
            return {
                "session": self.name, "requests": self.requests, "samples": self.samples,
                "flagged": self.flagged,
                "flagged_by_reason": dict(self.flagged_by_reason),
                "scores": {k: h.as_dict() for k, h in self.scores.items()},
                "guard_latency_ms": self.guard_latency.as_dict(),
                "model_latency_ms": self.model_latency.as_dict(),
            }

    def register(self, registry=None):
        """Add this session's metrics to a ``prometheus_client`` registry (default: the global one);
        returns the collector (``registry.unregister(collector)`` removes it)."""
        prometheus = _prometheus()
        collector = _Collector(self, prometheus)
        (registry if registry is not None else prometheus.REGISTRY).register(collector)
        return collector


def _max(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)] if values.dtype.kind == "f" else values
    return float(finite.max()) if finite.size else math.nan


def _reason_counts(reasons: list[list[str]], flagged: np.ndarray) -> dict[str, int]:
    counts: dict[str, int] = {}
    for i in np.flatnonzero(flagged).tolist():
        for r in reasons[i]:
            r = r if r in REASONS else "other"
            counts[r] = counts.get(r, 0) + 1
    return counts


def _prometheus():
    try:
        import prometheus_client
        import prometheus_client.core  # noqa: F401  (the metric families of custom collectors)
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ConfigError("Prometheus export needs prometheus_client: "
                          "pip install 'pyguard-ort[metrics]'") from e
    return prometheus_client


class _Collector:
    """A prometheus_client custom collector reading a Telemetry snapshot at scrape time."""

    def __init__(self, telemetry: Telemetry, prometheus) -> None:
        self.telemetry = telemetry
        self.core = prometheus.core

    def describe(self):
        return []  # metrics are created at scrape time; nothing to pre-declare

    def collect(self):
        core, snap = self.core, self.telemetry.snapshot()
        session = snap["session"]

        def counter(name, doc, value, labels=(), label_values=()):
            m = core.CounterMetricFamily(name, doc, labels=["session", *labels])
            m.add_metric([session, *label_values], value)
            return m

        yield counter("pyguard_requests", "Guarded run calls", snap["requests"])
        yield counter("pyguard_samples", "Samples checked (first axis of the guarded input)", snap["samples"])
        yield counter("pyguard_flagged_samples", "Samples flagged for any reason", snap["flagged"])
        by_reason = core.CounterMetricFamily("pyguard_flagged_by_reason",
                                             "Flagged samples per reason", labels=["session", "reason"])
        for reason, c in snap["flagged_by_reason"].items():
            by_reason.add_metric([session, reason], c)
        yield by_reason
        scores = core.HistogramMetricFamily("pyguard_score", "Per-sample guard scores",
                                            labels=["session", "score"])
        for key, h in snap["scores"].items():
            scores.add_metric([session, key], h["buckets"], sum_value=h["sum"])
        yield scores
        for name, doc, key in (("pyguard_guard_latency_ms", "Guard time per run (checks, squeeze, score)",
                                "guard_latency_ms"),
                               ("pyguard_model_latency_ms", "onnxruntime time per run", "model_latency_ms")):
            m = core.HistogramMetricFamily(name, doc, labels=["session"])
            m.add_metric([session], snap[key]["buckets"], sum_value=snap[key]["sum"])
            yield m


def new_registry():
    """A fresh ``prometheus_client.CollectorRegistry`` (ConfigError when prometheus_client is missing)."""
    return _prometheus().CollectorRegistry()


def serve_metrics(port: int, *, addr: str = "127.0.0.1", registry=None):
    """Serve a ``prometheus_client`` registry over HTTP (``/metrics``) from a daemon thread; returns the
    server (``server.server_port`` is the bound port when ``port=0``; ``server.shutdown()`` stops it).

    Binds to 127.0.0.1 by default: exposing metrics beyond the host is a deliberate choice of ``addr``."""
    prometheus = _prometheus()
    server, _thread = prometheus.start_http_server(port, addr=addr,
                                                   registry=registry if registry is not None
                                                   else prometheus.REGISTRY)
    return server


__all__ = ["Telemetry", "Histogram", "new_registry", "serve_metrics", "REASONS"]
