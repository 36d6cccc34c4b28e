"""Adaptive white-box attack on the guard (He, Wei, Chen, Carlini, Song, WOOT 2017, on Feature Squeezing).

A detector is only evaluated honestly against an attacker who knows it. This attack runs L-inf PGD on a
loss that asks for misclassification *and* a feature-squeezing score below the profile's threshold:

    loss = m(x') + sum_s m(s(x')) + c * max(score(x') - tau * threshold, 0) + a * ranges(x'),
    m(v) = max(Z_y(v) - max_{j != y} Z_j(v), -kappa)

``score`` is the detector's own (max over the profile's squeezers of the L1 distance between the model's
probability vectors on x' and on squeeze(x')). The squeezers (bit depth, median, ...) are not
differentiable, so the forward pass applies the real native squeezer and the backward pass treats it as
the identity: BPDA / straight-through (Athalye, Carlini, Wagner 2018). ``ranges`` penalizes activations
outside profiled per-tensor bounds (Ranger-style activation checks), normalized by each tensor's range,
when bounds are given or the profile carries them.

Per image the attack returns the iterate that is misclassified, below the threshold and (with bounds)
inside the activation ranges with the lowest score, else the misclassified iterate with the lowest score,
else the iterate with the lowest score. The non-adaptive baseline with the same budget is
:func:`pyguard.eval.whitebox.pgd_linf` with the same ``eps``, ``step``, ``steps`` (see :func:`non_adaptive`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..squeezers import parse_all
from .whitebox import _as_tensor, _check_inputs, _check_positive, _project_linf, _to_numpy, _torch, pgd_linf


def _squeeze_function():
    torch = _torch()

    class StraightThroughSqueeze(torch.autograd.Function):
        """Forward: the native squeezer on a copy of the batch. Backward: the identity (BPDA)."""

        @staticmethod
        def forward(ctx, x, apply):
            return torch.from_numpy(apply(x.detach().cpu().numpy()))

        @staticmethod
        def backward(ctx, grad):
            return grad, None

    return StraightThroughSqueeze


class SqueezeDetector:
    """The profile's feature-squeezing score as a torch function with straight-through gradients.

    Squeezing happens in pixel space exactly as in :class:`pyguard.InferenceSession`: float inputs with a
    normalization or with a range other than [0, 1] (for squeezers needing [0, 1]) are mapped to [0, 1]
    pixels first and back afterwards.
    """

    def __init__(self, profile) -> None:
        spec = profile.input
        if spec.dtype != "float32":
            raise ValueError("the adaptive attack needs a float32 model input")
        self.squeezers = parse_all(profile.squeezers)
        if not self.squeezers:
            raise ValueError("the profile has no squeezers: there is no squeezing detector to adapt to")
        self.layout = spec.layout
        self.lo, self.hi = spec.range
        self.threshold = float(profile.threshold)
        self.logits = profile.output_kind == "logits"
        self.output_name = profile.output_name
        needs_unit = any(s.needs_unit_range for s in self.squeezers)
        self.affine = None
        if spec.normalized or (needs_unit and (self.lo, self.hi) != (0.0, 1.0)):
            mean = np.asarray(spec.mean if spec.normalized else [0.0], dtype=np.float64)
            std = np.asarray(spec.std if spec.normalized else [1.0], dtype=np.float64)
            span = self.hi - self.lo
            shape = (1, -1, 1, 1) if self.layout == "NCHW" else (-1,)
            self.affine = ((std / span).reshape(shape), ((mean - self.lo) / span).reshape(shape))
        self._fn = _squeeze_function()

    def _numpy_squeeze(self, squeezer):
        def apply(x: np.ndarray) -> np.ndarray:
            x = np.ascontiguousarray(x, dtype=np.float32)
            out = np.empty_like(x)
            if self.affine is None:
                return squeezer.apply(x, out, layout=self.layout, lo=self.lo, hi=self.hi)
            a, b = self.affine
            unit = np.ascontiguousarray(np.clip(x * a + b, 0.0, 1.0), dtype=np.float32)
            squeezer.apply(unit, out, layout=self.layout, lo=0.0, hi=1.0)
            return ((out - b) / a).astype(np.float32)

        return apply

    def probabilities(self, outputs):
        torch = _torch()
        return torch.softmax(outputs, dim=1) if self.logits else outputs

    def scores(self, model, x, outputs=None):
        """Per-sample detector scores, differentiable in x (straight-through the squeezers)."""
        return self.scores_and_squeezed(model, x, outputs)[0]

    def scores_and_squeezed(self, model, x, outputs=None):
        """Detector scores and the model's outputs on every squeezed copy of x."""
        outputs = model(x) if outputs is None else outputs
        p = self.probabilities(outputs.flatten(1))
        per_squeezer, squeezed = [], []
        for squeezer in self.squeezers:
            xs = self._fn.apply(x, self._numpy_squeeze(squeezer))
            squeezed.append(model(xs))
            per_squeezer.append((p - self.probabilities(squeezed[-1].flatten(1))).abs().sum(dim=1))
        return _torch().stack(per_squeezer).amax(dim=0), squeezed


