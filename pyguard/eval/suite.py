"""The security evaluation: attack a model, run the guard on clean and adversarial data, measure.

:func:`run_evaluation` attacks the correctly classified samples of a labelled data set with black-box
attacks (onnxruntime only), and, when PyTorch is installed, white-box and adaptive attacks on a torch copy
of the ONNX model; every adversarial set then goes through the guarded session exactly as in
``pyguard demo`` (:func:`pyguard.demo.evaluate`), and through a purifying session for robust accuracy.
Attack generation parallelizes over samples (:mod:`pyguard.eval.parallel`): in-process or on Ray, with the
same seeded results.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._progress import Progress
from ..metrics import attack_summary, binomial_interval, perturbation_norms

BLACKBOX = ("square_linf", "square_l2", "simba_pixel", "simba_dct")
WHITEBOX = ("fgsm", "pgd", "pgd_l2", "cw_l2", "adaptive")
# Carlini-Wagner is left out by default: minutes per few hundred images on one CPU thread.
DEFAULT_ATTACKS = BLACKBOX + ("fgsm", "pgd", "pgd_l2", "adaptive")


@dataclass
class EvalSettings:
    """Attack budgets. ``eps`` is the L-inf radius in the model's input units (0.3 = MNIST's usual)."""

    eps: float = 0.3
    l2_eps: float = 3.0
    max_queries: int = 1000
    simba_pixel_step: float | None = None  # default: eps (each pixel moves at most once, to the ball's edge)
    simba_dct_step: float = 1.0
    pgd_steps: int = 20
    adaptive_eps: tuple[float, ...] = (0.1, 0.3)
    seed: int = 0
    chunk_size: int = 64
    backend: str = "local"
    num_cpus: int | None = None
    limit: int | None = None  # attack at most this many (correctly classified) samples

    def blackbox_params(self, name: str) -> dict[str, Any]:
        if name == "square_linf":
            return {"eps": self.eps, "max_queries": self.max_queries}
        if name == "square_l2":
            return {"eps": self.l2_eps, "max_queries": self.max_queries}
        if name == "simba_pixel":
            return {"basis": "pixel", "step": self.simba_pixel_step or self.eps, "linf": self.eps,
                    "max_queries": self.max_queries}
        if name == "simba_dct":
            return {"basis": "dct", "step": self.simba_dct_step, "linf": self.eps,
                    "max_queries": self.max_queries}
        raise ValueError(f"unknown black-box attack {name!r}")


@dataclass
class AttackSet:
    """One set of adversarial examples and what the guard made of it."""

    name: str
    family: str  # "blackbox", "whitebox", "adaptive", "baseline" (non-adaptive, same budget), "bundled"
    x: np.ndarray
    y: np.ndarray
    x_source: np.ndarray
    params: dict = field(default_factory=dict)
    queries: np.ndarray | None = None
    seconds: float = 0.0
    # filled by the evaluation
    summary: dict = field(default_factory=dict)
    scores: np.ndarray | None = None
    success: np.ndarray | None = None
    flagged: np.ndarray | None = None
    robust: np.ndarray | None = None  # purified prediction == label
    l2: np.ndarray | None = None
    linf: np.ndarray | None = None


@dataclass
class EvalResult:
    model: str
    profile: Any
    settings: EvalSettings
    clean: dict
    attacks: list[AttackSet]
    overall: dict
    comparisons: list[dict]
    activations: dict | None = None
    faults: list[dict] | None = None
    notes: list[str] = field(default_factory=list)

    def attack(self, name: str) -> AttackSet:
        return next(a for a in self.attacks if a.name == name)


# ------------------------------------------------------------------------------------ chunk workers
_CACHE: dict[tuple, Any] = {}


def _cached(key: tuple, build):
    if key not in _CACHE:
        if len(_CACHE) > 8:
            _CACHE.clear()
        _CACHE[key] = build()
    return _CACHE[key]


def _model_key(model_bytes: bytes) -> str:
    return hashlib.sha256(model_bytes).hexdigest()


def blackbox_chunk(start: int, stop: int, *, model: bytes, attack: str, params: dict, x: np.ndarray,
                   y: np.ndarray, ids: np.ndarray, seed: int, input_name: str | None = None,
                   output_name: str | None = None, layout: str = "NCHW", clip=(0.0, 1.0)):
    """One chunk of a black-box attack (module level: Ray pickles it by reference)."""
    from . import blackbox as bb

    def build():
        return bb.QueryModel(model, input_name=input_name, output_name=output_name)

    qm = _cached(("ort", _model_key(model), input_name, output_name), build)
    params = dict(params)
    fn = bb.simba if attack.startswith("simba") else getattr(bb, attack)
    r = fn(qm, x[start:stop], y[start:stop], seed=seed, sample_ids=ids[start:stop], layout=layout,
           clip=clip, **params)
    return r.x_adv, r.queries, r.success


def whitebox_chunk(start: int, stop: int, *, model: bytes, attack: str, params: dict, x: np.ndarray,
                   y: np.ndarray, profile: dict | None = None, bounds: dict | None = None,
                   input_name: str | None = None, output_name: str | None = None, clip=(0.0, 1.0)):
    """One chunk of a white-box attack on the torch copy of the ONNX model."""
    import torch

    from . import whitebox as wb
    from .adaptive import adaptive_pgd
    from .onnx_torch import to_torch

    torch.set_num_threads(1)
    module = _cached(("torch", _model_key(model), input_name, output_name),
                     lambda: to_torch(model, input_name=input_name, output_name=output_name))
    xs, ys = x[start:stop], y[start:stop]
    if attack == "fgsm":
        return wb.fgsm(module, xs, ys, params["eps"], clip=clip)
    if attack == "pgd":
        return wb.pgd_linf(module, xs, ys, params["eps"], step=params["step"], steps=params["steps"],
                           random_start=False, clip=clip)
    if attack == "pgd_l2":
        return wb.pgd_l2(module, xs, ys, params["eps"], step=params["step"], steps=params["steps"],
                         random_start=False, clip=clip)
    if attack == "cw_l2":
        return wb.carlini_wagner_l2(module, xs, ys, clip=clip, **params)
    if attack == "adaptive":
        from ..profile import GuardProfile

        prof = GuardProfile.from_dict(profile)
        return adaptive_pgd(module, xs, ys, prof, eps=params["eps"], step=params["step"],
                            steps=params["steps"], clip=clip, bounds=bounds)
    raise ValueError(f"unknown white-box attack {attack!r}")


# ------------------------------------------------------------------------------------------- running
def _model_bytes(model) -> bytes:
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    with open(model, "rb") as f:
        return f.read()


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _generate(fn, n: int, shared: dict, settings: EvalSettings, label: str):
    from .parallel import map_chunks

    with Progress(label, n) as progress:
        start = time.perf_counter()
        parts = map_chunks(fn, n, chunk_size=settings.chunk_size, backend=settings.backend, shared=shared,
                           progress=progress, num_cpus=settings.num_cpus)
        return parts, time.perf_counter() - start


def generate_attacks(model_bytes: bytes, profile, x: np.ndarray, y: np.ndarray, ids: np.ndarray,
                     attacks, settings: EvalSettings, notes: list[str], bounds: dict | None = None
                     ) -> list[AttackSet]:
    """Adversarial examples of every requested attack for the (correctly classified) samples x.

    ``bounds``: activation ranges the adaptive attack must respect (those the evaluation checks)."""
    spec = profile.input
    clip = tuple(spec.range)
    common = {"model": model_bytes, "input_name": spec.name, "output_name": profile.output_name}
    sets = []
    for name in attacks:
        if name in BLACKBOX:
            params = settings.blackbox_params(name)
            shared = {**common, "attack": name, "params": params, "x": x, "y": y, "ids": ids,
                      "seed": settings.seed, "layout": spec.layout, "clip": clip}
            parts, secs = _generate(blackbox_chunk, len(x), shared, settings, name)
            sets.append(AttackSet(name, "blackbox", np.concatenate([p[0] for p in parts]), y, x,
                                  {**params, "seed": settings.seed}, np.concatenate([p[1] for p in parts]),
                                  secs))
            continue
        if name not in WHITEBOX:
            raise ValueError(f"unknown attack {name!r}; known: {', '.join(DEFAULT_ATTACKS)}")
        if not _torch_available():
            notes.append(f"{name}: skipped (white-box attacks need PyTorch: pip install torch)")
            continue
        if spec.layout != "NCHW" or spec.normalized:
            notes.append(f"{name}: skipped (white-box attacks support unnormalized NCHW float inputs)")
            continue
        for label, family, attack, params in _whitebox_plan(name, settings):
            shared = {**common, "attack": attack, "params": params, "x": x, "y": y, "clip": clip}
            if attack == "adaptive":
                shared.update(profile=profile.to_dict(), bounds=bounds or {})
            parts, secs = _generate(whitebox_chunk, len(x), shared, settings, label)
            sets.append(AttackSet(label, family, np.concatenate(parts), y, x, params, None, secs))
    return sets


def _whitebox_plan(name: str, s: EvalSettings):
    if name == "fgsm":
        return [(f"fgsm eps={s.eps:g}", "whitebox", "fgsm", {"eps": s.eps})]
    if name == "pgd":
        return [(f"pgd eps={s.eps:g}", "whitebox", "pgd",
                 {"eps": s.eps, "step": s.eps / 5, "steps": s.pgd_steps})]
    if name == "pgd_l2":
        return [(f"pgd_l2 eps={s.l2_eps:g}", "whitebox", "pgd_l2",
                 {"eps": s.l2_eps, "step": s.l2_eps / 5, "steps": s.pgd_steps})]
    if name == "cw_l2":
        return [("cw_l2 conf=0", "whitebox", "cw_l2",
                 {"confidence": 0.0, "binary_search_steps": 5, "max_iter": 100, "learning_rate": 0.05})]
    plan = []
    for eps in s.adaptive_eps:
        params = {"eps": eps, "step": eps / 5, "steps": s.pgd_steps}
        plan.append((f"non-adaptive pgd eps={eps:g}", "baseline", "pgd", params))
        plan.append((f"adaptive eps={eps:g}", "adaptive", "adaptive", params))
    return plan


def run_evaluation(model, profile, x: np.ndarray, y: np.ndarray, *, attacks=DEFAULT_ATTACKS,
                   settings: EvalSettings | None = None, bundled: dict | None = None,
                   activation_bounds: dict | None = None, faults=None) -> EvalResult:
    """Attack ``model`` on the labelled data ``x``, ``y`` and measure the guard of ``profile``.

    ``bundled``: precomputed adversarial sets ``{name: {"x", "y", "x_source"}}`` evaluated alongside (the
    demo's own attacks). ``activation_bounds`` (default: the profile's, if it has activation ranges)
    adds per-layer range violations; ``faults`` a fault campaign result (SDC bars).
    """
    from .. import demo
    from ..session import InferenceSession

    settings = settings or EvalSettings()
    model_bytes = _model_bytes(model)
    notes: list[str] = []
    sess = InferenceSession(model_bytes, demo._options(), profile=profile)
    purifier = InferenceSession(model_bytes, demo._options(), profile=profile, action="purify")
    y = np.asarray(y).astype(np.int64)
    with Progress("clean predictions", len(x)) as progress:
        clean_pred, _, _ = demo.guarded_pass(sess, np.ascontiguousarray(x), progress=progress)
    ids = np.flatnonzero(clean_pred == y)
    if settings.limit is not None:
        ids = ids[:settings.limit]
    bounds = activation_bounds if activation_bounds is not None else _profile_bounds(profile)
    if len(ids) == 0:
        notes.append("no sample is classified correctly: nothing to attack")
        attacks = ()
    sets = generate_attacks(model_bytes, profile, np.ascontiguousarray(x[ids]), y[ids], ids, attacks,
                            settings, notes, bounds)
    for name, b in (bundled or {}).items():
        sets.append(AttackSet(name, "bundled", b["x"], b["y"], b["x_source"]))

    demo_sets = {s.name: {"x": np.ascontiguousarray(s.x), "y": s.y} for s in sets}
    clean, _ = demo.evaluate(sess, x, y, demo_sets, "guarded inference")
    for s in sets:  # the demo's verdicts, then distortion and purified accuracy
        verdict = demo_sets[s.name]
        s.scores, s.success, s.flagged = verdict["scores"], verdict["success"], verdict["flagged"]
        _summarize(s, purifier, clean["scores"], demo.detector_threshold(profile))
    clean_purify, _, _ = demo.guarded_pass(purifier, np.ascontiguousarray(x))
    lo, hi = binomial_interval(clean["flagged"], clean["n"])
    clean_out = {"n": clean["n"], "accuracy": clean["accuracy"], "flagged": clean["flagged"],
                 "fpr": clean["flagged"] / clean["n"], "fpr_interval_99": [lo, hi],
                 "accuracy_purify": float(np.mean(clean_purify == y)), "attacked": int(len(ids)),
                 "scores": clean["scores"]}
    overall = _overall(sets, clean["scores"], demo.detector_threshold(profile))
    acts = activation_report(model_bytes, profile, x, sets, bounds) if bounds else None
    return EvalResult(model=str(model) if not isinstance(model, bytes) else "<bytes>", profile=profile,
                      settings=settings, clean=clean_out, attacks=sets, overall=overall,
                      comparisons=_comparisons(sets), activations=acts, faults=fault_rows(faults),
                      notes=notes)


def _summarize(s: AttackSet, purifier, clean_scores, threshold) -> None:
    from .. import demo

    with Progress(f"purifying {s.name}", len(s.x)) as progress:
        pure, _, _ = demo.guarded_pass(purifier, np.ascontiguousarray(s.x), progress=progress)
    s.robust = pure == s.y
    s.l2, s.linf = perturbation_norms(s.x, s.x_source)
    s.summary = attack_summary(success=s.success, scores=s.scores, flagged=s.flagged,
                               clean_scores=clean_scores, threshold=threshold, l2=s.l2, linf=s.linf,
                               robust=s.robust, queries=s.queries)
    s.summary["seconds"] = round(s.seconds, 2)


def _overall(sets, clean_scores, threshold) -> dict:
    if not sets:
        return {}
    cat = {k: np.concatenate([getattr(s, k) for s in sets])
           for k in ("success", "scores", "flagged", "l2", "linf", "robust")}
    return attack_summary(clean_scores=clean_scores, threshold=threshold, **cat)


def _comparisons(sets) -> list[dict]:
    """Adaptive vs non-adaptive at the same budget: detection on successful examples and evasion."""
    rows = []
    for s in sets:
        if s.family != "adaptive":
            continue
        base = next((b for b in sets if b.family == "baseline" and b.params == s.params), None)
        if base is None:
            continue
        rows.append({"budget": s.params, "adaptive": s.name, "baseline": base.name,
                     "detection_adaptive": s.summary["detection_rate"],
                     "detection_baseline": base.summary["detection_rate"],
                     "evasion_adaptive": s.summary["evasion_rate"],
                     "evasion_baseline": base.summary["evasion_rate"],
                     "success_adaptive": s.summary["success_rate"],
                     "success_baseline": base.summary["success_rate"],
                     "lowers_detection": bool(s.summary["detection_rate"] < base.summary["detection_rate"])})
    return rows


# ------------------------------------------------------------------------------- activation ranges
def _profile_bounds(profile) -> dict:
    from .adaptive import activation_bounds

    return activation_bounds(profile)


def activation_values(model_bytes: bytes, input_name: str, tensors, x: np.ndarray, batch: int = 256):
    """Per-sample max and min of each named intermediate tensor, read through onnxruntime."""
    import onnx
    import onnxruntime as ort

    proto = onnx.load_model_from_string(model_bytes)
    present = {o.name for o in proto.graph.output}
    for name in tensors:
        if name not in present:
            proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = list(tensors)
    hi = {n: [] for n in names}
    lo = {n: [] for n in names}
    for start in range(0, len(x), batch):
        outs = sess.run(names, {input_name: np.ascontiguousarray(x[start:start + batch])})
        for n, v in zip(names, outs):
            flat = v.reshape(len(v), -1)
            hi[n].append(flat.max(axis=1))
            lo[n].append(flat.min(axis=1))
    return {n: (np.concatenate(lo[n]), np.concatenate(hi[n])) for n in names}


def activation_report(model_bytes: bytes, profile, x, sets, bounds: dict) -> dict:
    """Fraction of clean and of successful adversarial samples leaving each layer's profiled range."""
    name = profile.input.name
    rows = {"clean": _violation_rates(activation_values(model_bytes, name, bounds, x), bounds)}
    for s in sets:
        ok = s.x[s.success] if s.success is not None else s.x
        if len(ok):
            rows[s.name] = _violation_rates(activation_values(model_bytes, name, bounds, ok), bounds)
    return {"tensors": list(bounds), "bounds": {k: list(v) for k, v in bounds.items()}, "rates": rows}


