"""White-box evasion attacks on a PyTorch classifier, on numpy batches, on the CPU.

Every attack takes ``model`` (a ``torch.nn.Module`` returning logits; it is put in eval mode and its
parameters are never modified), ``x`` (a float32 numpy batch, first axis = samples) and ``y`` (integer
labels), and returns float32 numpy adversarial examples of the same shape, inside the box ``clip``.
FGSM and PGD also stay inside their ``eps`` ball; Carlini-Wagner, DeepFool and JSMA look for small
perturbations without a fixed budget. Randomness (PGD's random start, JSMA's target choice) comes from
``seed``, so the same call gives the same result.

References: Goodfellow et al. 2015 (FGSM); Kurakin et al. 2017 (BIM); Madry et al. 2018 (PGD);
Carlini & Wagner 2017 (CW-L2); Moosavi-Dezfooli et al. 2016 (DeepFool); Papernot et al. 2016 (JSMA).

PyTorch is imported lazily inside the functions: it is an optional dependency of pyguard.
"""

from __future__ import annotations

import numpy as np

Box = tuple[float, float]


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("pyguard.eval attacks need PyTorch: pip install torch") from exc
    return torch


def _check_inputs(x: np.ndarray, y: np.ndarray | None, clip: Box) -> tuple[np.ndarray, np.ndarray | None]:
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise TypeError(f"x must be float32, got {x.dtype}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch (first axis = samples), got shape {x.shape}")
    lo, hi = clip
    if not lo < hi:
        raise ValueError(f"clip must be (lo, hi) with lo < hi, got {clip}")
    if not np.isfinite(x).all():
        raise ValueError("x contains NaN or Inf")
    if y is not None:
        y = np.asarray(y)
        if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"y must be integer labels of shape ({x.shape[0]},), got {y.dtype} {y.shape}")
        y = y.astype(np.int64)
    return x, y


def _check_positive(**params: float) -> None:
    for name, value in params.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")


def _as_tensor(a: np.ndarray):
    return _torch().from_numpy(np.ascontiguousarray(a))


def _to_numpy(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32, copy=False)


def _reduce_dims(t) -> tuple[int, ...]:
    return tuple(range(1, t.dim()))


def _loss_gradient(model, x, y):
    """Gradient of the summed cross-entropy with respect to the input (per-sample, batch-independent)."""
    torch = _torch()
    x = x.detach().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(x), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def _project_linf(x_adv, x, eps: float, clip: Box):
    torch = _torch()
    x_adv = torch.max(torch.min(x_adv, x + eps), x - eps)
    return x_adv.clamp(*clip)


def _per_sample_norm(t, shape_like):
    view = (-1,) + (1,) * (shape_like.dim() - 1)
    return t.flatten(1).norm(dim=1).view(view)


def _project_l2(x_adv, x, eps: float, clip: Box):
    delta = x_adv - x
    norms = _per_sample_norm(delta, delta)
    factor = (eps / norms.clamp_min(1e-12)).clamp(max=1.0)
    return (x + delta * factor).clamp(*clip)


