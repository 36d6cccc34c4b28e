"""Adaptive white-box attack on the fused detector: an attacker who knows every signal.

L-inf PGD (no random start) on a loss that asks for misclassification and for every signal of the fused
detector to look like clean data:

    loss = m(x') + sum_s m(s(x')) + c * sum_k penalty_k(x') + a * ranges(x')

with ``m`` the capped logit margin of :mod:`pyguard.eval.adaptive`, the squeezed copies through BPDA
(straight-through), ``ranges`` the activation-range penalty of the same module, and per fused signal ``k``
a hinge pushing its value inside the central 10%-90% band of its clean calibration values (read from the
profile's p-value models), in units of that band's width: the differentiable input statistics (hf_energy,
residual_xchannel, chroma_hf, hf_ratio, tv) re-implemented in torch, the logit margin, and each squeezer's
distance. ``off_grid`` and ``saturation`` are not differentiable; the attacker handles the first by
quantizing every iterate to the 8-bit grid when ``quantize`` is set (the photo set's pipeline).

Each iterate is judged by the real guarded session (``pyguard.InferenceSession``), and per image the
attack returns the misclassified, unflagged iterate if any, else the misclassified one with the lowest
fused statistic, else the last.
"""

from __future__ import annotations

import numpy as np

from .adaptive import SqueezeDetector, _margin, range_penalty
from .whitebox import _as_tensor, _check_inputs, _check_positive, _project_linf, _to_numpy, _torch


def _band(profile, name: str) -> tuple[float, float]:
    ref = profile.fused.signals[name].upper.reference
    return float(np.quantile(ref, 0.1)), float(np.quantile(ref, 0.9))


def torch_signals(x, names):
    """Differentiable versions of pyguard.signals' input statistics (NCHW in [0, 1])."""
    torch = _torch()
    out = {}
    dv = x[:, :, 1:, :] - x[:, :, :-1, :]
    r = dv[:, :, :, 1:] - dv[:, :, :, :-1]
    per = float(r[0].numel())
    energy = (r * r).flatten(1).sum(1)
    eps = 1e-12
    if "hf_energy" in names:
        out["hf_energy"] = torch.log(energy / per + eps)
    if x.shape[1] >= 2 and ({"residual_xchannel", "chroma_hf"} & set(names)):
        d = r - r.mean(dim=1, keepdim=True)
        chroma = (d * d).flatten(1).sum(1)
        out["residual_xchannel"] = chroma / (energy + eps)
        out["chroma_hf"] = torch.log(chroma / per + eps)
    if "hf_ratio" in names:
        h, w = x.shape[2] // 2 * 2, x.shape[3] // 2 * 2
        c = torch.nn.functional.avg_pool2d(x[:, :, :h, :w], 2)
        cv = c[:, :, 1:, :] - c[:, :, :-1, :]
        r2 = cv[:, :, :, 1:] - cv[:, :, :, :-1]
        e2 = (r2 * r2).flatten(1).sum(1) / float(r2[0].numel())
        out["hf_ratio"] = torch.log(energy / per + eps) - torch.log(e2 + eps)
    if "tv" in names:
        dh = x[:, :, :, 1:] - x[:, :, :, :-1]
        out["tv"] = torch.log(dv.abs().flatten(1).mean(1) + dh.abs().flatten(1).mean(1) + eps)
    return {k: v for k, v in out.items() if k in names}


def _hinge(value, band, two_sided: bool):
    torch = _torch()
    lo, hi = band
    width = max(hi - lo, 1e-6)
    upper = torch.relu(value - hi) / width
    return upper + torch.relu(lo - value) / width if two_sided else upper


def adaptive_fused_pgd(
    model,
    x: np.ndarray,
    y: np.ndarray,
    profile,
    session,
    *,
    eps: float,
    step: float | None = None,
    steps: int = 30,
    c: float = 1.0,
    kappa: float = 10.0,
    range_weight: float = 10.0,
    quantize: bool = False,
) -> np.ndarray:
    """Adaptive PGD against ``profile``'s fused detector; ``session`` is a guarded InferenceSession with the
    profile (it judges the iterates). ``model``: :func:`pyguard.eval.to_torch` of the ONNX model."""
    torch = _torch()
    if getattr(profile, "fused", None) is None:
        raise ValueError("the profile has no fused detector")
    names = list(profile.fused.signals)
    detector = SqueezeDetector(profile) if profile.squeezers else None
    clip = tuple(profile.input.range)
    x, y = _check_inputs(x, y, clip)
    step = eps / 8 if step is None else step
    _check_positive(eps=eps, step=step, steps=steps)
    acts = profile.activations
    bounds = (
        {}
        if acts is None or acts.monitor is None
        else {t: (acts.tensors[t].lo, acts.tensors[t].hi) for t in acts.monitor.tensors}
    )
    from ..signals import tail_of

    bands = {n: _band(profile, n) for n in names}
    xt, yt = _as_tensor(x), _as_tensor(y)
    x_adv, best = xt.clone(), xt.clone()
    best_rank = np.full(len(x), np.inf)
    input_name = profile.input.name
    for it in range(int(steps) + 1):
        if quantize:
            x_adv = torch.round(x_adv * 255.0) / 255.0
        cand = _to_numpy(x_adv)
        outs, report = session.run_with_report([profile.output_name], {input_name: cand})
        wrong = np.asarray(outs[0]).argmax(1) != y
        rank = np.where(wrong & ~report.flagged, 0.0, np.where(wrong, 1.0, 2.0)) + 1e-3 * np.minimum(
            report.scores["fused"], 1e3
        )
        better = rank < best_rank
        best[torch.from_numpy(better)] = x_adv[torch.from_numpy(better)]
        best_rank[better] = rank[better]
        if it == steps:
            break
        x_adv = x_adv.detach().requires_grad_(True)
        if bounds:
            env = model.run(x_adv, keep=list(bounds))
            outputs = env[model.output_name]
        else:
            env, outputs = None, model(x_adv)
        loss = _margin(outputs, yt, kappa)
        penalty = 0.0
        if detector is not None:
            p = detector.probabilities(outputs.flatten(1))
            for sq in detector.squeezers:
                key = f"squeeze[{sq.spec}]"
                squeezed = model(detector._fn.apply(x_adv, detector._numpy_squeeze(sq)))
                loss = loss + _margin(squeezed, yt, kappa)
                if key in bands:
                    dist = (p - detector.probabilities(squeezed.flatten(1))).abs().sum(dim=1)
                    penalty = penalty + _hinge(dist, bands[key], False)
        if "margin" in bands:
            z = outputs.flatten(1)
            top2 = z.topk(2, dim=1).values
            penalty = penalty + _hinge(top2[:, 0] - top2[:, 1], bands["margin"], True)
        for k, v in torch_signals(x_adv, names).items():
            penalty = penalty + _hinge(v, bands[k], tail_of(k) == "two-sided")
        loss = loss + c * penalty
        if bounds:
            loss = loss + range_weight * range_penalty(env, bounds)
        (grad,) = torch.autograd.grad(loss.sum(), x_adv)
        x_adv = _project_linf(x_adv.detach() - step * grad.sign(), xt, eps, clip)
    out = _to_numpy(best)
    return (np.rint(out * 255.0) / 255.0).astype(np.float32) if quantize else out


__all__ = ["adaptive_fused_pgd", "torch_signals"]
