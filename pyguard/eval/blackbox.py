"""Score-based black-box attacks that need only onnxruntime: Square Attack and SimBA.

They work on any ONNX classifier (or any callable returning scores), query it in batches (many images per
``run``), count the queries of every image exactly, and stop per image as soon as it is misclassified or
its query budget is spent. Randomness is per image: image ``i`` draws from
``np.random.default_rng([seed, sample_ids[i]])``, so splitting a data set into chunks (or across Ray
workers) gives the same adversarial examples as one big call.

* :func:`square_linf`, :func:`square_l2`: Square Attack (Andriushchenko, Croce, Flammarion, Hein, ECCV 2020),
  random search over square-shaped updates at the boundary of the L-inf / L2 ball, margin loss.
* :func:`simba`: Simple Black-box Attack (Guo, Gardner, You, Wilson, Weinberger, ICML 2019): add or subtract
  ``step`` times one orthonormal basis vector at a time (pixel or low-frequency-first DCT basis) when it
  lowers the true class's probability; optionally kept inside an L-inf ball.

Images are float arrays ``[N, C, H, W]`` (``layout="NCHW"``), ``[N, H, W, C]`` (``"NHWC"``) or ``[N, H, W]``
(``"NHW"``), with values in ``clip``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

Box = tuple[float, float]


# ---------------------------------------------------------------------------------------------- the model
class QueryModel:
    """Query-counted access to a classifier: ``log_probs(x)`` runs it on a batch of images.

    ``model`` is an ONNX model (path or bytes), an ``onnxruntime.InferenceSession`` (a guarded
    ``pyguard.InferenceSession`` works too: it is one), or a callable mapping a float32 batch to scores
    (logits or probabilities). ``batch_size`` caps the images per run; models with a fixed batch axis are
    run with exactly that many. :attr:`images` counts every image sent to the model.
    """

    def __init__(self, model, *, input_name: str | None = None, output_name: str | None = None,
                 batch_size: int = 256, sess_options=None) -> None:
        self.images = 0
        self.batch_size = int(batch_size)
        self._kind: str | None = None
        if callable(model) and not hasattr(model, "run"):
            self._fn, self.fixed_batch = model, None
            return
        session = model if hasattr(model, "run") else _session(model, sess_options)
        inputs = session.get_inputs()
        meta = next((i for i in inputs if i.name == input_name), None) if input_name else inputs[0]
        if meta is None:
            raise ValueError(f"unknown input name {input_name!r}; inputs: {[i.name for i in inputs]}")
        out = output_name or session.get_outputs()[0].name
        dim = meta.shape[0] if meta.shape else None
        self.fixed_batch = dim if isinstance(dim, int) and dim > 0 else None
        self._fn = lambda x: session.run([out], {meta.name: x})[0]

    def _run(self, x: np.ndarray) -> np.ndarray:
        step = self.fixed_batch or self.batch_size
        parts = []
        for start in range(0, len(x), step):
            chunk = np.ascontiguousarray(x[start:start + step], dtype=np.float32)
            valid = len(chunk)
            if self.fixed_batch and valid < step:  # pad a fixed-batch model's last run; not counted
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], step - valid, axis=0)])
            parts.append(np.asarray(self._fn(chunk), dtype=np.float64).reshape(len(chunk), -1)[:valid])
        return np.concatenate(parts)

    def log_probs(self, x: np.ndarray) -> np.ndarray:
        """Log-probabilities ``[N, classes]`` (softmax applied to logits); counts ``len(x)`` queries."""
        if len(x) == 0:
            return np.zeros((0, 0))
        scores = self._run(x)
        self.images += len(x)
        if self._kind is None:
            from ..calibrate import _output_kind

            self._kind = _output_kind(scores)
        if self._kind == "probabilities":
            return np.log(np.clip(scores, 1e-30, None))
        shifted = scores - scores.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _session(model, sess_options):
    import onnxruntime as ort

    if sess_options is None:
        sess_options = ort.SessionOptions()
        sess_options.intra_op_num_threads = 1
        sess_options.inter_op_num_threads = 1
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    return ort.InferenceSession(model, sess_options, providers=["CPUExecutionProvider"])


def as_query_model(model, **kwargs) -> QueryModel:
    return model if isinstance(model, QueryModel) else QueryModel(model, **kwargs)


# ----------------------------------------------------------------------------------------------- results
@dataclass
class BlackBoxResult:
    """Adversarial images, the queries each image used, and whether it ended misclassified."""

    name: str
    x_adv: np.ndarray
    queries: np.ndarray  # int64 per image, every model evaluation of that image
    success: np.ndarray  # bool per image: the model's top-1 differs from the label (per the attack's queries)
    params: dict = field(default_factory=dict)

    @property
    def success_rate(self) -> float:
        return float(self.success.mean()) if self.success.size else float("nan")


def margin(log_probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Score of the true class minus the best other class (negative = misclassified)."""
    rows = np.arange(len(y))
    true = log_probs[rows, y]
    others = log_probs.copy()
    others[rows, y] = -np.inf
    return true - others.max(axis=1)