def activation_bounds(profile) -> dict[str, tuple[float, float]]:
    """Per-tensor (lo, hi) activation bounds carried by a profile (``profile.activations``), else {}."""
    acts = getattr(profile, "activations", None)
    if acts is None:
        return {}
    return {name: (float(lo), float(hi)) for name, (lo, hi) in acts.bounds().items()}


def range_penalty(acts: dict, bounds: dict[str, tuple[float, float]]):
    """Per sample, the sum over tensors of how far the tensor's max (min) lies above hi (below lo), relative
    to hi - lo: what a max-based range check (Ranger) looks at."""
    torch = _torch()
    total = None
    for name, (lo, hi) in bounds.items():
        t = acts[name].flatten(1)
        scale = max(hi - lo, 1e-6)
        excess = (torch.relu(t.amax(dim=1) - hi) + torch.relu(lo - t.amin(dim=1))) / scale
        total = excess if total is None else total + excess
    return total


def range_violations(acts: dict, bounds: dict[str, tuple[float, float]]) -> dict[str, np.ndarray]:
    """Per tensor, per sample: True when any value leaves [lo, hi]."""
    return {name: _to_numpy(((acts[name] > hi) | (acts[name] < lo)).flatten(1).any(dim=1).float()) > 0
            for name, (lo, hi) in bounds.items()}


def _margin(outputs, y, kappa: float):
    torch = _torch()
    z = outputs.flatten(1)
    true = z.gather(1, y[:, None])[:, 0]
    others = z.masked_fill(torch.nn.functional.one_hot(y, z.shape[1]).bool(), -float("inf"))
    return (true - others.amax(dim=1)).clamp_min(-kappa)


def adaptive_pgd(model, x: np.ndarray, y: np.ndarray, profile, *, eps: float = 0.3, step: float | None = None,
                 steps: int = 20, c: float = 3.0, tau: float = 0.7, kappa: float = 20.0,
                 bounds: dict[str, tuple[float, float]] | None = None, range_weight: float = 10.0,
                 clip: tuple[float, float] | None = None, progress: Callable | None = None) -> np.ndarray:
    """L-inf PGD (no random start) against the model *and* the profile's squeezing detector.

    ``model``: a torch module returning the profile's output (e.g. ``pyguard.eval.to_torch(onnx_model)``).
    ``c`` weighs the detector term, pushed below ``tau * threshold`` for a margin of safety; ``kappa`` caps
    the misclassification margin so the step budget goes to the detector once the label has flipped.
    ``bounds`` (default: the profile's activation bounds, if any) adds the activation-range penalty, which
    needs a module with ``run(x, keep=names)`` such as :func:`pyguard.eval.to_torch` returns.
    """
    torch = _torch()
    detector = SqueezeDetector(profile)
    clip = tuple(profile.input.range) if clip is None else clip
    x, y = _check_inputs(x, y, clip)
    step = eps / 5 if step is None else step
    _check_positive(eps=eps, step=step, steps=steps, c=c)
    bounds = activation_bounds(profile) if bounds is None else bounds
    if bounds and not hasattr(model, "run"):
        raise ValueError("activation bounds need a model with run(x, keep=names); use pyguard.eval.to_torch")
    model.eval()
    xt, yt = _as_tensor(x), _as_tensor(y)
    x_adv = xt.clone()
    best = xt.clone()
    best_rank = torch.full((len(x),), 3.0)  # 0 evading, 1 misclassified, 2 anything; plus the score
    for it in range(int(steps) + 1):
        x_adv = x_adv.detach().requires_grad_(True)
        if bounds:
            env = model.run(x_adv, keep=list(bounds))
            outputs = env[model.output_name]
        else:
            env, outputs = None, model(x_adv)
        score, squeezed = detector.scores_and_squeezed(model, x_adv, outputs)
        with torch.no_grad():
            wrong = outputs.flatten(1).argmax(1) != yt
            evading = wrong & (score <= detector.threshold)
            if bounds:
                evading &= range_penalty(env, bounds) <= 0
            rank = torch.where(evading, 0.0, torch.where(wrong, 1.0, 2.0)) + score.clamp(0, 2) / 4
            improved = rank < best_rank
            best[improved] = x_adv.detach()[improved]
            best_rank[improved] = rank[improved]
        if progress is not None:
            progress(it)
        if it == steps:
            break
        # Misclassify x' and every squeezed copy (through BPDA), and keep the score under the threshold.
        loss = _margin(outputs, yt, kappa) + sum(_margin(o, yt, kappa) for o in squeezed)
        loss = loss + c * torch.relu(score - tau * detector.threshold)
        if bounds:
            loss = loss + range_weight * range_penalty(env, bounds)
        (grad,) = torch.autograd.grad(loss.sum(), x_adv)
        x_adv = _project_linf(x_adv.detach() - step * grad.sign(), xt, eps, clip)
    return _to_numpy(best)


def non_adaptive(model, x: np.ndarray, y: np.ndarray, *, eps: float = 0.3, step: float | None = None,
                 steps: int = 20, clip: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """The baseline with the same budget: L-inf PGD on the model alone (BIM: no random start)."""
    return pgd_linf(model, x, y, eps, step=step, steps=steps, random_start=False, clip=clip)


__all__ = ["adaptive_pgd", "non_adaptive", "SqueezeDetector", "activation_bounds", "range_penalty",
           "range_violations"]