def _violation_rates(values: dict, bounds: dict) -> dict[str, float]:
    return {n: float(np.mean((values[n][1] > bounds[n][1]) | (values[n][0] < bounds[n][0])))
            for n in bounds}


# ----------------------------------------------------------------------------------------- faults
def fault_rows(faults) -> list[dict] | None:
    """SDC rates per fault kind from a fault campaign (pyguard.faults.CampaignResult or its JSON form)."""
    if faults is None:
        return None
    kinds = faults.get("kinds") if isinstance(faults, dict) else getattr(faults, "kinds", None)
    if kinds is None:
        raise ValueError("a fault campaign needs 'kinds' (pyguard.faults.CampaignResult or its JSON form)")
    rows = []
    for k in kinds:
        get = (lambda key, k=k: k[key]) if isinstance(k, dict) else (lambda key, k=k: getattr(k, key))
        row = {"kind": get("kind")}
        for key in ("sdc_plain", "sdc_restricted", "sdc_flagged"):
            v = get(key)
            row[key] = float(v.value if hasattr(v, "value") else v)
        rows.append(row)
    return rows


__all__ = ["EvalSettings", "EvalResult", "AttackSet", "run_evaluation", "generate_attacks", "BLACKBOX",
           "WHITEBOX", "DEFAULT_ATTACKS", "blackbox_chunk", "whitebox_chunk", "activation_values",
           "fault_rows"]
