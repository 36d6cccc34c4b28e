"""The fused detector inside pyguard: calibration pass, squeezer choice, and the per-run decision.

:mod:`pyguard.signals` computes the per-sample signals, :mod:`pyguard.fusion` turns clean values into p-value
models and one threshold. This module connects them to :func:`pyguard.calibrate` and
:class:`pyguard.InferenceSession` (``detector="fused"``).

Signals of a guarded run: each squeezer's distance ``squeeze[<spec>]`` (not only their max), the
activation-range score ``activation_range`` (when the profile monitors activations), the input statistics
and the output statistics. ``report.scores`` holds every one of them plus ``"fused"`` (the combined
statistic; flagged when above ``report.threshold``).

Calibration under shift: ``calibrate(..., groups=labels)`` cross-fits the threshold (and the activation
score's bounds) over whole groups of calibration samples, ``fpr_confidence`` adds a finite-sample bound
(:mod:`pyguard.fusion`). Without groups (the default) the calibration pass also records a content descriptor
per sample (:func:`pyguard.signals.content_descriptor`) and the threshold is fitted on random folds and folds
of whole k-means content clusters pooled; ``groups="random"`` keeps random folds only. Rejected as defaults
(measured on the photo set, 5% target): random folds alone (9.7% FPR on the shifted test band), content
clusters alone (2.5% there but 0.9% on exchangeable splits), clusters of the predicted class (0.5%, 15%
detection: a class shift), contiguous blocks (data ordered by class: 0% FPR, 11% detection).

Known limitation: with ``action="purify"`` the outputs of the samples flagged by the profile's *squeeze*
threshold (Xu's, which a fused profile also keeps) are purified, while ``report.flagged`` is the fused
decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import signals as _signals
from .activations import PRESETS, SessionActivations
from .errors import ConfigError
from .fusion import FusedDetector, combine, fold_ids

DETECTORS = ("fused", "squeeze")
#: Squeezers tried when the caller of ``calibrate(detector="fused")`` does not choose: per family, the most
#: aggressive one that leaves clean predictions (nearly) unchanged is kept.
CANDIDATES = (
    "bit_depth:1",
    "bit_depth:2",
    "bit_depth:3",
    "bit_depth:4",
    "bit_depth:5",
    "median:2",
    "median:3",
)
AGREEMENT = 0.95
CHOICE_SAMPLES = 512


def signal_names(profile_squeezers: list[str], activations: bool, channels: int) -> list[str]:
    names = [n for n in _signals.INPUT_SIGNALS if channels >= 2 or n not in _signals.COLOUR_SIGNALS]
    names += list(_signals.OUTPUT_SIGNALS)
    if activations:
        names.append("activation_range")
    return names + [f"squeeze[{s}]" for s in profile_squeezers]


def cheap_names(names: list[str]) -> list[str]:
    return [n for n in names if not n.startswith("squeeze[")]


def choose_squeezers(agreement: dict[str, float], min_agreement: float = AGREEMENT) -> list[str]:
    """Per family (bit_depth, median, ...), the most aggressive candidate whose clean top-1 agreement with
    the unsqueezed input is at least ``min_agreement`` (candidates are listed most aggressive first)."""
    chosen: dict[str, str] = {}
    for spec, agree in agreement.items():
        family = spec.split(":")[0]
        if family not in chosen and agree >= min_agreement:
            chosen[family] = spec
    return list(chosen.values())


def _channels(x: np.ndarray, layout: str) -> int:
    return 1 if layout == "NHW" else x.shape[layout.index("C")]


class _CollectActivations(SessionActivations):
    """The session's activation check that also keeps the per-channel excess matrix (for cross-fitting)."""

    def apply(self, report: Any, channel_max: np.ndarray) -> None:
        super().apply(report, channel_max)
        report.scores["activation_channels"] = np.asarray(channel_max, np.float32).reshape(
            len(channel_max), -1
        )


