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


def roc_curve(negative: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates of "score > t" for every distinct threshold, from (0, 0) to (1, 1).

    The trapezoidal area under these points equals :func:`roc_auc` (ties give diagonal segments).
    """
    neg = np.asarray(negative, dtype=np.float64).ravel()
    pos = np.asarray(positive, dtype=np.float64).ravel()
    if neg.size == 0 or pos.size == 0:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0])
    thresholds = np.unique(np.concatenate([neg, pos]))[::-1]
    neg_sorted, pos_sorted = np.sort(neg), np.sort(pos)
    fpr = 1.0 - np.searchsorted(neg_sorted, thresholds, side="left") / neg.size
    tpr = 1.0 - np.searchsorted(pos_sorted, thresholds, side="left") / pos.size
    return np.r_[0.0, fpr], np.r_[0.0, tpr]


def attack_success(predictions: np.ndarray, labels: np.ndarray,
                   source_correct: np.ndarray | None = None) -> np.ndarray:
    """Per example: the model's top-1 differs from the label (and, when given, the clean image was right)."""
    success = np.asarray(predictions).ravel() != np.asarray(labels).ravel()
    if source_correct is not None:
        success &= np.asarray(source_correct, dtype=bool).ravel()
    return success


def perturbation_norms(x_adv: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-example L2 and L-inf norms of ``x_adv - x`` (computed in float64)."""
    delta = (np.asarray(x_adv, dtype=np.float64) - np.asarray(x, dtype=np.float64)).reshape(len(x), -1)
    if delta.shape[1] == 0:
        return np.zeros(len(x)), np.zeros(len(x))
    return np.linalg.norm(delta, axis=1), np.abs(delta).max(axis=1)


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if np.size(values) else float("nan")


def attack_summary(*, success: np.ndarray, scores: np.ndarray, flagged: np.ndarray, clean_scores: np.ndarray,
                   threshold: float, l2: np.ndarray | None = None, linf: np.ndarray | None = None,
                   robust: np.ndarray | None = None, queries: np.ndarray | None = None) -> dict[str, float]:
    """The Feature Squeezing paper's numbers for one attack (or several, concatenated).

    ``success``/``scores``/``flagged`` per adversarial example; detection rate, ROC-AUC (against
    ``clean_scores``), mean L2/L-inf and mean queries count successful examples only; ``flagged_all``
    counts every example; ``robust_accuracy`` is the fraction of all examples that ``robust`` (per example:
    the purified prediction equals the label) marks correct.
    """
    success = np.asarray(success, dtype=bool)
    ok_scores = np.asarray(scores)[success]
    out = {
        "examples": int(success.size),
        "successful": int(success.sum()),
        "success_rate": _mean(success),
        "detection_rate": detection_rate(ok_scores, threshold),
        "roc_auc": roc_auc(clean_scores, ok_scores),
        "flagged_all": _mean(np.asarray(flagged, dtype=bool)),
        "evasion_rate": _mean(success & ~np.asarray(flagged, dtype=bool)),
    }
    if l2 is not None:
        out["mean_l2"] = _mean(np.asarray(l2)[success])
    if linf is not None:
        out["mean_linf"] = _mean(np.asarray(linf)[success])
    if robust is not None:
        out["robust_accuracy_purify"] = _mean(np.asarray(robust, dtype=bool))
    if queries is not None:
        q = np.asarray(queries)
        out["mean_queries"] = _mean(q[success])
        out["median_queries"] = float(np.median(q[success])) if success.any() else float("nan")
        out["max_queries_used"] = int(q.max()) if q.size else 0
    return out


__all__ = ["threshold_at_fpr", "detection_rate", "roc_auc", "binomial_interval", "check_fpr", "roc_curve",
           "attack_success", "perturbation_norms", "attack_summary"]