def _misclassified(log_probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    return log_probs.argmax(axis=1) != y


def sample_rngs(seed: int, sample_ids: np.ndarray) -> list[np.random.Generator]:
    """One generator per image from (seed, global index): results do not depend on how data is split."""
    return [np.random.default_rng(np.random.SeedSequence([int(seed), int(i)])) for i in sample_ids]


# ------------------------------------------------------------------------------------------- validation
def _prepare(x, y, clip, layout, sample_ids, max_queries):
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise TypeError(f"x must be float32, got {x.dtype}")
    if layout not in ("NCHW", "NHWC", "NHW"):
        raise ValueError(f"layout must be NCHW, NHWC or NHW, got {layout!r}")
    if x.ndim != (3 if layout == "NHW" else 4) or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty {layout} batch, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("x contains NaN or Inf")
    lo, hi = clip
    if not lo < hi:
        raise ValueError(f"clip must be (lo, hi) with lo < hi, got {clip}")
    if x.min() < lo or x.max() > hi:
        raise ValueError(f"x has values outside clip {clip}")
    y = np.asarray(y)
    if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be integer labels of shape ({x.shape[0]},), got {y.dtype} {y.shape}")
    ids = np.arange(len(x)) if sample_ids is None else np.asarray(sample_ids, dtype=np.int64)
    if ids.shape != (len(x),):
        raise ValueError(f"sample_ids must have one entry per image, got shape {ids.shape}")
    if not isinstance(max_queries, (int, np.integer)) or max_queries < 1:
        raise ValueError(f"max_queries must be a positive integer, got {max_queries!r}")
    return _to_nchw(x, layout), y.astype(np.int64), ids


def _to_nchw(x: np.ndarray, layout: str) -> np.ndarray:
    if layout == "NHW":
        return np.ascontiguousarray(x[:, None])
    if layout == "NHWC":
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return np.ascontiguousarray(x)


def _from_nchw(x: np.ndarray, layout: str) -> np.ndarray:
    if layout == "NHW":
        return np.ascontiguousarray(x[:, 0])
    if layout == "NHWC":
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return x


class _Evaluator:
    """Queries images held in NCHW through the model's own layout and counts them per image."""

    def __init__(self, model: QueryModel, layout: str, n: int) -> None:
        self.model, self.layout = model, layout
        self.queries = np.zeros(n, dtype=np.int64)

    def __call__(self, x_nchw: np.ndarray, idx: np.ndarray) -> np.ndarray:
        self.queries[idx] += 1
        return self.model.log_probs(_from_nchw(x_nchw.astype(np.float32, copy=False), self.layout))


def _check_eps(eps: float) -> float:
    if not (isinstance(eps, (int, float)) and np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    return float(eps)


def _report(progress, done: np.ndarray, budget_left: np.ndarray) -> None:
    if progress is not None:
        progress(int((done | ~budget_left).sum()))


# ---------------------------------------------------------------------------------------- Square Attack
def p_schedule(p_init: float, it: int, n_iters: int) -> float:
    """Fraction of pixels changed at iteration ``it``: halved at the paper's fixed fractions of the budget."""
    t = int(it / n_iters * 10000)
    for bound, div in ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64),
                       (6000, 128), (8000, 256), (10000, 512)):
        if t <= bound:
            return p_init / div
    return p_init