def cross_fit_activation(
    excess: np.ndarray,
    preset: str,
    folds: int,
    seed: int = 0,
    groups: np.ndarray | None = None,
    ids: np.ndarray | None = None,
) -> np.ndarray:
    """Clean activation scores with the bounds of each fold profiled on the other folds.

    ``excess`` is the monitor output (channel maximum minus profiled bound, over scale; N x K). The bounds
    were profiled on the same samples, so their own scores are biased low; rescoring each fold against the
    quantile of the other folds gives scores distributed like those of unseen clean data. With ``groups``
    the folds are whole groups (:func:`pyguard.fusion.fold_ids`), as for the other signals; ``ids`` gives
    the fold of each sample directly.
    """
    q = PRESETS[preset]
    ids = fold_ids(len(excess), folds, seed, groups) if ids is None else ids
    out = np.empty(len(excess), np.float64)
    for k in np.unique(ids):
        held = ids == k
        other = excess[~held].astype(np.float64)
        bound = other.max(axis=0) if q >= 1.0 else np.quantile(other, q, axis=0, method="higher")
        out[held] = (excess[held] - bound).max(axis=1)
    return out


class FusedRuntime:
    """Computes every signal for a batch and, with a fitted detector, the fused decision."""

    def __init__(
        self,
        detector: FusedDetector | None,
        layout: str,
        lo: float,
        hi: float,
        kind: str,
        names: list[str] | None = None,
    ) -> None:
        self.detector = detector
        self.layout, self.lo, self.hi, self.kind = layout, lo, hi, kind
        self.names = list(detector.signals) if detector is not None else list(names or [])
        self.inputs = tuple(n for n in self.names if n in _signals.AVAILABLE_INPUT_SIGNALS)

    def values(
        self,
        report: Any,
        pixels: np.ndarray,
        lo: float,
        hi: float,
        main_out: np.ndarray,
        names: list[str] | None = None,
    ) -> dict[str, np.ndarray]:
        names = self.names if names is None else names
        inputs = tuple(n for n in names if n in _signals.AVAILABLE_INPUT_SIGNALS)
        values = _signals.input_signals(pixels, self.layout, lo, hi, names=inputs) if inputs else {}
        values.update(_signals.output_signals(main_out, self.kind))
        for n in names:
            if n not in values:
                if n not in report.scores:
                    raise ConfigError(
                        f"signal {n!r} of the fused detector is not available in this session "
                        "(a profile's activation monitor or squeezer is missing)"
                    )
                values[n] = report.scores[n]
        return {n: np.asarray(values[n], np.float64) for n in names}

    def apply(self, report: Any, pixels: np.ndarray, lo: float, hi: float, main_out: np.ndarray) -> None:
        """Put every signal in ``report.scores``; with a detector, add ``"fused"`` and decide."""
        import time

        t0 = time.perf_counter()
        values = self.values(report, pixels, lo, hi, main_out)
        report.scores.update(values)
        if self.detector is None:
            return
        p = self.detector.p_values(values)
        decide(report, combine(p, self.detector.combine), self.detector.threshold, p)
        report.timings["fused"] = (time.perf_counter() - t0) * 1e3


def decide(
    report: Any,
    fused: np.ndarray,
    threshold: float,
    p: dict[str, np.ndarray],
    forwarded: np.ndarray | None = None,
) -> None:
    """Flags = sanity failures or fused statistic above the threshold; reasons name the strongest signals.

    The activation check's own flag is replaced: its score is one of the fused signals, so the fused
    threshold alone sets the false-positive rate.
    """
    report.scores["fused"] = fused
    report.threshold = float(threshold)
    above = fused > threshold
    if forwarded is not None:
        above &= forwarded
    sanity = (report.scores["non_finite"] > 0) | (report.scores["out_of_range"] > 0)
    report.flagged = sanity | above
    names = list(p)
    report.reasons = [[] for _ in range(len(fused))]
    for i in np.flatnonzero(report.flagged).tolist():
        reasons = [
            r
            for r, hit in (
                ("non_finite", report.scores["non_finite"][i] > 0),
                ("input_range", report.scores["out_of_range"][i] > 0),
            )
            if hit
        ]
        if above[i]:
            strongest = sorted(names, key=lambda n: p[n][i])[:3]
            reasons += ["fused"] + [f"fused:{n}" for n in strongest if p[n][i] < 0.05]
        report.reasons[i] = reasons


def runtime_for(profile) -> FusedRuntime | None:
    """The session's fused runtime when the profile carries a fused detector."""
    det = getattr(profile, "fused", None)
    if det is None:
        return None
    spec = profile.input
    return FusedRuntime(det, spec.layout, *spec.range, profile.output_kind)


def cascade_for(sess, cascade: bool):
    if cascade not in (True, False):
        raise ConfigError(f"cascade must be True or False, got {cascade!r}")
    if not cascade:
        return None
    from .cascade import CascadeRunner

    return CascadeRunner(sess)