def predict(model, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Top-1 classes of ``model`` on a numpy batch."""
    torch = _torch()
    model.eval()
    preds = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            preds.append(model(_as_tensor(x[start:start + batch_size])).argmax(1).numpy())
    return np.concatenate(preds).astype(np.int64)


def fgsm(model, x: np.ndarray, y: np.ndarray, eps: float, *, clip: Box = (0.0, 1.0)) -> np.ndarray:
    """Fast Gradient Sign Method (L-inf): one step of size ``eps`` along the sign of the loss gradient."""
    x, y = _check_inputs(x, y, clip)
    _check_positive(eps=eps)
    model.eval()
    xt, yt = _as_tensor(x), _as_tensor(y)
    x_adv = xt + eps * _loss_gradient(model, xt, yt).sign()
    return _to_numpy(_project_linf(x_adv, xt, eps, clip))


def pgd_linf(model, x: np.ndarray, y: np.ndarray, eps: float, *, step: float | None = None, steps: int = 10,
             random_start: bool = True, seed: int = 0, clip: Box = (0.0, 1.0)) -> np.ndarray:
    """Projected gradient descent in the L-inf ball (Madry et al.); BIM when ``random_start=False``.

    ``step`` defaults to ``eps / 5``. The random start is uniform in the eps ball (seeded).
    """
    x, y = _check_inputs(x, y, clip)
    step = eps / 5 if step is None else step
    _check_positive(eps=eps, step=step, steps=steps)
    model.eval()
    xt, yt = _as_tensor(x), _as_tensor(y)
    x_adv = xt.clone()
    if random_start:
        noise = np.random.default_rng(seed).uniform(-eps, eps, size=x.shape).astype(np.float32)
        x_adv = (xt + _as_tensor(noise)).clamp(*clip)
    for _ in range(int(steps)):
        x_adv = x_adv + step * _loss_gradient(model, x_adv, yt).sign()
        x_adv = _project_linf(x_adv, xt, eps, clip)
    return _to_numpy(x_adv)


def bim(model, x: np.ndarray, y: np.ndarray, eps: float, *, step: float | None = None, steps: int = 10,
        clip: Box = (0.0, 1.0)) -> np.ndarray:
    """Basic Iterative Method (Kurakin et al.): L-inf PGD from the clean input (no random start)."""
    return pgd_linf(model, x, y, eps, step=step, steps=steps, random_start=False, clip=clip)


def _uniform_in_l2_ball(rng: np.random.Generator, shape: tuple[int, ...], eps: float) -> np.ndarray:
    """Samples uniformly distributed inside an L2 ball of radius ``eps`` (one ball per sample)."""
    n, dim = shape[0], int(np.prod(shape[1:]))
    direction = rng.standard_normal((n, dim))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    radius = eps * rng.uniform(size=(n, 1)) ** (1.0 / dim)
    return (direction * radius).reshape(shape).astype(np.float32)


def pgd_l2(model, x: np.ndarray, y: np.ndarray, eps: float, *, step: float | None = None, steps: int = 10,
           random_start: bool = True, seed: int = 0, clip: Box = (0.0, 1.0)) -> np.ndarray:
    """Projected gradient descent in the L2 ball of radius ``eps``: normalized gradient steps.

    ``step`` defaults to ``eps / 5``. The random start is uniform in the L2 ball (seeded).
    """
    x, y = _check_inputs(x, y, clip)
    step = eps / 5 if step is None else step
    _check_positive(eps=eps, step=step, steps=steps)
    model.eval()
    xt, yt = _as_tensor(x), _as_tensor(y)
    x_adv = xt.clone()
    if random_start:
        noise = _uniform_in_l2_ball(np.random.default_rng(seed), x.shape, eps)
        x_adv = (xt + _as_tensor(noise)).clamp(*clip)
    for _ in range(int(steps)):
        grad = _loss_gradient(model, x_adv, yt)
        grad = grad / _per_sample_norm(grad, grad).clamp_min(1e-12)
        x_adv = _project_l2(x_adv + step * grad, xt, eps, clip)
    return _to_numpy(x_adv)


def _margin(logits, y, confidence: float):
    """CW's f6 loss for an untargeted attack: max(Z_y - max_{i != y} Z_i, -kappa)."""
    torch = _torch()
    true_logit = logits.gather(1, y[:, None])[:, 0]
    others = logits.masked_fill(torch.nn.functional.one_hot(y, logits.shape[1]).bool(), -float("inf"))
    return (true_logit - others.max(1).values + confidence).clamp_min(0.0)


def _cw_succeeded(logits, y, confidence: float):
    """Misclassified with at least ``confidence`` of margin (the reference implementation's rule)."""
    torch = _torch()
    raised = logits + confidence * torch.nn.functional.one_hot(y, logits.shape[1])
    return raised.argmax(1) != y


def carlini_wagner_l2(model, x: np.ndarray, y: np.ndarray, *, confidence: float = 0.0,
                      initial_const: float = 1.0, binary_search_steps: int = 6, max_iter: int = 200,
                      learning_rate: float = 1e-2, abort_early: bool = True,
                      clip: Box = (0.0, 1.0)) -> np.ndarray:
    """Carlini-Wagner L2 (untargeted): minimize ||x' - x||^2 + c * f(x') over a tanh-boxed variable with Adam.

    The constant c is found per sample by binary search (x10 while no success is found). Samples for which
    no adversarial example is found are returned unchanged.
    """
    torch = _torch()
    x, y = _check_inputs(x, y, clip)
    _check_positive(initial_const=initial_const, binary_search_steps=binary_search_steps, max_iter=max_iter,
                    learning_rate=learning_rate)
    if confidence < 0:
        raise ValueError(f"confidence must be >= 0, got {confidence}")
    model.eval()
    lo, hi = clip
    xt, yt = _as_tensor(x), _as_tensor(y)
    n = x.shape[0]
    # Box constraint by change of variables: x' = lo + (hi - lo) * (tanh(w) + 1) / 2.
    w0 = torch.atanh(((xt - lo) / (hi - lo) * 2 - 1) * 0.999999)
    const = torch.full((n,), float(initial_const))
    lower, upper = torch.zeros(n), torch.full((n,), 1e10)
    best_l2 = torch.full((n,), float("inf"))
    best_adv = xt.clone()
    for _ in range(int(binary_search_steps)):
        found = _cw_optimize(model, xt, yt, w0, const, confidence, int(max_iter), learning_rate, abort_early,
                             clip, best_l2, best_adv)
        upper = torch.where(found, torch.minimum(upper, const), upper)
        lower = torch.where(found, lower, torch.maximum(lower, const))
        const = torch.where(upper < 1e9, (lower + upper) / 2, const * 10)
    return _to_numpy(best_adv.clamp(*clip))


def _cw_optimize(model, xt, yt, w0, const, confidence, max_iter, learning_rate, abort_early, clip,
                 best_l2, best_adv):
    """One inner CW optimization at fixed constants; updates best_l2/best_adv in place.

    Returns which samples found an adversarial example during this run.
    """
    torch = _torch()
    lo, hi = clip
    w = w0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([w], lr=learning_rate)
    found = torch.zeros(xt.shape[0], dtype=torch.bool)
    previous = float("inf")
    check_every = max(1, max_iter // 10)
    for it in range(max_iter):
        x_adv = lo + (hi - lo) * (torch.tanh(w) + 1) / 2
        logits = model(x_adv)
        l2 = (x_adv - xt).flatten(1).pow(2).sum(1)
        loss = (l2 + const * _margin(logits, yt, confidence)).sum()
        with torch.no_grad():
            success = _cw_succeeded(logits, yt, confidence)
            improved = success & (l2 < best_l2)
            best_l2[improved] = l2[improved]
            best_adv[improved] = x_adv[improved]
            found |= success
        if abort_early and it % check_every == 0:
            if loss.item() > previous * 0.9999:
                break
            previous = loss.item()
        # autograd.grad rather than backward(): the model's parameters must not accumulate gradients.
        (w.grad,) = torch.autograd.grad(loss, w)
        optimizer.step()
    return found


def _jacobian_rows(model, x_adv, classes: int):
    """Logits and the gradient of every logit with respect to the input: shape [classes, N, ...]."""
    torch = _torch()
    x_adv = x_adv.detach().requires_grad_(True)
    logits = model(x_adv)
    grads = [torch.autograd.grad(logits[:, k].sum(), x_adv, retain_graph=k < classes - 1)[0]
             for k in range(classes)]
    return logits.detach(), torch.stack(grads)


def deepfool(model, x: np.ndarray, y: np.ndarray, *, overshoot: float = 0.02, max_iter: int = 50,
             clip: Box = (0.0, 1.0)) -> np.ndarray:
    """DeepFool (L2): repeatedly step to the nearest linearized decision boundary until the label changes.

    Samples the model already misclassifies are returned unchanged.
    """
    torch = _torch()
    x, y = _check_inputs(x, y, clip)
    _check_positive(max_iter=max_iter)
    if overshoot < 0:
        raise ValueError(f"overshoot must be >= 0, got {overshoot}")
    model.eval()
    xt, yt = _as_tensor(x), _as_tensor(y)
    r_total = torch.zeros_like(xt)
    x_adv = xt.clone()
    active = torch.ones(x.shape[0], dtype=torch.bool)
    classes = _num_classes(model, xt)
    for _ in range(int(max_iter) + 1):
        idx = active.nonzero()[:, 0]
        if idx.numel() == 0:
            break
        logits, jac = _jacobian_rows(model, x_adv[idx], classes)
        still = logits.argmax(1) == yt[idx]
        active[idx[~still]] = False
        idx, logits, jac = idx[still], logits[still], jac[:, still]
        if idx.numel() == 0:
            break
        r_total[idx] += _deepfool_step(logits, jac, yt[idx])
        x_adv[idx] = (xt[idx] + (1 + overshoot) * r_total[idx]).clamp(*clip)
    return _to_numpy(x_adv)


def _num_classes(model, xt) -> int:
    torch = _torch()
    with torch.no_grad():
        return int(model(xt[:1]).shape[1])


def _deepfool_step(logits, jac, y):
    """The minimal step to the closest linearized boundary, per sample (jac: [classes, N, ...])."""
    torch = _torch()
    n = logits.shape[0]
    rows = torch.arange(n)
    grad_true = jac[y, rows]                                 # [N, ...]
    w = jac - grad_true[None]                                # [K, N, ...]
    f = logits - logits[rows, y][:, None]                    # [N, K]
    w_norm = w.flatten(2).norm(dim=2).T                      # [N, K]
    dist = f.abs() / (w_norm + 1e-8)
    dist[rows, y] = float("inf")
    nearest = dist.argmin(1)
    w_l = w[nearest, rows]
    scale = (f[rows, nearest].abs() + 1e-4) / (w_norm[rows, nearest] ** 2 + 1e-12)
    return scale.view((-1,) + (1,) * (w_l.dim() - 1)) * w_l


def jsma(model, x: np.ndarray, y: np.ndarray, *, target: np.ndarray | None = None, theta: float = 1.0,
         gamma: float = 0.1, seed: int = 0, chunk: int = 32, clip: Box = (0.0, 1.0)) -> np.ndarray:
    """Jacobian-based Saliency Map Attack (targeted, pairs of features, Papernot et al.).

    Each iteration picks the pair of features (p, q) maximizing -alpha*beta under alpha > 0, beta < 0 (for
    theta > 0), where alpha is the summed gradient of the target logit and beta that of the other logits
    over the pair, and moves both by ``theta`` (relative to the box width, so 1.0 saturates them), for at
    most ``gamma`` times the number of features changed. Without ``target``, a random target class
    different from ``y`` is drawn per sample (seeded). Uses the logits' gradients.
    """
    x, y = _check_inputs(x, y, clip)
    if not 0 < gamma <= 1:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    if theta == 0:
        raise ValueError("theta must be non-zero")
    model.eval()
    classes = _num_classes(model, _as_tensor(x))
    if target is None:
        rng = np.random.default_rng(seed)
        target = (y + rng.integers(1, classes, size=y.shape)) % classes
    target = np.asarray(target, dtype=np.int64)
    if target.shape != y.shape or (target < 0).any() or (target >= classes).any():
        raise ValueError(f"target must be {y.shape[0]} class indices in [0, {classes})")
    out = np.empty_like(x)
    for start in range(0, x.shape[0], chunk):
        sl = slice(start, start + chunk)
        out[sl] = _jsma_chunk(model, _as_tensor(x[sl]), _as_tensor(target[sl]), theta, gamma, clip)
    return out


def _jsma_chunk(model, xt, target, theta: float, gamma: float, clip: Box):
    torch = _torch()
    lo, hi = clip
    n = xt.shape[0]
    flat = xt.flatten(1).clone()
    features = flat.shape[1]
    shape = xt.shape
    increase = theta > 0
    # Features that can still move in the attack's direction.
    domain = flat < hi if increase else flat > lo
    max_iters = int(np.floor(features * gamma / 2))
    active = torch.ones(n, dtype=torch.bool)
    rows = torch.arange(n)
    for _ in range(max_iters):
        alpha, beta, pred = _jsma_gradients(model, flat.view(shape), target)
        active &= (pred != target) & (domain.sum(1) >= 2)
        if not active.any():
            break
        p, q, valid = _best_pair(alpha, beta, domain, increase)
        active &= valid
        idx = rows[active]
        for feat in (p[active], q[active]):
            flat[idx, feat] = (flat[idx, feat] + theta * (hi - lo)).clamp(lo, hi)
            domain[idx, feat] = False
    return _to_numpy(flat.view(shape))


def _jsma_gradients(model, x_adv, target):
    torch = _torch()
    x_adv = x_adv.detach().requires_grad_(True)
    logits = model(x_adv)
    rows = torch.arange(x_adv.shape[0])
    target_logit = logits[rows, target].sum()
    (grad_target,) = torch.autograd.grad(target_logit, x_adv, retain_graph=True)
    (grad_all,) = torch.autograd.grad(logits.sum(), x_adv)
    alpha = grad_target.flatten(1)
    return alpha, grad_all.flatten(1) - alpha, logits.argmax(1).detach()


def _best_pair(alpha, beta, domain, increase: bool):
    """The saliency-maximizing feature pair per sample, and whether any admissible pair exists.

    A pair (p, q) is admissible when both features are in the search domain, p != q, and the summed
    gradients have the required signs (alpha > 0 and beta < 0 when increasing features, the reverse when
    decreasing); its score is -alpha * beta. Works in place on [N, F, F] tensors to limit memory traffic.
    """
    torch = _torch()
    sign = 1.0 if increase else -1.0
    # Features outside the domain get a huge alpha of the wrong sign, so every pair using them is rejected.
    alpha = torch.where(domain, alpha * sign, torch.tensor(-1e30))
    a = alpha[:, :, None] + alpha[:, None, :]
    b = beta[:, :, None] + beta[:, None, :]
    score = torch.mul(a, b).neg_()  # -alpha * beta (alpha negated when decreasing: flip back below)
    if not increase:
        score.neg_()
    score.masked_fill_(a <= 0, -1.0)
    score.masked_fill_((b >= 0) if increase else (b <= 0), -1.0)
    score.diagonal(dim1=1, dim2=2).fill_(-1.0)
    features = alpha.shape[1]
    best_score, best = score.flatten(1).max(1)
    return best // features, best % features, best_score > 0