def _square_search(model, x, y, *, name: str, init: Callable, candidates: Callable, side_rule: Callable,
                   max_queries: int, p_init: float, seed: int, sample_ids, layout: str, clip: Box,
                   progress: Callable | None, params: dict) -> BlackBoxResult:
    """The random search both Square Attacks share: start from ``init``, then per iteration draw one
    candidate per unfinished image (window side from ``p_schedule`` through ``side_rule``) and keep it when
    the margin drops. At most ``max_queries`` model evaluations per image, the initial one included."""
    model = as_query_model(model)
    xc, y, ids = _prepare(x, y, clip, layout, sample_ids, max_queries)
    n, _, h, w = xc.shape
    rngs = sample_rngs(seed, ids)
    ev = _Evaluator(model, layout, n)
    x_best = init(xc, rngs)
    lp = ev(x_best, np.arange(n))
    best_margin = margin(lp, y)
    done = _misclassified(lp, y)
    for it in range(max_queries - 1):
        active = np.flatnonzero(~done & (ev.queries < max_queries))
        if active.size == 0:
            break
        side = side_rule(p_schedule(p_init, it, max_queries), h, w)
        x_new = candidates(xc, x_best, active, side, rngs)
        lp = ev(x_new, active)
        m = margin(lp, y[active])
        better = m < best_margin[active]
        x_best[active[better]] = x_new[better]
        best_margin[active[better]] = m[better]
        done[active] |= better & _misclassified(lp, y[active])
        _report(progress, done, ev.queries < max_queries)
    return BlackBoxResult(name, _from_nchw(x_best, layout), ev.queries, done,
                          {**params, "max_queries": max_queries, "p_init": p_init, "seed": seed})


def square_linf(model, x: np.ndarray, y: np.ndarray, eps: float, *, max_queries: int = 1000,
                p_init: float = 0.05, seed: int = 0, sample_ids: Sequence[int] | None = None,
                layout: str = "NCHW", clip: Box = (0.0, 1.0), progress: Callable | None = None
                ) -> BlackBoxResult:
    """Square Attack in the L-inf ball of radius ``eps`` (untargeted, margin loss).

    Starts from vertical stripes of +-eps, then each iteration sets one random square window (side from
    ``p_schedule``) to a random +-eps per channel and keeps it when the margin drops. At most
    ``max_queries`` model evaluations per image, the initial one included.
    """
    eps = _check_eps(eps)
    lo, hi = clip

    def init(xc, rngs):
        c, w = xc.shape[1], xc.shape[3]
        stripes = np.stack([r.choice([-eps, eps], size=(c, 1, w)) for r in rngs])
        return np.clip(xc + stripes, lo, hi).astype(np.float32)

    def candidates(xc, x_best, active, side, rngs):
        x_new = x_best[active].copy()
        for k, i in enumerate(active):
            _square_linf_update(x_new[k], xc[i], x_best[i], side, eps, clip, rngs[i])
        return x_new

    def side_rule(p, h, w):
        return min(max(int(round(np.sqrt(p * h * w))), 1), max(min(h, w) - 1, 1))

    return _square_search(model, x, y, name="square_linf", init=init, candidates=candidates,
                          side_rule=side_rule, max_queries=max_queries, p_init=p_init, seed=seed,
                          sample_ids=sample_ids, layout=layout, clip=clip, progress=progress,
                          params={"eps": eps})


def _square_linf_update(x_new, x0, x_best, side, eps, clip, rng, tries: int = 64) -> None:
    """One candidate: a random window of x_new gets x0 +- eps per channel, resampled while it changes
    nothing (the reference implementation's rule), in place."""
    c, h, w = x0.shape
    lo, hi = clip
    r0 = int(rng.integers(0, max(h - side, 1)))
    c0 = int(rng.integers(0, max(w - side, 1)))
    win = (slice(None), slice(r0, r0 + side), slice(c0, c0 + side))
    for _ in range(tries):
        signs = rng.choice([-eps, eps], size=(c, 1, 1))
        cand = np.clip(x0[win] + signs, lo, hi)
        if np.any(np.abs(cand - x_best[win]) >= 1e-7):
            break
    x_new[win] = cand


def _pseudo_gaussian(rows: int, cols: int) -> np.ndarray:
    """Nested rectangles with weights 1/(k+1)^2 around the centre, unit L2 norm."""
    delta = np.zeros((rows, cols))
    r, c = rows // 2, cols // 2
    for k in range(max(r + 1, c + 1)):
        delta[max(r - k, 0):min(r + k + 1, rows), max(c - k, 0):min(c + k + 1, cols)] += 1.0 / (k + 1) ** 2
    return delta / np.sqrt((delta ** 2).sum())


def _meta_pseudo_gaussian(side: int, rng: np.random.Generator) -> np.ndarray:
    """Two opposite-sign pseudo-Gaussian halves, randomly transposed, unit L2 norm."""
    delta = np.zeros((side, side))
    half = side // 2
    if half:
        delta[:half] = _pseudo_gaussian(half, side)
    delta[half:] = -_pseudo_gaussian(side - half, side)
    delta /= np.sqrt((delta ** 2).sum())
    return delta.T.copy() if rng.random() > 0.5 else delta


