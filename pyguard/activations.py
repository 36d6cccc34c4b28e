"""Activation ranges: choose the intermediate tensors to watch, profile them on clean data, check cheaply.

Hardware faults, corrupted weights and many out-of-distribution inputs push intermediate activations far
outside the ranges seen on clean data (Ranger, Chen et al., DSN 2021). This module

* chooses the tensors to monitor: by default the outputs of activation operators, or tensors the user names;
* profiles them on clean data, per tensor and per channel: min/max and quantiles of per-sample maxima
  (presets ``"ranger"`` = observed maximum, ``"p99.9"``, ``"p90"`` as in ReAct);
* picks what to check at inference under an explicit overhead budget, and builds the checking graph.

Why in-graph reductions. onnxruntime only hands out intermediate tensors as graph outputs, and exposing one
makes its NCHWc layout optimizer reorder the tensor back to NCHW and copy it out (+51-58% when exposing all
35 Clip outputs of a MobileNetV2-shaped model). Instead each monitored tensor gets a ``GlobalMaxPool`` (one
value per sample and channel), which the NCHWc optimizer keeps in the blocked layout, so it only reads the
tensor once; the small per-channel results are flattened and concatenated into ONE extra graph output. The
tensors to reduce are chosen deepest first (faults upstream propagate into deep activations), until the
estimated cost (:func:`estimate_overhead`, relative to the plain latency measured at calibration) reaches
the budget. Measurements: ``bench/bench_activations.py`` and ``tools/activation_overhead.py``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .errors import ConfigError

ModelLike = Union[str, bytes, "os.PathLike[str]", onnx.ModelProto]

#: Operators whose outputs are monitored by default.
ACTIVATION_OPS = frozenset({
    "Relu", "Clip", "LeakyRelu", "PRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Elu", "Selu",
    "Celu", "Gelu", "Softplus", "Mish", "ThresholdedRelu",
})

#: Lower bounds the operator guarantees (a fault-free output is never below them).
_NATURAL_LOWER = {"Relu": 0.0, "Sigmoid": 0.0, "HardSigmoid": 0.0, "Softplus": 0.0, "ThresholdedRelu": 0.0,
                  "HardSwish": -0.375}

#: Quantile of per-sample maxima used as the upper bound.
PRESETS = {"ranger": 1.0, "p99.9": 0.999, "p90": 0.90}

MONITOR_OUTPUT = "pyguard_activation_max"

# Cost model of the in-graph reductions (see estimate_overhead), relative to the measured plain latency.
_SECONDS_PER_ELEMENT = 0.3e-9
_SECONDS_PER_BRANCH = 4e-6


class ActivationError(ConfigError):
    """Bad tensor names, models without activations, or unusable tensors (a ValueError and a GuardError)."""


def load_model(model: ModelLike) -> onnx.ModelProto:
    """Accept a path, serialized bytes or a ModelProto (returned as is, never modified)."""
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray)):
        return onnx.load_model_from_string(bytes(model))
    if isinstance(model, (str, os.PathLike)):
        return onnx.load(os.fspath(model))
    raise TypeError(f"model must be a path, bytes or onnx.ModelProto, got {type(model).__name__}")


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in model.graph.node for out in node.output if out}


def activation_tensors(model: ModelLike, names: Sequence[str] | None = None) -> list[str]:
    """Tensors to profile: the outputs of activation operators, or ``names`` checked against the graph.

    Returned in graph (topological) order. Raises :class:`ActivationError` naming unknown tensors, or when
    the model has no activation operators and no names were given.
    """
    model = load_model(model)
    order = [out for node in model.graph.node for out in node.output if out]
    if names is not None:
        if isinstance(names, str):
            names = [names]
        known = set(order)
        unknown = [n for n in names if n not in known]
        if unknown:
            graph_inputs = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer}
            hint = (" (graph inputs and initializers cannot be monitored)"
                    if set(unknown) & graph_inputs else "")
            raise ActivationError(f"unknown tensor name(s) {unknown}: not produced by any node of the model"
                                  f"{hint}; e.g. {order[:5]}")
        wanted = set(names)
        return [n for n in order if n in wanted]
    found = [node.output[0] for node in model.graph.node
             if node.domain in ("", "ai.onnx") and node.op_type in ACTIVATION_OPS]
    if not found:
        ops = sorted({node.op_type for node in model.graph.node})
        raise ActivationError(f"the model has no activation operators ({', '.join(sorted(ACTIVATION_OPS))}); "
                              f"its operators are {ops}. Name the tensors to monitor instead.")
    return found


@dataclass
class TensorRange:
    """Profiled range of one tensor (float32 values, stored as Python floats: exact)."""

    name: str
    op_type: str
    rank: int
    channels: int
    elements: int  # per sample
    lo: float  # bound from the preset (the operator's own lower bound when it has one)
    hi: float
    observed_lo: float
    observed_hi: float
    channel_lo: list[float] = field(default_factory=list)
    channel_hi: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorRange:
        return cls(**d)


@dataclass
class ActivationMonitor:
    """What is checked at inference: per-channel maxima of ``tensors`` concatenated into one output."""

    tensors: list[str]
    channel_hi: np.ndarray  # float32, upper bound per monitored channel, tolerance included
    score_hi: np.ndarray  # float32, bound without tolerance (scores are relative to it)
    score_scale: np.ndarray  # float32, per-channel scale of the score (the tensor's range)
    tolerance: float
    estimated_overhead: float
    output_name: str = MONITOR_OUTPUT

    def to_dict(self) -> dict[str, Any]:
        return {"tensors": list(self.tensors), "channel_hi": self.channel_hi.tolist(),
                "score_hi": self.score_hi.tolist(), "score_scale": self.score_scale.tolist(),
                "tolerance": self.tolerance, "estimated_overhead": self.estimated_overhead,
                "output_name": self.output_name}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ActivationMonitor:
        return cls(tensors=list(d["tensors"]), channel_hi=np.asarray(d["channel_hi"], np.float32),
                   score_hi=np.asarray(d["score_hi"], np.float32),
                   score_scale=np.asarray(d["score_scale"], np.float32), tolerance=float(d["tolerance"]),
                   estimated_overhead=float(d["estimated_overhead"]), output_name=d["output_name"])

    def check(self, excess: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flags (bool per sample) and scores (per sample) from the monitor output.

        The monitor output is already normalized in the graph: ``(channel max - profiled bound) / scale``
        per monitored channel (N x K), so the score of a sample is its largest entry (the native
        ``pyguard.ops.minmax``, one pass, NaN propagating) and a sample is flagged when its score exceeds
        the calibrated tolerance or is NaN (scored +inf).
        """
        v = excess if excess.ndim == 2 and excess.dtype == np.float32 else np.asarray(excess, np.float32)
        v = np.ascontiguousarray(v.reshape(len(v), -1))
        if v.shape[1] != self.score_hi.size:
            raise ActivationError(f"monitor output has {v.shape[1]} channels, profile expects "
                                  f"{self.score_hi.size}")
        scores = _row_max(v)
        scores[np.isnan(scores)] = np.inf
        return scores > np.float32(self.tolerance), scores

    def normalize(self, channel_max: np.ndarray) -> np.ndarray:
        """What the graph computes from raw per-channel maxima (for callers holding raw maxima)."""
        with np.errstate(invalid="ignore", over="ignore"):
            raw = np.asarray(channel_max, np.float32)
            return ((raw - self.score_hi) / self.score_scale).astype(np.float32)


