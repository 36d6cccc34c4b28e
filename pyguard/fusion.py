"""Calibration and combination of the fused detector's signals, on clean data only.

Each signal becomes a p-value against its clean calibration distribution (a conformal p-value), and the
p-values of a sample are combined into one statistic with one threshold at the target false-positive rate.

* Conformal p-value (upper tail): ``p(s) = (1 + #{calibration values >= s}) / (n + 1)``.
* Tail model. That p-value cannot go below ``1 / (n + 1)``: every sample beyond the calibration maximum
  looks the same, so a min-p combination collapses and Fisher's sum saturates. Above the ``k``-th largest
  calibration value ``u`` (``k = 10%`` of n, at least 5) we use the peaks-over-threshold model of extreme
  value theory: exceedances ``y = s - u`` follow a generalized Pareto distribution, fitted by the method of
  moments (``xi = (1 - m^2/v) / 2``, ``beta = m (1 - xi)`` with the shape clipped to [0, 0.5], i.e. from an
  exponential to a heavy tail, never a bounded one), and
  ``p(s) = (k + 1) / (n + 1) * (1 + xi y / beta)^(-1/xi)`` (``exp(-y / beta)`` for ``xi = 0``). It joins
  the empirical p-value at ``u`` and keeps decreasing smoothly beyond the calibration maximum.
  p-values are floored at 1e-16.
* Two-sided signals: ``p = min(1, 2 min(p_upper(s), p_upper(-s)))`` with a tail model on each side.
* Combination: Fisher ``T = -2 sum log p`` (default) or min-p ``T = -log min p``. The signals are correlated,
  so the chi-square reference of Fisher's method does not hold; the threshold on T is instead the reference
  rule ``sorted(T)[ceil(n (1 - fpr)) - 1]`` on *cross-fitted* clean statistics: the calibration set is split
  in ``folds``; each fold's T is computed with p-value models fitted on the other folds, so no calibration
  sample is scored against itself. The deployed models are then fitted on all n samples.
* Shift-robust calibration (``groups``). Random folds assume deployment data are exchangeable with the
  calibration data. When the calibration samples carry group labels (source, site, capture session, image
  region...), the folds are whole groups (like scikit-learn's ``GroupKFold``): each held-out group is scored
  by models that never saw it, so the threshold absorbs the between-group variability a deployment shift
  brings. (Leaving out signals whose held-out-group tail rate exceeds its binomial bound was tried and
  dropped: on the photo set no signal qualified, on synthetic group shifts it raised the FPR of new groups.)
* Default calibration without groups (``descriptor``): content pseudo-groups mixed with random folds.
  Random folds alone let the threshold drift under a content shift (photo set: 9.7% clean FPR on a shifted
  test band at a 5% target); folds of content clusters alone over-correct (1% FPR on exchangeable data). The
  default pools the cross-fitted statistics of two kinds of folding, equally weighted: ``repeats`` random
  fold assignments and ``repeats`` *content* foldings, each the seeded k-means clustering (``k = 2 folds``
  clusters, so whole clusters can balance the folds' sizes; k-means++ start) of a per-sample content
  descriptor (per-channel mean and spread of the pixels, log gradient energy; robustly standardized), with
  whole clusters held out. The reference rule on the pooled statistics then targets the FPR averaged over
  an exchangeable deployment and one with unseen content; repeating both foldings (different seeds)
  averages out the clustering's randomness (one clustering: 4.8-7.1% FPR on the shifted photo band over
  k-means seeds; five: 5.7-6.3%). The price: on exchangeable data the FPR is about half the target
  (photo set 2.1%, digits 3.2% mean over random splits); ``groups="random"`` in :func:`pyguard.calibrate`
  restores random folds.
* Finite-sample confidence (``confidence``). The reference rule holds the FPR at the target *on average
  over calibration draws*; with ``confidence = 1 - delta`` the threshold is the smallest order statistic
  ``T_(k)`` of the cross-fitted clean statistics with ``P(Binomial(n, 1 - fpr) >= k) <= delta``, i.e. the
  FPR of fresh exchangeable data is at most the target with probability ``confidence`` (the
  training-conditional conformal bound, Vovk 2012). With pooled foldings the same rank *share*
  ``k / n`` of the pooled statistics is used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ConfigError
from .metrics import check_fpr, threshold_at_fpr

COMBINERS = ("fisher", "min_p")
P_FLOOR = 1e-16
TAIL_FRACTION = 0.10
MIN_TAIL = 5
MAX_REFERENCE = 4096  # calibration values kept per signal (quantiles beyond that)
XI_RANGE = (0.0, 0.5)
CLUSTERS_PER_FOLD = 2  # content pseudo-groups: k = CLUSTERS_PER_FOLD * folds
REPEATS = 5  # random and content foldings pooled by the default calibration
KMEANS_ITERATIONS = 100
KMEANS_SAMPLE = 4096  # rows the k-means centres are fitted on (all rows are then assigned)
FOLDINGS = ("random", "groups", "content")


# ---- one side of one signal ----------------------------------------------------------------------------
@dataclass
class UpperTail:
    """Empirical upper-tail p-values with a generalized Pareto model beyond the ``k``-th largest value."""

    reference: np.ndarray  # sorted ascending, float64
    n: int  # calibration samples (reference may be a quantile grid of them)
    u: float
    k: int
    beta: float
    xi: float

    @classmethod
    def fit(cls, values: np.ndarray) -> UpperTail:
        v = np.sort(np.asarray(values, dtype=np.float64).ravel())
        if v.size == 0 or not np.all(np.isfinite(v)):
            raise ConfigError("a signal has no or non-finite calibration values")
        n = int(v.size)
        k = min(max(MIN_TAIL, int(round(TAIL_FRACTION * n))), n - 1)
        u = float(v[n - k - 1]) if k > 0 else float(v[-1])
        excess = v[n - k :] - u if k > 0 else np.zeros(0)
        beta, xi = fit_gpd(excess, spread=float(v[-1] - v[0]))
        ref = v if n <= MAX_REFERENCE else np.quantile(v, np.linspace(0, 1, MAX_REFERENCE))
        return cls(reference=ref, n=n, u=u, k=k, beta=beta, xi=xi)

    def p(self, s: np.ndarray) -> np.ndarray:
        s = np.asarray(s, dtype=np.float64)
        ref = self.reference
        at_least = ref.size - np.searchsorted(ref, s, side="left")  # reference values >= s
        if ref.size != self.n:
            at_least = at_least * (self.n / ref.size)
        p = (1.0 + at_least) / (self.n + 1.0)
        beyond = s > self.u
        if beyond.any():
            p[beyond] = (self.k + 1.0) / (self.n + 1.0) * gpd_survival(s[beyond] - self.u, self.beta, self.xi)
        p[np.isnan(s)] = P_FLOOR  # a NaN score is as suspicious as it gets
        return np.clip(p, P_FLOOR, 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference.tolist(),
            "n": self.n,
            "u": self.u,
            "k": self.k,
            "beta": self.beta,
            "xi": self.xi,
        }

    def __eq__(self, other: object) -> bool:  # the generated one would compare arrays elementwise
        return isinstance(other, UpperTail) and self.to_dict() == other.to_dict()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UpperTail:
        return cls(
            reference=np.asarray(d["reference"], np.float64),
            n=int(d["n"]),
            u=float(d["u"]),
            k=int(d["k"]),
            beta=float(d["beta"]),
            xi=float(d["xi"]),
        )


def fit_gpd(excess: np.ndarray, spread: float = 0.0) -> tuple[float, float]:
    """(beta, xi) of a generalized Pareto distribution by the method of moments, xi clipped to XI_RANGE.

    Degenerate tails (fewer than two distinct exceedances) get an exponential with a scale from the mean
    exceedance, or from the signal's spread, or a tiny absolute one when the signal is constant on clean
    data (anything above it is then very unlikely, which is what the calibration data says).
    """
    y = np.asarray(excess, dtype=np.float64)
    m = float(y.mean()) if y.size else 0.0
    v = float(y.var(ddof=1)) if y.size > 1 else 0.0
    if m <= 0.0:
        return max(1e-3 * spread, 1e-9), 0.0
    if v <= 0.0:
        return m, 0.0
    xi = min(max(0.5 * (1.0 - m * m / v), XI_RANGE[0]), XI_RANGE[1])
    return m * (1.0 - xi), xi


def gpd_survival(y: np.ndarray, beta: float, xi: float) -> np.ndarray:
    y = np.maximum(np.asarray(y, dtype=np.float64), 0.0)
    if xi == 0.0:
        return np.exp(-y / beta)
    return (
        np.power1p(xi * y / beta, -1.0 / xi)
        if hasattr(np, "power1p")
        else (1.0 + xi * y / beta) ** (-1.0 / xi)
    )


# ---- one signal --------------------------------------------------------------------------------------------
@dataclass
class SignalModel:
    name: str
    tail: str  # "upper" or "two-sided"
    upper: UpperTail
    lower: UpperTail | None = None  # tail model of -s (two-sided signals)

    @classmethod
    def fit(cls, name: str, tail: str, values: np.ndarray) -> SignalModel:
        if tail not in ("upper", "two-sided"):
            raise ConfigError(f"signal {name!r}: tail must be 'upper' or 'two-sided', got {tail!r}")
        values = np.asarray(values, dtype=np.float64)
        lower = UpperTail.fit(-values) if tail == "two-sided" else None
        return cls(name=name, tail=tail, upper=UpperTail.fit(values), lower=lower)

    def p(self, s: np.ndarray) -> np.ndarray:
        s = np.asarray(s, dtype=np.float64)
        p = self.upper.p(s)
        if self.lower is not None:
            p = np.minimum(1.0, 2.0 * np.minimum(p, self.lower.p(-s)))
            p = np.maximum(p, P_FLOOR)
        return p

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tail": self.tail,
            "upper": self.upper.to_dict(),
            "lower": None if self.lower is None else self.lower.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SignalModel:
        return cls(
            name=d["name"],
            tail=d["tail"],
            upper=UpperTail.from_dict(d["upper"]),
            lower=None if d.get("lower") is None else UpperTail.from_dict(d["lower"]),
        )


def combine(p_values: dict[str, np.ndarray], method: str) -> np.ndarray:
    """The fused statistic (larger = more suspicious) from per-signal p-values."""
    if method not in COMBINERS:
        raise ConfigError(f"combine must be one of {COMBINERS}, got {method!r}")
    if not p_values:
        raise ConfigError("no signals to combine")
    logs = np.log(np.stack([np.asarray(p, np.float64) for p in p_values.values()]))
    return -2.0 * logs.sum(axis=0) if method == "fisher" else -logs.min(axis=0)


def fold_ids(n: int, folds: int, seed: int = 0, groups: np.ndarray | None = None) -> np.ndarray:
    """Fold of each calibration sample.

    Without ``groups``: a seeded permutation, so folds do not follow the data's order. With ``groups`` (one
    label per sample): whole groups per fold, ``min(folds, number of groups)`` folds, groups assigned
    largest first to the fold holding the fewest samples (scikit-learn's ``GroupKFold`` rule).
    """
    if groups is None:
        folds = max(2, min(folds, n))
        return np.random.default_rng(seed).permutation(n) % folds
    labels, inverse, sizes = check_groups(groups, n)
    k = min(folds, labels.size)
    fold_of_group = np.empty(labels.size, np.int64)
    load = np.zeros(k, np.int64)
    for g in np.argsort(-sizes, kind="stable"):
        f = int(np.argmin(load))
        fold_of_group[g] = f
        load[f] += sizes[g]
    return fold_of_group[inverse]


def check_groups(groups: Any, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, group index of each sample, group sizes) of a per-sample group array; at least 2 groups."""
    g = np.asarray(groups)
    if g.ndim != 1 or g.size != n:
        raise ConfigError(f"groups must be a 1-D array with one label per calibration sample ({n}), "
                          f"got shape {g.shape}")
    if g.dtype.kind not in "iubUSO":
        raise ConfigError(f"groups must hold integer or string labels, got dtype {g.dtype}")
    labels, inverse, sizes = np.unique(g, return_inverse=True, return_counts=True)
    if labels.size < 2:
        raise ConfigError("groups must hold at least two distinct labels (one group cannot be held out)")
    return labels, inverse.ravel(), sizes


def robust_standardize(z: np.ndarray) -> np.ndarray:
    """Columns centred on their median and scaled by their interquartile range (1 when that is 0)."""
    z = np.asarray(z, dtype=np.float64)
    z = z.reshape(len(z), -1)
    q1, med, q3 = np.percentile(z, [25, 50, 75], axis=0)
    iqr = q3 - q1
    return (z - med) / np.where(iqr > 0, iqr, 1.0)


def kmeans(z: np.ndarray, k: int, seed: int = 0, iterations: int = KMEANS_ITERATIONS) -> np.ndarray:
    """Cluster label of each row of ``z``: seeded k-means++ start, then Lloyd iterations.

    Fewer than ``k`` clusters come back when ``z`` has fewer distinct rows (a centre is never duplicated).
    Beyond KMEANS_SAMPLE rows the centres are fitted on a seeded sample of that many rows and every row is
    then assigned to its nearest centre (a 50 000-sample calibration set: 0.3 s instead of 3 s per run).
    """
    z = np.asarray(z, dtype=np.float64)
    if len(z) > KMEANS_SAMPLE:
        sample = np.random.default_rng(seed).choice(len(z), KMEANS_SAMPLE, replace=False)
        fitted = z[sample]
        labels = kmeans(fitted, k, seed, iterations)
        return nearest(z, np.array([fitted[labels == j].mean(axis=0) for j in np.unique(labels)]))
    rng = np.random.default_rng(seed)
    centres = [z[rng.integers(len(z))]]
    d2 = ((z - centres[0]) ** 2).sum(axis=1)
    while len(centres) < k and d2.sum() > 0:
        centres.append(z[rng.choice(len(z), p=d2 / d2.sum())])
        d2 = np.minimum(d2, ((z - centres[-1]) ** 2).sum(axis=1))
    c = np.array(centres)
    labels = np.zeros(len(z), np.int64)
    for _ in range(iterations):
        labels = nearest(z, c)
        new = np.array([z[labels == j].mean(axis=0) if (labels == j).any() else c[j] for j in range(len(c))])
        if np.array_equal(new, c):
            break
        c = new
    return labels


def nearest(z: np.ndarray, centres: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Index of the nearest centre (squared Euclidean distance) of each row, in chunks of rows."""
    out = np.empty(len(z), np.int64)
    for start in range(0, len(z), chunk):
        part = z[start : start + chunk]
        distance = ((part[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        out[start : start + chunk] = np.argmin(distance, axis=1)
    return out


def content_foldings(
    n: int, folds: int, descriptor: np.ndarray, seed: int = 0, repeats: int = REPEATS
) -> tuple[list[np.ndarray], int]:
    """Fold ids of the default calibration (module docstring): ``repeats`` random foldings, then
    ``repeats`` foldings of whole content clusters; and the number of clusters asked for."""
    z = robust_standardize(descriptor)
    if len(z) != n or not np.all(np.isfinite(z)):
        raise ConfigError(f"the content descriptor needs one finite row per calibration sample ({n})")
    k = max(2, min(CLUSTERS_PER_FOLD * folds, n // MIN_TAIL))
    schemes = [fold_ids(n, folds, seed + r) for r in range(repeats)]
    for r in range(repeats):
        labels = kmeans(z, k, seed + r)
        if np.unique(labels).size >= 2:  # identical descriptors: no content folding, random ones only
            schemes.append(fold_ids(n, folds, groups=labels))
    return schemes, k


def pooled_threshold(stats: np.ndarray, n: int, fpr: float, confidence: float | None) -> float:
    """The threshold rule (:func:`rank_for` on ``n`` samples) applied as a share to statistics pooled over
    several foldings (``stats.size`` a multiple of ``n``; equal to :func:`threshold_with_confidence` when
    there is one folding)."""
    s = np.sort(np.asarray(stats, dtype=np.float64).ravel())
    threshold_at_fpr(s, fpr)  # checks for empty / non-finite statistics
    index = math.ceil(s.size * rank_for(n, fpr, confidence) / n) - 1
    return float(s[min(max(index, 0), s.size - 1)])


def cross_fit(
    values: dict[str, np.ndarray],
    tails: dict[str, str],
    method: str,
    folds: int = 5,
    seed: int = 0,
    ids: np.ndarray | None = None,
) -> np.ndarray:
    """Clean fused statistics, each computed with p-value models fitted on the other folds (``ids``: the fold
    of each sample; default :func:`fold_ids` with ``folds`` and ``seed``)."""
    return held_out_p_values(values, tails, folds, seed, ids, method)


def held_out_p_values(
    values: dict[str, np.ndarray],
    tails: dict[str, str],
    folds: int = 5,
    seed: int = 0,
    ids: np.ndarray | None = None,
    method: str | None = None,
) -> Any:
    """Per-signal p-values of each fold against models fitted on the other folds; with ``method``, their
    combined statistic instead."""
    n = len(next(iter(values.values())))
    ids = fold_ids(n, folds, seed) if ids is None else ids
    p = {name: np.empty(n, np.float64) for name in values}
    for k in np.unique(ids):
        held = ids == k
        for name, v in values.items():
            p[name][held] = SignalModel.fit(name, tails[name], v[~held]).p(v[held])
    return p if method is None else combine(p, method)


def pooled_p_values(
    values: dict[str, np.ndarray],
    tails: dict[str, str],
    schemes: list[np.ndarray],
    refold: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None,
) -> dict[str, np.ndarray]:
    """Held-out p-values of every folding in ``schemes`` (fold ids), concatenated in that order."""
    parts = []
    for ids in schemes:
        v = values if refold is None else {**values, **refold(ids)}
        parts.append(held_out_p_values(v, tails, ids=ids))
    return {name: np.concatenate([p[name] for p in parts]) for name in values}


def threshold_with_confidence(stats: np.ndarray, fpr: float, confidence: float | None) -> float:
    """The reference rule (``confidence=None``) or the smallest order statistic whose FPR on fresh
    exchangeable data exceeds ``fpr`` with probability at most ``1 - confidence`` (see :func:`rank_for`)."""
    s = np.sort(np.asarray(stats, dtype=np.float64).ravel())
    reference = threshold_at_fpr(s, fpr)  # also checks for empty / non-finite statistics
    if confidence is None:
        return reference
    return float(s[rank_for(s.size, fpr, confidence) - 1])


def rank_for(n: int, fpr: float, confidence: float | None) -> int:
    """1-based rank k of the threshold ``T_(k)`` among n sorted clean statistics (flags: ``T > T_(k)``).

    Reference rule: ``k = ceil(n (1 - fpr))``. With a confidence: ``F(T_(k))`` is Beta(k, n + 1 - k) for
    exchangeable data, so ``P(FPR > fpr) = P(Binomial(n, 1 - fpr) >= k)``; k is the smallest rank with that
    probability at most ``1 - confidence`` (n when none qualifies: too few samples for that confidence).
    """
    if confidence is None:
        return max(math.ceil(n * (1.0 - fpr)), 1)
    confidence = check_confidence(confidence)
    ok = np.flatnonzero(binomial_upper_tail(n, 1.0 - fpr) <= 1.0 - confidence)
    return int(ok[0]) + 1 if ok.size else n


def binomial_upper_tail(n: int, q: float) -> np.ndarray:
    """``P(Binomial(n, q) >= k)`` for k = 1..n (log-space pmf, summed from the top; no SciPy needed)."""
    j = np.arange(n + 1, dtype=np.float64)
    lgamma = np.vectorize(math.lgamma, otypes=[np.float64])
    log_pmf = lgamma(n + 1.0) - lgamma(j + 1.0) - lgamma(n - j + 1.0) + j * math.log(q)
    log_pmf += (n - j) * math.log1p(-q)
    pmf = np.exp(log_pmf - log_pmf.max())
    tail = np.cumsum(pmf[::-1])[::-1] / pmf.sum()
    return np.minimum(tail[1:], 1.0)


def check_confidence(confidence: Any) -> float:
    ok = isinstance(confidence, (int, float)) and not isinstance(confidence, bool)
    if not ok or not 0.0 < float(confidence) < 1.0:
        raise ConfigError(f"confidence must be None or a number in (0, 1), got {confidence!r}")
    return float(confidence)


# ---- the detector ------------------------------------------------------------------------------------------
@dataclass
class Cascade:
    """Screening: squeezed passes only for samples whose cheap statistic exceeds ``clear_threshold``."""

    screen: float  # target share of clean traffic forwarded to the squeezed passes
    clear_threshold: float
    threshold: float  # on the full statistic, for forwarded samples
    screened_clean: float  # measured share of (cross-fitted) clean calibration samples forwarded

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class FusedDetector:
    """Per-signal p-value models, the combination rule and the threshold(s), as stored in a profile."""

    signals: dict[str, SignalModel]
    combine: str
    threshold: float
    fpr: float
    n_calibration: int
    cheap: list[str] = field(default_factory=list)
    cheap_threshold: float = math.inf
    cascade: Cascade | None = None
    folds: int = 5
    confidence: float | None = None
    n_groups: int = 0  # 0: random folds; else the number of calibration groups (or content clusters)
    folding: str = "random"  # "random", "groups" (given labels) or "content" (the default, pooled)

    @classmethod
    def fit(
        cls,
        values: dict[str, np.ndarray],
        tails: dict[str, str],
        fpr: float,
        *,
        method: str = "fisher",
        cheap: list[str] | None = None,
        screen: float = 0.2,
        folds: int = 5,
        seed: int = 0,
        groups: np.ndarray | None = None,
        confidence: float | None = None,
        descriptor: np.ndarray | None = None,
        refold: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None,
    ) -> FusedDetector:
        """Fit on clean calibration values (signal name -> one value per sample).

        ``groups``: one label per sample; the cross-fitting folds are then whole groups (module docstring).
        Else ``descriptor`` (one content row per sample): random and content-cluster foldings pooled
        (:func:`content_foldings`); neither: random folds. ``refold(fold_ids)``: values of signals whose
        clean values are themselves cross-fitted (the activation score), recomputed for each folding.
        ``confidence``: the threshold rule (:func:`rank_for`).
        """
        fpr = check_fpr(fpr)
        if confidence is not None:
            confidence = check_confidence(confidence)
        if method not in COMBINERS:
            raise ConfigError(f"combine must be one of {COMBINERS}, got {method!r}")
        if not values:
            raise ConfigError("the fused detector needs at least one signal")
        n = {len(v) for v in values.values()}
        if len(n) != 1:
            raise ConfigError("every signal needs one calibration value per sample")
        n_cal = n.pop()
        if n_cal < 2 * folds:
            raise ConfigError(
                f"the fused detector needs at least {2 * folds} calibration samples, got {n_cal}"
            )
        if groups is not None:
            schemes, folding = [fold_ids(n_cal, folds, seed, groups)], "groups"
            n_groups = int(np.unique(np.asarray(groups)).size)
        elif descriptor is not None:
            schemes, n_groups = content_foldings(n_cal, folds, descriptor, seed)
            folding = "content"
        else:
            schemes, folding, n_groups = [fold_ids(n_cal, folds, seed)], "random", 0
        held_out = pooled_p_values(values, tails, schemes, refold)
        full_cv = combine(held_out, method)
        cheap = [c for c in (cheap or []) if c in values]
        models = {name: SignalModel.fit(name, tails[name], v) for name, v in values.items()}
        det = cls(
            signals=models,
            combine=method,
            threshold=pooled_threshold(full_cv, n_cal, fpr, confidence),
            fpr=fpr,
            n_calibration=n_cal,
            cheap=cheap,
            folds=folds,
            confidence=confidence,
            n_groups=n_groups,
            folding=folding,
        )
        if cheap and len(cheap) < len(values):
            cheap_cv = combine({name: held_out[name] for name in cheap}, method)
            det.cheap_threshold = pooled_threshold(cheap_cv, n_cal, fpr, confidence)
            det.cascade = fit_cascade(cheap_cv, full_cv, fpr, screen, confidence, n_samples=n_cal)
        return det

    def p_values(
        self, values: dict[str, np.ndarray], names: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        names = list(self.signals) if names is None else names
        missing = [s for s in names if s not in values]
        if missing:
            raise ConfigError(f"signals {missing} are missing from the scores")
        return {s: self.signals[s].p(values[s]) for s in names}

    def statistic(self, values: dict[str, np.ndarray], names: list[str] | None = None) -> np.ndarray:
        return combine(self.p_values(values, names), self.combine)

    def to_dict(self) -> dict[str, Any]:
        return {
            "combine": self.combine,
            "threshold": self.threshold,
            "fpr": self.fpr,
            "n_calibration": self.n_calibration,
            "cheap": list(self.cheap),
            "cheap_threshold": self.cheap_threshold,
            "folds": self.folds,
            "confidence": self.confidence,
            "n_groups": self.n_groups,
            "folding": self.folding,
            "cascade": None if self.cascade is None else self.cascade.to_dict(),
            "signals": [m.to_dict() for m in self.signals.values()],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FusedDetector:
        signals = {s["name"]: SignalModel.from_dict(s) for s in d["signals"]}
        cascade = None if d.get("cascade") is None else Cascade(**d["cascade"])
        return cls(
            signals=signals,
            combine=d["combine"],
            threshold=float(d["threshold"]),
            fpr=float(d["fpr"]),
            n_calibration=int(d["n_calibration"]),
            cheap=list(d.get("cheap", [])),
            cheap_threshold=float(d.get("cheap_threshold", math.inf)),
            cascade=cascade,
            folds=int(d.get("folds", 5)),
            confidence=None if d.get("confidence") is None else float(d["confidence"]),
            n_groups=int(d.get("n_groups", 0)),
            folding=str(d.get("folding", "groups" if d.get("n_groups", 0) else "random")),
        )


def fit_cascade(
    cheap_cv: np.ndarray,
    full_cv: np.ndarray,
    fpr: float,
    screen: float,
    confidence: float | None = None,
    n_samples: int | None = None,
) -> Cascade:
    """Clear threshold at the ``1 - screen`` quantile of the clean cheap statistic; the threshold on the full
    statistic so that (forwarded and above it) holds for at most as many clean calibration samples as the
    threshold rule (:func:`rank_for`) flags — the overall FPR of the cascade stays calibrated.
    ``n_samples``: calibration samples behind statistics pooled over several foldings (the rule's share of
    flags is that of ``n_samples``)."""
    if not 0.0 < screen <= 1.0:
        raise ConfigError(f"screen must be in (0, 1], got {screen!r}")
    n = len(cheap_cv)
    clear = threshold_at_fpr(cheap_cv, screen) if screen < 1.0 else -math.inf
    forwarded = np.sort(full_cv[cheap_cv > clear])
    m_cal = n if n_samples is None else n_samples
    rank = math.ceil(n * rank_for(m_cal, fpr, confidence) / m_cal)
    allowed = n - rank  # flags the threshold rule allows on n (pooled) statistics
    m = forwarded.size
    threshold = -math.inf if m <= allowed else float(forwarded[m - allowed - 1])
    return Cascade(
        screen=float(screen), clear_threshold=float(clear), threshold=threshold, screened_clean=float(m / n)
    )


__all__ = [
    "FusedDetector",
    "SignalModel",
    "UpperTail",
    "Cascade",
    "combine",
    "cross_fit",
    "fold_ids",
    "held_out_p_values",
    "threshold_with_confidence",
    "rank_for",
    "fit_gpd",
    "gpd_survival",
    "fit_cascade",
    "content_foldings",
    "pooled_p_values",
    "pooled_threshold",
    "kmeans",
    "robust_standardize",
    "COMBINERS",
    "FOLDINGS",
]