def square_l2(model, x: np.ndarray, y: np.ndarray, eps: float, *, max_queries: int = 1000,
              p_init: float = 0.1, seed: int = 0, sample_ids: Sequence[int] | None = None,
              layout: str = "NCHW", clip: Box = (0.0, 1.0), progress: Callable | None = None
              ) -> BlackBoxResult:
    """Square Attack in the L2 ball of radius ``eps`` (untargeted, margin loss).

    Starts from a grid of pseudo-Gaussian bumps scaled to norm ``eps``; each iteration moves the mass of a
    second random window into a first one with a fresh pseudo-Gaussian bump, keeping the total norm at
    ``eps``, and keeps the candidate when the margin drops. At most ``max_queries`` evaluations per image.
    """
    eps = _check_eps(eps)
    lo, hi = clip

    def init(xc, rngs):
        _, c, h, w = xc.shape
        return np.stack([np.clip(xc[i] + _square_l2_init(c, h, w, eps, rngs[i]), lo, hi)
                         for i in range(len(xc))]).astype(np.float32)

    def candidates(xc, x_best, active, side, rngs):
        return np.stack([_square_l2_candidate(xc[i], x_best[i], side, eps, clip, rngs[i])
                         for i in active]).astype(np.float32)

    def side_rule(p, h, w):
        side = max(int(round(np.sqrt(p * h * w))), 3)
        return min(side + (1 - side % 2), max(min(h, w) - 1, 1))

    return _square_search(model, x, y, name="square_l2", init=init, candidates=candidates,
                          side_rule=side_rule, max_queries=max_queries, p_init=p_init, seed=seed,
                          sample_ids=sample_ids, layout=layout, clip=clip, progress=progress,
                          params={"eps": eps})


