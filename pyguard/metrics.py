"""Detector metrics without scikit-learn: the reference threshold rule, detection rate, ROC-AUC."""

from __future__ import annotations

import math

import numpy as np

from .errors import ConfigError


def check_fpr(fpr: float) -> float:
    if not isinstance(fpr, (int, float)) or isinstance(fpr, bool) or not (0.0 < float(fpr) < 1.0):
        raise ConfigError(f"fpr must be a number in (0, 1), got {fpr!r}")
    return float(fpr)


def threshold_at_fpr(scores: np.ndarray, fpr: float) -> float:
    """The Feature Squeezing reference rule: ``sorted(scores)[ceil(N * (1 - fpr)) - 1]``.

    A sample is flagged when its score is strictly greater than the threshold, so at most a fraction
    ``fpr`` of the calibration scores are flagged.
    """
    fpr = check_fpr(fpr)
    s = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    if s.size == 0:
        raise ConfigError("no calibration scores: the calibration data is empty")
    if not np.all(np.isfinite(s)):
        raise ConfigError("calibration scores contain non-finite values: the calibration data is not clean")
    index = math.ceil(s.size * (1.0 - fpr)) - 1
    return float(s[max(index, 0)])


def detection_rate(scores: np.ndarray, threshold: float) -> float:
    """Fraction of scores strictly above the threshold (NaN when there are none)."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    return float(np.mean(s > threshold)) if s.size else float("nan")


def roc_auc(negative: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve for "positive scores are higher", ties counting one half.

    Equal to the Mann-Whitney U statistic divided by n_neg * n_pos, computed from average ranks.
    """
    neg = np.asarray(negative, dtype=np.float64).ravel()
    pos = np.asarray(positive, dtype=np.float64).ravel()
    if neg.size == 0 or pos.size == 0:
        return float("nan")
    both = np.concatenate([neg, pos])
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(both.size, dtype=np.float64)
    sorted_vals = both[order]
    # Average ranks over runs of ties (1-based ranks).
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_vals)) + 1]
    ends = np.r_[starts[1:], both.size]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    rank_sum_pos = ranks[neg.size:].sum()
    u = rank_sum_pos - pos.size * (pos.size + 1) / 2.0
    return float(u / (neg.size * pos.size))


def binomial_interval(successes: int, trials: int, z: float = 2.576) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (z = 2.576: 99%)."""
    if trials <= 0:
        return (0.0, 1.0)
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


__all__ = ["threshold_at_fpr", "detection_rate", "roc_auc", "binomial_interval", "check_fpr"]