@dataclass
class CleanPass:
    """What the calibration pass collects: every signal's clean values, the content descriptor of each
    sample (for the default pseudo-groups) and, for the activation score, its per-channel excess."""

    values: dict[str, np.ndarray]
    descriptor: np.ndarray
    activation_excess: np.ndarray | None = None
    activation_preset: str = "ranger"

    def refold(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """The activation score cross-fitted over the folds ``ids`` (nothing for the other signals)."""
        if self.activation_excess is None or "activation_range" not in self.values:
            return {}
        return {
            "activation_range": cross_fit_activation(
                self.activation_excess, self.activation_preset, folds=0, ids=ids
            )
        }


def unit_pixels(x: np.ndarray, spec: Any) -> np.ndarray:
    """Model input -> pixels in [0, 1] (undoes the profile's mean/std normalization and input range)."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = spec.range
    if spec.mean is not None:
        shape = (1, -1, 1, 1) if spec.layout == "NCHW" else (-1,)
        x = x * np.reshape(spec.std, shape) + np.reshape(spec.mean, shape)
    return (x - lo) / (hi - lo)


def calibration_pass(sess, batches, names: list[str], acts, groups=None) -> CleanPass:
    """Run the draft guarded session over the calibration batches and collect every signal's clean values
    (the activation score cross-fitted over random folds, or over ``groups``) and each sample's content."""
    if acts is not None and sess._activations is not None:
        sess._activations = _CollectActivations(sess._activations.monitor)
    spec = sess.profile.input
    sess._fused = FusedRuntime(None, spec.layout, *spec.range, sess.profile.output_kind, names=names)
    if sess._detector is None:  # no squeezers: the fused signals still need the detector's pixel handling
        from .session import _Detector, _is_dynamic

        meta = sess._inputs[spec.name]
        sess._detector = _Detector(sess.profile, meta, bool(meta.shape) and _is_dynamic(meta.shape[0]))
    collected: dict[str, list] = {n: [] for n in names}
    channels, content = [], []
    out_name = sess.profile.output_name
    for feed, valid in batches:
        _, report = sess.run_with_report([out_name], feed)
        for n in names:
            if n != "activation_range":
                collected[n].append(np.asarray(report.scores[n])[:valid])
        if "activation_channels" in report.scores:
            channels.append(report.scores["activation_channels"][:valid])
        content.append(_signals.content_descriptor(unit_pixels(feed[spec.name][:valid], spec), spec.layout))
    out = {n: np.concatenate(v) for n, v in collected.items() if v}
    clean = CleanPass(values=out, descriptor=np.concatenate(content))
    if "activation_range" in names:
        clean.activation_excess, clean.activation_preset = np.concatenate(channels), acts.preset
        out["activation_range"] = cross_fit_activation(
            clean.activation_excess, acts.preset, folds=5, groups=groups
        )
    return clean


def fit(
    clean: CleanPass | dict[str, np.ndarray],
    fpr: float,
    *,
    combine: str = "fisher",
    screen: float = 0.2,
    groups: np.ndarray | str | None = None,
    confidence: float | None = None,
) -> FusedDetector:
    """The detector from a calibration pass. ``groups``: labels (whole-group folds), ``"random"`` (random
    folds only) or None (the default: random and content-cluster foldings pooled, :mod:`pyguard.fusion`;
    needs a :class:`CleanPass`, a plain dict of values gets random folds)."""
    if isinstance(clean, dict):
        clean = CleanPass(values=clean, descriptor=np.zeros((0, 1)))
        groups = "random" if groups is None else groups
    values = clean.values
    tails = {n: _signals.tail_of(n) for n in values}
    auto = groups is None
    return FusedDetector.fit(
        values,
        tails,
        fpr,
        method=combine,
        cheap=cheap_names(list(values)),
        screen=screen,
        groups=None if isinstance(groups, str) else groups,
        confidence=confidence,
        descriptor=clean.descriptor if auto else None,
        refold=clean.refold if auto else None,
    )


def check_detector(detector: str) -> str:
    if detector not in DETECTORS:
        raise ConfigError(f"detector must be one of {DETECTORS}, got {detector!r}")
    return detector


__all__ = [
    "DETECTORS",
    "CANDIDATES",
    "FusedRuntime",
    "choose_squeezers",
    "signal_names",
    "cheap_names",
    "calibration_pass",
    "CleanPass",
    "unit_pixels",
    "fit",
    "cross_fit_activation",
    "decide",
]
