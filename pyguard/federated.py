"""Federated calibration: sites share mergeable summaries of their clean data, never the data itself.

Each site runs the model guarded by an agreed profile (the same model, squeezers and input convention
everywhere; e.g. one site's own :func:`pyguard.calibrate` result) over its clean samples and keeps only:

- a KLL quantile sketch of the squeeze scores (Apache DataSketches ``kll_doubles_sketch``; it retains about
  ``k * log(n / k)`` score values, never an input),
- the per-squeezer sums of distances (to pick the purifier as calibration does), the sample count,
- the min/max of the scores and of the input values.

:func:`merge_profiles` (also ``profile.merge(summaries)``) merges the sketches and reads the threshold at the
reference rule's rank ``ceil(N (1 - fpr)) / N``. KLL's guarantee: the returned value's rank among all N
scores is within ``rank_error`` (``normalized_rank_error``, ~1.3% at the default k=200, 99% confidence) of
that rank; with fewer than ``k`` samples in total the sketch is exact and the threshold equals calibrating on
the union. The fleet profile records the bound in ``profile.fleet``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ConfigError, ProfileError
from .metrics import check_fpr
from .profile import GuardProfile, model_sha256, now_iso

SUMMARY_FORMAT = "pyguard-calibration-summary"
SUMMARY_VERSION = 1
DEFAULT_K = 200
_QUANTILES = (0.5, 0.9, 0.95, 0.99, 1.0)


def _kll():
    try:
        from datasketches import kll_doubles_sketch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ConfigError("federated calibration needs Apache DataSketches: "
                          "pip install 'pyguard-ort[federated]'") from e
    return kll_doubles_sketch


def config_digest(profile: GuardProfile) -> str:
    """sha256 of what every site must share: model, input convention, output and squeezers."""
    d = profile.to_dict()
    shared = {k: d[k] for k in ("model_sha256", "input", "output_name", "output_kind", "squeezers")}
    return hashlib.sha256(json.dumps(shared, sort_keys=True).encode()).hexdigest()


@dataclass
class CalibrationSummary:
    """What one site (or a merge of sites) contributes: sketches and extremes, no samples."""

    config: str  # config_digest of the profile the scores were computed with
    n: int
    k: int
    sketch: bytes  # serialized kll_doubles_sketch of the squeeze scores
    squeezer_sums: list[float]
    score_range: tuple[float, float]
    input_range: tuple[float, float]
    sites: list[str] = field(default_factory=list)

    # ---- sketch ---------------------------------------------------------------------------------------
    def kll(self):
        try:
            return _kll().deserialize(self.sketch)
        except Exception as e:  # DataSketches raises RuntimeError / ValueError on malformed bytes
            raise ProfileError(f"malformed calibration summary sketch: {e}") from e

    @property
    def rank_error(self) -> float:
        return float(self.kll().normalized_rank_error(False))

    def merge(self, other: CalibrationSummary) -> CalibrationSummary:
        if other.config != self.config:
            raise ProfileError("calibration summaries come from different models or guard configurations")
        if len(other.squeezer_sums) != len(self.squeezer_sums):
            raise ProfileError("calibration summaries have different squeezer counts")
        sketch = self.kll()
        sketch.merge(other.kll())
        return CalibrationSummary(
            config=self.config, n=self.n + other.n, k=min(self.k, other.k), sketch=sketch.serialize(),
            squeezer_sums=[a + b for a, b in zip(self.squeezer_sums, other.squeezer_sums)],
            score_range=(min(self.score_range[0], other.score_range[0]),
                         max(self.score_range[1], other.score_range[1])),
            input_range=(min(self.input_range[0], other.input_range[0]),
                         max(self.input_range[1], other.input_range[1])),
            sites=self.sites + other.sites)

    # ---- JSON -----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": SUMMARY_FORMAT, "format_version": SUMMARY_VERSION, "config": self.config,
                "n": self.n, "k": self.k, "sketch": base64.b64encode(self.sketch).decode("ascii"),
                "squeezer_sums": self.squeezer_sums, "score_range": list(self.score_range),
                "input_range": list(self.input_range), "sites": self.sites}

    @classmethod
    def from_dict(cls, d: Any) -> CalibrationSummary:
        if not isinstance(d, dict) or d.get("format") != SUMMARY_FORMAT:
            raise ProfileError(f"not a pyguard calibration summary (\"format\" is not {SUMMARY_FORMAT!r})")
        if d.get("format_version") != SUMMARY_VERSION:
            raise ProfileError(f"unsupported calibration summary version {d.get('format_version')!r}")
        try:
            summary = cls(config=str(d["config"]), n=int(d["n"]), k=int(d["k"]),
                          sketch=base64.b64decode(d["sketch"], validate=True),
                          squeezer_sums=[float(v) for v in d["squeezer_sums"]],
                          score_range=_pair(d["score_range"]), input_range=_pair(d["input_range"]),
                          sites=[str(s) for s in d.get("sites", [])])
        except (KeyError, TypeError, ValueError) as e:
            raise ProfileError(f"malformed calibration summary: {type(e).__name__}: {e}") from e
        if summary.kll().n != summary.n:
            raise ProfileError("malformed calibration summary: sketch count differs from n")
        return summary

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f)

    @classmethod
    def load(cls, path: str | os.PathLike) -> CalibrationSummary:
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
            raise ProfileError(f"malformed calibration summary {os.fspath(path)!r}: {e!s:.200}") from e
        return cls.from_dict(d)


def _pair(v) -> tuple[float, float]:
    lo, hi = (float(x) for x in v)
    return lo, hi


def summarize(model: str | os.PathLike | bytes, data, profile: GuardProfile, *, k: int = DEFAULT_K,
              batch_size: int = 64, site: str = "", providers=None, sess_options=None) -> CalibrationSummary:
    """One site's summary of its clean ``data`` (an array or iterable of feeds, as for
    :func:`pyguard.calibrate`) under the shared ``profile``; raises like calibrate on unclean data."""
    from .calibrate import _batches, _check_clean, _fixed_batch, _read_model
    from .session import InferenceSession

    if not profile.squeezers:
        raise ConfigError("federated calibration needs a profile with squeezers")
    _check_squeeze_detector(profile)
    if not isinstance(k, int) or not 8 <= k <= 65535:
        raise ConfigError(f"k must be an integer in [8, 65535], got {k!r}")
    model_bytes = _read_model(model)
    profile.check_model(model_sha256(model_bytes))
    sess = InferenceSession(model_bytes, sess_options, providers, profile=profile, action="monitor")
    image = next(i for i in sess.get_inputs() if i.name == profile.input.name)
    sketch = _kll()(k)
    sums = np.zeros(len(profile.squeezers))
    lo, hi, n = math.inf, -math.inf, 0
    for feed, valid in _batches(data, image, batch_size, _fixed_batch(image)):
        _, report = sess.run_with_report([profile.output_name], feed)
        _check_clean(report, valid, profile.input.range)
        scores = report.scores["squeeze"][:valid]
        sketch.update(np.ascontiguousarray(scores, dtype=np.float64))
        sums += [report.scores[f"squeeze[{s}]"][:valid].sum() for s in profile.squeezers]
        x = np.asarray(feed[image.name][:valid])
        lo, hi, n = min(lo, float(x.min())), max(hi, float(x.max())), n + valid
    if n == 0:
        raise ConfigError("calibration data is empty")
    return CalibrationSummary(config=config_digest(profile), n=n, k=k, sketch=sketch.serialize(),
                              squeezer_sums=sums.tolist(),
                              score_range=(sketch.get_min_value(), sketch.get_max_value()),
                              input_range=(lo, hi), sites=[site])


def _check_squeeze_detector(profile: GuardProfile) -> None:
    # the sketches hold Xu's squeeze score only: a fused detector's threshold would stay the template site's
    if profile.fused is not None:
        raise ConfigError("federated calibration merges Xu's squeeze detector only; calibrate the shared "
                          "profile with detector='squeeze'")


def merge_summaries(summaries) -> CalibrationSummary:
    summaries = list(summaries)
    if not summaries or not all(isinstance(s, CalibrationSummary) for s in summaries):
        raise ConfigError("merge needs at least one CalibrationSummary")
    merged = summaries[0]
    for s in summaries[1:]:
        merged = merged.merge(s)
    return merged


def merge_profiles(template: GuardProfile, summaries, *, fpr: float | None = None) -> GuardProfile:
    """The fleet profile: ``template``'s configuration with the threshold, quantiles and purifier of the
    merged summaries (threshold at rank ``ceil(N (1 - fpr)) / N`` of the merged sketch)."""
    _check_squeeze_detector(template)
    merged = merge_summaries(summaries)
    if merged.config != config_digest(template):
        raise ProfileError("the summaries were computed with another model or guard configuration than "
                           "this profile")
    fpr = check_fpr(template.fpr if fpr is None else fpr)
    sketch = merged.kll()
    rank = math.ceil(merged.n * (1.0 - fpr)) / merged.n
    threshold = float(sketch.get_quantile(max(rank, 1.0 / merged.n), True))
    means = [s / merged.n for s in merged.squeezer_sums]
    d = template.to_dict()
    d.update(threshold=threshold, fpr=fpr, n_calibration=merged.n, created=now_iso(),
             purifier=template.squeezers[int(np.argmin(means))],
             score_quantiles={f"{q:g}": float(sketch.get_quantile(q, True)) for q in _QUANTILES},
             fleet={"sites": merged.sites, "sketch": "kll_doubles", "k": merged.k,
                    "rank_error": float(sketch.normalized_rank_error(False)),
                    "score_range": list(merged.score_range), "input_range": list(merged.input_range)})
    return GuardProfile.from_dict(d)


__all__ = ["CalibrationSummary", "summarize", "merge_summaries", "merge_profiles", "config_digest",
           "DEFAULT_K"]