def _row_max(v: np.ndarray) -> np.ndarray:
    try:
        from .ops import minmax
    except ImportError:  # the native core is not built: NumPy gives the same values
        return v.max(axis=1)
    return minmax(v)[1]


@dataclass
class ActivationProfile:
    """Ranges of the profiled tensors (for restriction) and the monitor plan (for detection)."""

    preset: str
    tensors: dict[str, TensorRange]
    monitor: ActivationMonitor | None
    fpr: float
    samples: int

    def to_dict(self) -> dict[str, Any]:
        return {"preset": self.preset, "fpr": self.fpr, "samples": self.samples,
                "tensors": [t.to_dict() for t in self.tensors.values()],
                "monitor": None if self.monitor is None else self.monitor.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ActivationProfile:
        tensors = {t["name"]: TensorRange.from_dict(t) for t in d["tensors"]}
        monitor = None if d.get("monitor") is None else ActivationMonitor.from_dict(d["monitor"])
        return cls(preset=d["preset"], tensors=tensors, monitor=monitor, fpr=float(d["fpr"]),
                   samples=int(d["samples"]))

    def save(self, path: str | os.PathLike[str]) -> None:
        import json

        with open(path, "w") as f:
            json.dump({"activation_profile": self.to_dict()}, f)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ActivationProfile:
        import json

        with open(path) as f:
            doc = json.load(f)
        if not isinstance(doc, dict) or "activation_profile" not in doc:
            raise ActivationError(f"{os.fspath(path)} is not an activation profile")
        return cls.from_dict(doc["activation_profile"])

    def bounds(self) -> dict[str, tuple[float, float]]:
        return {name: (t.lo, t.hi) for name, t in self.tensors.items()}


# ------------------------------------------------------------------------------------------ graph building


class _Names:
    """Fresh tensor/node names that cannot collide with the model's."""

    def __init__(self, model: onnx.ModelProto, prefix: str = "pyguard"):
        self.used = {n for node in model.graph.node for n in (*node.input, *node.output)}
        self.used |= {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer}
        self.prefix = prefix
        self.count = 0

    def __call__(self, hint: str) -> str:
        while True:
            self.count += 1
            name = f"{self.prefix}_{hint}_{self.count}"
            if name not in self.used:
                self.used.add(name)
                return name


def _channel_reduction(nodes: list, names: _Names, tensor: str, rank: int, negate: bool) -> str:
    """Nodes computing the per-sample, per-channel max (or -min when ``negate``) of ``tensor`` as [N, C]."""
    if rank < 2:
        raise ActivationError(f"tensor {tensor!r} has rank {rank}; monitoring needs a batch axis and a "
                              "channel axis")
    src = tensor
    if negate:
        src = names("neg")
        nodes.append(helper.make_node("Neg", [tensor], [src], name=src))
    if rank == 2:
        if not negate:
            out = names("id")
            nodes.append(helper.make_node("Identity", [src], [out], name=out))
            return out
        return src
    pooled, flat = names("gmp"), names("flat")
    nodes.append(helper.make_node("GlobalMaxPool", [src], [pooled], name=pooled))
    nodes.append(helper.make_node("Flatten", [pooled], [flat], name=flat, axis=1))
    return flat


def add_channel_maxima(model: onnx.ModelProto, tensors: Sequence[str], ranks: dict[str, int],
                       output_name: str = MONITOR_OUTPUT,
                       normalize: tuple[np.ndarray, np.ndarray] | None = None) -> onnx.ModelProto:
    """Copy of ``model`` with one extra output: per-channel maxima of ``tensors``, concatenated (N x K).

    With ``normalize=(bound, scale)`` (K values each) the output is ``(maxima - bound) / scale``.
    """
    out_model = copy_model(model)
    names = _Names(out_model)
    nodes: list = []
    parts = [_channel_reduction(nodes, names, t, ranks[t], negate=False) for t in tensors]
    if normalize is None:
        nodes.append(helper.make_node("Concat", parts, [output_name], name=names("concat"), axis=1))
    else:
        joined, shifted = names("concat"), names("excess")
        bound, scale = names("bound"), names("scale")
        out_model.graph.initializer.extend([
            numpy_helper.from_array(np.asarray(normalize[0], np.float32).reshape(1, -1), bound),
            numpy_helper.from_array(np.asarray(normalize[1], np.float32).reshape(1, -1), scale)])
        nodes += [helper.make_node("Concat", parts, [joined], name=joined, axis=1),
                  helper.make_node("Sub", [joined, bound], [shifted], name=shifted),
                  helper.make_node("Div", [shifted, scale], [output_name], name=names("div"))]
    out_model.graph.node.extend(nodes)
    out_model.graph.output.append(helper.make_tensor_value_info(output_name, TensorProto.FLOAT, None))
    return out_model


def _add_profiling_outputs(model: onnx.ModelProto, tensors: Sequence[str], ranks: dict[str, int]
                           ) -> tuple[onnx.ModelProto, list[tuple[str, str]]]:
    """Calibration graph: per tensor, per-channel max and -min as extra outputs (cost does not matter)."""
    out_model = copy_model(model)
    names = _Names(out_model)
    nodes: list = []
    pairs = []
    for t in tensors:
        hi = _channel_reduction(nodes, names, t, ranks[t], negate=False)
        neg_lo = _channel_reduction(nodes, names, t, ranks[t], negate=True)
        pairs.append((hi, neg_lo))
        for o in (hi, neg_lo):
            out_model.graph.output.append(helper.make_tensor_value_info(o, TensorProto.FLOAT, None))
    out_model.graph.node.extend(nodes)
    return out_model, pairs


def _expose(model: onnx.ModelProto, tensors: Sequence[str]) -> onnx.ModelProto:
    out_model = copy_model(model)
    existing = {o.name for o in out_model.graph.output}
    for t in tensors:
        if t not in existing:
            out_model.graph.output.append(onnx.ValueInfoProto(name=t))
    return out_model


# ------------------------------------------------------------------------------------------------- profiling


def iter_feeds(data: Any, input_name: str, batch_size: int, fixed: bool = False
               ) -> Iterable[tuple[dict[str, np.ndarray], int]]:
    """(feed, number of real samples) batches from an array (first axis = samples) or an iterable of feeds.

    With ``fixed`` (a model whose batch axis is fixed to ``batch_size``) the last batch is padded by
    repeating its last sample; the padding rows are dropped from the statistics.
    """
    if isinstance(data, np.ndarray):
        if data.ndim < 1 or len(data) == 0:
            raise ValueError("calibration data is empty")
        for start in range(0, len(data), batch_size):
            chunk = data[start:start + batch_size]
            valid = len(chunk)
            if fixed and valid < batch_size:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch_size - valid, axis=0)])
            yield {input_name: np.ascontiguousarray(chunk)}, valid
        return
    for feed in data:
        if not isinstance(feed, dict):
            raise TypeError("data must be an array or an iterable of input feeds (dicts)")
        first = next(iter(feed.values()))
        yield feed, int(np.shape(first)[0]) if np.ndim(first) else 1