def _square_l2_init(c, h, w, eps, rng) -> np.ndarray:
    side = max(min(h, w) // 5, 1)
    delta = np.zeros((c, h, w))
    start = (h - side * 5) // 2 if h >= side * 5 else 0
    for r0 in range(start, h - side + 1, side):
        for c0 in range(start, w - side + 1, side):
            bump = _meta_pseudo_gaussian(side, rng)
            delta[:, r0:r0 + side, c0:c0 + side] += bump[None] * rng.choice([-1, 1], size=(c, 1, 1))
    return delta / max(np.sqrt((delta ** 2).sum()), 1e-12) * eps


def _square_l2_candidate(x0, x_best, side, eps, clip, rng) -> np.ndarray:
    c, h, w = x0.shape
    lo, hi = clip
    delta = (x_best - x0).astype(np.float64)
    r1, c1 = int(rng.integers(0, max(h - side, 1))), int(rng.integers(0, max(w - side, 1)))
    r2, c2 = int(rng.integers(0, max(h - side, 1))), int(rng.integers(0, max(w - side, 1)))
    win1 = (slice(None), slice(r1, r1 + side), slice(c1, c1 + side))
    win2 = (slice(None), slice(r2, r2 + side), slice(c2, c2 + side))
    mask = np.zeros((c, h, w), dtype=bool)
    mask[win1] = True
    mask[win2] = True
    norm_win1 = np.sqrt((delta[win1] ** 2).sum(axis=(1, 2), keepdims=True))
    norm_image = np.sqrt((delta ** 2).sum())
    norm_both = np.sqrt(((delta * mask) ** 2).sum(axis=(1, 2), keepdims=True))
    bump = _meta_pseudo_gaussian(side, rng)[None] * rng.choice([-1, 1], size=(c, 1, 1))
    update = bump + delta[win1] / (1e-10 + norm_win1)
    budget = np.sqrt(np.maximum(eps ** 2 - norm_image ** 2, 0.0) / c + norm_both ** 2)
    update = update / np.sqrt((update ** 2).sum(axis=(1, 2), keepdims=True)).clip(1e-12) * budget
    delta[win2] = 0.0
    delta[win1] = update
    delta = delta / max(np.sqrt((delta ** 2).sum()), 1e-12) * eps
    return np.clip(x0 + delta, lo, hi)


# ------------------------------------------------------------------------------------------------- SimBA
def dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix: row k is the k-th basis function (``scipy.fft.dct(norm="ortho")``)."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


def low_frequency_order(c: int, h: int, w: int, rng: np.random.Generator, initial: int | None = None,
                        stride: int | None = None) -> np.ndarray:
    """Indices (flattened c, u, v) of DCT coefficients, lowest frequencies first: a random order inside the
    ``initial`` x ``initial`` block, then inside each following L-shaped band of width ``stride``."""
    initial = initial or max(1, min(h, w) // 4)
    stride = stride or max(1, min(h, w) // 8)
    cc, uu, vv = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
    band = np.maximum(uu, vv)
    level = np.where(band < initial, 0, 1 + (band - initial) // stride).ravel()
    order = []
    flat = (cc * h * w + uu * w + vv).ravel()
    for lev in range(int(level.max()) + 1):
        members = flat[level == lev]
        order.append(members[rng.permutation(members.size)])
    return np.concatenate(order)


def simba(model, x: np.ndarray, y: np.ndarray, *, step: float = 0.2, basis: str = "pixel",
          linf: float | None = None, max_queries: int = 1000, seed: int = 0,
          sample_ids: Sequence[int] | None = None, layout: str = "NCHW", clip: Box = (0.0, 1.0),
          freq_initial: int | None = None, freq_stride: int | None = None,
          progress: Callable | None = None) -> BlackBoxResult:
    """SimBA (untargeted): for basis vectors q in a random order, try x - step*q, then x + step*q, keeping
    the first that lowers the true class's probability.

    ``basis="pixel"`` uses single coordinates in a random order; ``"dct"`` the orthonormal 2-D DCT basis
    per channel, low frequencies first. Candidates are clipped to ``clip`` and, with ``linf``, to the
    L-inf ball of that radius around x. Each basis vector costs one or two queries; the initial
    evaluation costs one. At most ``max_queries`` per image.
    """
    step = _check_eps(step)
    if basis not in ("pixel", "dct"):
        raise ValueError(f"basis must be 'pixel' or 'dct', got {basis!r}")
    if linf is not None:
        linf = _check_eps(linf)
    model = as_query_model(model)
    xc, y, ids = _prepare(x, y, clip, layout, sample_ids, max_queries)
    n, c, h, w = xc.shape
    rngs = sample_rngs(seed, ids)
    if basis == "pixel":
        orders = [r.permutation(c * h * w) for r in rngs]
        dh = dw = None
    else:
        orders = [low_frequency_order(c, h, w, r, freq_initial, freq_stride) for r in rngs]
        dh, dw = dct_matrix(h), dct_matrix(w)
    ev = _Evaluator(model, layout, n)
    x_cur = xc.astype(np.float32).copy()
    everyone = np.arange(n)
    lp = ev(x_cur, everyone)
    p_true = lp[everyone, y]
    done = _misclassified(lp, y)
    lo, hi = clip
    bound_lo = np.maximum(xc - linf, lo) if linf is not None else np.full_like(xc, lo)
    bound_hi = np.minimum(xc + linf, hi) if linf is not None else np.full_like(xc, hi)
    features = c * h * w
    for it in range(features):
        active = np.flatnonzero(~done & (ev.queries < max_queries))
        if active.size == 0:
            break
        q = np.stack([_basis_vector(orders[i][it], c, h, w, dh, dw) for i in active])
        for sign in (-1.0, 1.0):
            if active.size == 0:
                break
            cand = np.clip(x_cur[active] + sign * step * q, bound_lo[active], bound_hi[active])
            cand = cand.astype(np.float32)
            lp = ev(cand, active)
            p_new = lp[np.arange(active.size), y[active]]
            better = p_new < p_true[active]
            x_cur[active[better]] = cand[better]
            p_true[active[better]] = p_new[better]
            done[active[better]] |= _misclassified(lp[better], y[active[better]])
            # The + direction is tried where - did not help and the budget allows one more query.
            keep = ~better & (ev.queries[active] < max_queries)
            active, q = active[keep], q[keep]
        _report(progress, done, ev.queries < max_queries)
    return BlackBoxResult(f"simba_{basis}", _from_nchw(x_cur, layout), ev.queries, done,
                          {"step": step, "basis": basis, "linf": linf, "max_queries": max_queries,
                           "seed": seed})


def _basis_vector(index: int, c: int, h: int, w: int, dh, dw) -> np.ndarray:
    v = np.zeros((c, h, w))
    ch, rest = divmod(int(index), h * w)
    u, k = divmod(rest, w)
    if dh is None:
        v[ch, u, k] = 1.0
    else:
        v[ch] = np.outer(dh[u], dw[k])
    return v


__all__ = ["QueryModel", "BlackBoxResult", "square_linf", "square_l2", "simba", "margin", "sample_rngs",
           "p_schedule", "dct_matrix", "low_frequency_order"]