def _session(model: onnx.ModelProto, threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _input_name(model: onnx.ModelProto, input_name: str | None) -> str:
    inits = {i.name for i in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in inits]
    if input_name is not None:
        if input_name not in inputs:
            raise ValueError(f"unknown input {input_name!r}; the model's inputs are {inputs}")
        return input_name
    if len(inputs) != 1:
        raise ValueError(f"the model has inputs {inputs}; pass input_name or feeds")
    return inputs[0]


def fixed_batch(model: onnx.ModelProto) -> int | None:
    """The batch size the model's first input fixes, or None when its batch axis is dynamic."""
    inits = {i.name for i in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims = inp.type.tensor_type.shape.dim
        if len(dims) > 0 and dims[0].HasField("dim_value") and dims[0].dim_value > 0:
            return int(dims[0].dim_value)
        return None
    return None


def _tensor_ranks(model: onnx.ModelProto, tensors: Sequence[str], feed: dict[str, np.ndarray]
                  ) -> dict[str, tuple[int, int, int]]:
    """(rank, channels, elements per sample) of each tensor, from one run with the tensors exposed."""
    sess = _session(_expose(model, tensors))
    values = sess.run(list(tensors), feed)
    info = {}
    for name, v in zip(tensors, values):
        if v.dtype != np.float32:
            raise ActivationError(f"tensor {name!r} has dtype {v.dtype}; only float32 tensors can be "
                                  "monitored")
        info[name] = (v.ndim, v.shape[1] if v.ndim >= 2 else 1, int(v.size // max(v.shape[0], 1)))
    return info


def _quantile(values: np.ndarray, q: float, axis: int = 0) -> np.ndarray:
    if q >= 1.0:
        return values.max(axis=axis)
    return np.quantile(values, q, axis=axis, method="higher")


def profile_activations(model: ModelLike, data: Any, *, tensors: Sequence[str] | None = None,
                        preset: str = "ranger", fpr: float = 0.01, budget: float | None = 0.01,
                        input_name: str | None = None, batch_size: int = 64, folds: int = 5,
                        warn: bool = True) -> ActivationProfile:
    """Profile activation ranges on clean ``data`` and plan the inference-time check.

    ``tensors``: names to profile (default: all activation outputs). ``preset``: upper bound = this quantile
    of per-sample maxima. ``fpr``: target false-flag rate of the check on clean data; the tolerance is set by
    cross-fitting (bounds from other folds, scores on the held-out fold). ``budget``: allowed fraction of the
    plain inference time spent on the check (0 disables monitoring, ``None`` monitors everything); ``warn``:
    warn when nothing fits the budget.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    if not 0.0 <= fpr < 1.0:
        raise ValueError(f"fpr must be in [0, 1), got {fpr}")
    proto = load_model(model)
    names = activation_tensors(proto, tensors)
    fixed = fixed_batch(proto)
    image_input = _input_name(proto, input_name) if isinstance(data, np.ndarray) else ""
    feeds = iter_feeds(data, image_input, fixed or batch_size, fixed=fixed is not None)
    first = next(iter(feeds), None)
    if first is None:
        raise ValueError("calibration data is empty")
    info = _tensor_ranks(proto, names, first[0])
    ranks = {n: info[n][0] for n in names}
    graph, pairs = _add_profiling_outputs(proto, names, ranks)
    sess = _session(graph, threads=os.cpu_count() or 1)
    flat_outputs = [o for pair in pairs for o in pair]
    maxima: dict[str, list] = {n: [] for n in names}
    minima: dict[str, list] = {n: [] for n in names}
    for feed, valid in _chain(first, feeds):
        values = sess.run(flat_outputs, feed)
        for i, n in enumerate(names):
            maxima[n].append(values[2 * i][:valid])
            minima[n].append(-values[2 * i + 1][:valid])
    q = PRESETS[preset]
    ops = {node.output[0]: node for node in proto.graph.node if node.output}
    ranges = {}
    channel_max = {}
    for n in names:
        ch_max = np.concatenate(maxima[n]).astype(np.float32)
        ch_min = np.concatenate(minima[n]).astype(np.float32)
        if not (np.all(np.isfinite(ch_max)) and np.all(np.isfinite(ch_min))):
            raise ActivationError(f"tensor {n!r} is not finite on the clean calibration data")
        channel_max[n] = ch_max
        ranges[n] = _tensor_range(n, ops[n], info[n], ch_min, ch_max, q)
    samples = len(next(iter(channel_max.values())))
    monitor = None
    if budget is None or budget > 0:
        chosen, cost = choose_monitored(proto, ranges, first[0], budget, warn)
        if chosen:
            monitor = _plan_monitor(chosen, ranges, channel_max, q, fpr, folds, cost)
    return ActivationProfile(preset=preset, tensors=ranges, monitor=monitor, fpr=fpr, samples=samples)


def _chain(first, rest):
    yield first
    yield from rest


def _tensor_range(name: str, node: onnx.NodeProto, info: tuple[int, int, int], ch_min: np.ndarray,
                  ch_max: np.ndarray, q: float) -> TensorRange:
    rank, channels, elements = info
    sample_max = ch_max.max(axis=1)
    sample_min = ch_min.min(axis=1)
    natural = _NATURAL_LOWER.get(node.op_type)
    lo = float(natural) if natural is not None else float(-_quantile(-sample_min, q))
    return TensorRange(
        name=name, op_type=node.op_type, rank=int(rank), channels=int(channels), elements=int(elements),
        lo=lo, hi=float(_quantile(sample_max, q)),
        observed_lo=float(sample_min.min()), observed_hi=float(sample_max.max()),
        channel_lo=[float(v) for v in -_quantile(-ch_min, q)],
        channel_hi=[float(v) for v in _quantile(ch_max, q)])


# ---------------------------------------------------------------------------------- choosing what to check


def plain_latency(model: onnx.ModelProto, feed: dict[str, np.ndarray], runs: int = 15) -> float:
    """Median CPU seconds of one single-threaded run on one sample (the unit the budget is a fraction of).

    CPU time of the calling thread (onnxruntime runs there with one intra-op thread), so other processes
    on a shared machine do not inflate it.
    """
    import time

    sess = _session(model)
    one = {k: v[:1] if fixed_batch(model) in (None, 1) else v for k, v in feed.items()}
    for _ in range(3):
        sess.run(None, one)
    times = []
    for _ in range(runs):
        t0 = time.thread_time()
        sess.run(None, one)
        times.append(time.thread_time() - t0)
    return float(np.median(times))


def estimate_overhead(latency: float, elements: Sequence[int]) -> float:
    """Estimated fraction of one inference added by reducing tensors of these per-sample element counts.

    Per element read by a GlobalMaxPool ~0.3 ns and per reduction branch ~4 us (pool, reorder, flatten),
    fitted on this machine's onnxruntime 1.31 at one thread: all 35 Clip outputs of the MobileNetV2-shaped
    model (6.1 M elements) cost +20% and all 17 Relu outputs of the ResNet-18-shaped one (2.3 M) +1-4%.
    """
    if latency <= 0:
        return math.inf
    return (_SECONDS_PER_ELEMENT * float(sum(elements)) + _SECONDS_PER_BRANCH * len(elements)) / latency


def choose_monitored(model: onnx.ModelProto, ranges: dict[str, TensorRange], feed: dict[str, np.ndarray],
                     budget: float | None, warn: bool = True) -> tuple[list[str], float]:
    """Tensors to check under ``budget``: deepest first, skipping those that do not fit."""
    order = list(ranges)
    latency = plain_latency(model, feed)
    if budget is None:
        return order, estimate_overhead(latency, [ranges[n].elements for n in order])
    chosen: list[str] = []
    for name in reversed(order):
        trial = [*chosen, name]
        if estimate_overhead(latency, [ranges[n].elements for n in trial]) <= budget:
            chosen = trial
    chosen.reverse()
    if not chosen and warn:
        import warnings

        cheapest = min(estimate_overhead(latency, [ranges[n].elements]) for n in order)
        warnings.warn(f"no activation check fits the {100 * budget:g}% budget (the cheapest costs about "
                      f"{100 * cheapest:.1f}% of this model's {1e3 * latency:.3f} ms); activations are "
                      "profiled for restriction but not monitored. Pass a larger budget, or None to check "
                      "all.", stacklevel=3)
    if not chosen:
        return [], 0.0
    return chosen, estimate_overhead(latency, [ranges[n].elements for n in chosen])


def _plan_monitor(chosen: list[str], ranges: dict[str, TensorRange], channel_max: dict[str, np.ndarray],
                  q: float, fpr: float, folds: int, cost: float) -> ActivationMonitor:
    v = np.concatenate([channel_max[n] for n in chosen], axis=1)
    scale = np.concatenate([np.full(ranges[n].channels, _scale(ranges[n]), np.float32) for n in chosen])
    hi = _quantile(v, q).astype(np.float32)
    tol = _cross_fit_tolerance(v, scale, q, fpr, folds)
    channel_hi = (hi + np.float32(tol) * scale).astype(np.float32)
    return ActivationMonitor(tensors=chosen, channel_hi=channel_hi, score_hi=hi, score_scale=scale,
                             tolerance=float(tol), estimated_overhead=float(cost))


def _scale(r: TensorRange) -> float:
    return max(r.observed_hi - min(r.observed_lo, 0.0), 1e-6)


def _cross_fit_tolerance(v: np.ndarray, scale: np.ndarray, q: float, fpr: float, folds: int) -> float:
    """Relative tolerance so that held-out clean samples are flagged at rate <= fpr (reference rule)."""
    n = len(v)
    folds = max(2, min(folds, n))
    fold_of = np.arange(n) % folds
    scores = np.empty(n, np.float64)
    for k in range(folds):
        held = fold_of == k
        hi = _quantile(v[~held], q)
        scores[held] = np.max((v[held] - hi) / scale, axis=1)
    ranked = np.sort(scores)
    idx = max(math.ceil(n * (1.0 - fpr)) - 1, 0)
    return max(float(ranked[idx]), 0.0)


# ----------------------------------------------------------------------------------------------- inference


def instrument(model: ModelLike, profile: ActivationProfile) -> onnx.ModelProto:
    """The model with the monitor's per-channel maxima as one extra output (main outputs unchanged)."""
    proto = load_model(model)
    if profile.monitor is None:
        return proto
    ranks = {n: t.rank for n, t in profile.tensors.items()}
    monitor = profile.monitor
    return add_channel_maxima(proto, monitor.tensors, ranks, monitor.output_name,
                              normalize=(monitor.score_hi, monitor.score_scale))


class ActivationGuard:
    """Runs an instrumented model and checks its activations: the standalone form of the monitor mode."""

    def __init__(self, model: ModelLike, profile: ActivationProfile, sess_options: Any = None,
                 providers: Sequence[str] | None = None):
        import onnxruntime as ort

        if profile.monitor is None:
            raise ActivationError("the profile has no activation monitor (budget 0, or nothing fit the "
                                  "budget)")
        self.profile = profile
        self.monitor = profile.monitor
        model_bytes = instrument(model, profile).SerializeToString()
        self.session = ort.InferenceSession(model_bytes, sess_options,
                                            providers=list(providers or ["CPUExecutionProvider"]))
        self.outputs = [o.name for o in self.session.get_outputs() if o.name != self.monitor.output_name]

    def run(self, output_names: Sequence[str] | None, input_feed: dict[str, Any]
            ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """Outputs as onnxruntime returns them, then flags and scores per sample."""
        names = list(output_names or self.outputs)
        values = self.session.run([*names, self.monitor.output_name], input_feed)
        flagged, scores = self.monitor.check(values[-1])
        return values[:-1], flagged, scores


# ------------------------------------------------------------------------- hooks for pyguard.InferenceSession


def calibrate_hook(model_bytes: bytes, data: Any, activations: Any, *, preset: str, fpr: float,
                   budget: float | None, input_name: str, batch_size: int) -> ActivationProfile | None:
    """The activation part of :func:`pyguard.calibrate`.

    ``activations``: None = profile the activation outputs when the model has any, True = they must exist,
    False = skip, a list of names = profile exactly those tensors.
    """
    if activations is False:
        return None
    proto = load_model(model_bytes)
    tensors = None
    if activations is None:
        if not any(n.op_type in ACTIVATION_OPS for n in proto.graph.node):
            return None
    elif activations is not True:
        tensors = [activations] if isinstance(activations, str) else list(activations)
    return profile_activations(proto, data, tensors=tensors, preset=preset, fpr=fpr, budget=budget,
                               input_name=input_name if isinstance(data, np.ndarray) else None,
                               batch_size=batch_size, warn=activations is not None)


def session_model(model: Any, profile: Any, restrict: bool) -> Any:
    """What the guarded session loads: the model itself, or hardened and/or instrumented bytes.

    ``profile`` is a GuardProfile (or None); its ``activations`` decide. ``restrict`` (True / "every", or
    "fused") clamps the activations with :func:`pyguard.harden` at that placement, ``"zero"`` uses harden's
    zero mode (NaN and far-out values become 0); a monitor in the profile adds its one reduction output.
    """
    if restrict not in (False, True, "every", "fused", "zero"):
        raise ActivationError("restrict_activations must be True, False, 'every', 'fused' or 'zero', got "
                              f"{restrict!r}")
    acts = getattr(profile, "activations", None)
    if restrict and acts is None:
        raise ActivationError("restrict_activations=True needs a profile with activation ranges: calibrate "
                              "with activations=True")
    if acts is None or (acts.monitor is None and not restrict):
        return model
    proto = load_model(bytes(model) if isinstance(model, (bytes, bytearray, memoryview)) else model)
    if restrict:
        from .harden import harden

        proto = harden(proto, acts, placement="fused" if restrict == "fused" else "every",
                       mode="zero" if restrict == "zero" else "clamp")
    return instrument(proto, acts).SerializeToString()


class SessionActivations:
    """The activation check of one guarded session: its hidden output and how it updates the report."""

    def __init__(self, monitor: ActivationMonitor):
        self.monitor = monitor
        self.output_name = monitor.output_name

    @classmethod
    def create(cls, profile: Any) -> SessionActivations | None:
        acts = getattr(profile, "activations", None)
        return None if acts is None or acts.monitor is None else cls(acts.monitor)

    def apply(self, report: Any, channel_max: np.ndarray) -> None:
        """Flag samples whose monitored activations left the profiled range (reason "activation_range")."""
        flagged, scores = self.monitor.check(channel_max)
        report.scores["activation_range"] = scores
        report.flagged = report.flagged | flagged
        for i in np.flatnonzero(flagged):
            report.reasons[i].append("activation_range")
