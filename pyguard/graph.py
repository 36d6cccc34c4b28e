"""In-graph guard: one ONNX model that holds the original model, its squeezed runs and the detector.

The squeezers, input checks, activation-range checks and the Feature Squeezing score are standard ONNX
operators, so the guard runs on whatever execution provider runs the model (CUDA, TensorRT, ...) with no
copy to the host. :func:`build_guard_graph` takes explicit parameters; :func:`compile_guard` reads them
from a :class:`pyguard.GuardProfile`.

How the model is embedded:

* the original graph is kept as is and computes the declared outputs from the caller's input, so they
  are exactly what the plain model computes (same nodes, same batch size);
* the squeezed copies run through one renamed copy of the graph that shares the original's weights
  (initializers are referenced, not duplicated). With a dynamic batch axis the copies are concatenated
  along it and run once; with a fixed batch axis each squeezed copy gets its own renamed copy.

Extra outputs: ``pyguard_scores`` (float32 [N, n_squeezers + 1]: each squeezer's L1 distance, then their
max), ``pyguard_flags`` (bool [N]: squeeze score > threshold, or any input/activation check failed),
``pyguard_nan_count``, ``pyguard_inf_count``, ``pyguard_out_of_range_count`` (int32 [N], with input
checks) and ``pyguard_activation_count`` (int32 [N, L]) / ``pyguard_activation_excess`` (float32 [N, L])
for activation bounds on L tensors.

Use on a device (the input stays there; only the small score/flag arrays come back)::

    guard = pyguard.compile_guard("model.onnx", profile)
    sess = onnxruntime.InferenceSession(guard.SerializeToString(), providers=["CUDAExecutionProvider"])
    binding = sess.io_binding()
    binding.bind_ortvalue_input("input", device_tensor)       # an OrtValue already on the GPU
    binding.bind_output("logits", "cuda")
    binding.bind_output("pyguard_flags")                      # CPU: small
    sess.run_with_iobinding(binding)
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from . import graph_ops as ops
from .graph_ops import Builder

#: Squeezers with a standard-operator form, and their parameter ranges.
GRAPH_SQUEEZERS = {"bit_depth": range(1, 25), "median": ops.MEDIAN_SIZES}
#: Squeezers that exist in native mode only.
NATIVE_ONLY_SQUEEZERS = ("nl_means", "jpeg")

SCORES = "pyguard_scores"
FLAGS = "pyguard_flags"
NAN_COUNT = "pyguard_nan_count"
INF_COUNT = "pyguard_inf_count"
OUT_OF_RANGE_COUNT = "pyguard_out_of_range_count"
ACTIVATION_COUNT = "pyguard_activation_count"
ACTIVATION_EXCESS = "pyguard_activation_excess"
METADATA_KEY = "pyguard.guard"
RESERVED = (SCORES, FLAGS, NAN_COUNT, INF_COUNT, OUT_OF_RANGE_COUNT, ACTIVATION_COUNT, ACTIVATION_EXCESS)
CHECK_OUTPUTS = (("nan_count", NAN_COUNT), ("inf_count", INF_COUNT),
                 ("out_of_range_count", OUT_OF_RANGE_COUNT))
#: Range-check slack in [0, 1] pixels after undoing a normalization (float rounding), as native mode.
UNIT_TOLERANCE = 1e-4


# ---- arguments ----------------------------------------------------------------------------------------

def parse_squeezer(spec: str) -> tuple[str, int]:
    """"bit_depth:5" -> ("bit_depth", 5); refuses squeezers without a standard-operator form."""
    if not isinstance(spec, str):
        spec = getattr(spec, "spec", spec)
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"squeezer must be a string like 'bit_depth:5' or 'median:2', got {spec!r}")
    kind, _, param = spec.partition(":")
    kind = kind.strip()
    if kind in NATIVE_ONLY_SQUEEZERS:
        raise ValueError(f"squeezer {spec!r} has no standard-operator form; use guard_mode='native'")
    if kind not in GRAPH_SQUEEZERS:
        raise ValueError(f"unknown squeezer {spec!r}; in-graph squeezers: bit_depth:BITS, median:SIZE")
    try:
        value = int(param)
    except ValueError:
        raise ValueError(f"squeezer {spec!r}: parameter must be an integer") from None
    if value not in GRAPH_SQUEEZERS[kind]:
        allowed = GRAPH_SQUEEZERS[kind]
        text = f"{allowed.start}..{allowed.stop - 1}" if isinstance(allowed, range) else str(list(allowed))
        raise ValueError(f"squeezer {spec!r}: parameter must be in {text}")
    return kind, value


def load_model(model: onnx.ModelProto | str | os.PathLike | bytes) -> onnx.ModelProto:
    """A private copy of the model (a ModelProto, a path, or serialized bytes)."""
    if isinstance(model, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return copy
    if isinstance(model, (bytes, bytearray, memoryview)):
        return onnx.load_from_string(bytes(model))
    if isinstance(model, (str, os.PathLike)):
        return onnx.load(os.fspath(model))
    raise TypeError(f"model must be an onnx.ModelProto, a path or bytes, got {type(model).__name__}")


def default_opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    raise ValueError("model imports no default-domain ONNX opset")


def real_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    inits = {i.name for i in graph.initializer}
    return [i for i in graph.input if i.name not in inits]


def pick_input(graph: onnx.GraphProto, name: str | None) -> onnx.ValueInfoProto:
    inputs = real_inputs(graph)
    if name is None:
        if len(inputs) != 1:
            raise ValueError(f"model has {len(inputs)} inputs {[i.name for i in inputs]}; pass input_name")
        return inputs[0]
    for i in inputs:
        if i.name == name:
            return i
    raise ValueError(f"model has no input {name!r}; inputs: {[i.name for i in inputs]}")


def pick_output(graph: onnx.GraphProto, name: str | None) -> str:
    names = [o.name for o in graph.output]
    if name is None:
        if len(names) != 1:
            raise ValueError(f"model has {len(names)} outputs {names}; pass output_name")
        return names[0]
    if name not in names:
        raise ValueError(f"model has no output {name!r}; outputs: {names}")
    return name


def dims(value_info: onnx.ValueInfoProto) -> list[int | str | None] | None:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]


def batch_is_dynamic(value_info: onnx.ValueInfoProto) -> bool:
    shape = dims(value_info)
    return shape is None or not shape or not isinstance(shape[0], int)


def resolve_logits(graph: onnx.GraphProto, output_name: str, output_kind: str) -> bool:
    """True when softmax must be applied: "logits", or "auto" and the output is not made by a Softmax."""
    if output_kind == "logits":
        return True
    if output_kind == "probabilities":
        return False
    if output_kind != "auto":
        raise ValueError(f"output_kind must be 'auto', 'logits' or 'probabilities', got {output_kind!r}")
    producer = next((n for n in graph.node if output_name in n.output), None)
    return producer is None or producer.op_type != "Softmax"


# ---- embedding the model ------------------------------------------------------------------------------

def renamed_nodes(graph: onnx.GraphProto, prefix: str, keep: set[str],
                  mapping: Mapping[str, str]) -> list[onnx.NodeProto]:
    """Copies of ``graph``'s nodes with every tensor (and node) name prefixed, except names in ``keep``
    (shared weights, pass-through inputs) and names in ``mapping`` (redirected inputs). Subgraphs (If,
    Loop, Scan bodies) are renamed with the same rule, so outer-scope references stay consistent."""

    def rename(name: str) -> str:
        if not name or name in keep:
            return name
        return mapping.get(name, prefix + name)

    def rename_graph(g: onnx.GraphProto) -> None:
        for vi in (*g.input, *g.output, *g.value_info):
            vi.name = rename(vi.name)
        for init in g.initializer:
            init.name = rename(init.name)
        for node in g.node:
            rename_node(node)

    def rename_node(node: onnx.NodeProto) -> None:
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
        if node.name:
            node.name = prefix + node.name
        for attr in node.attribute:
            if attr.HasField("g"):
                rename_graph(attr.g)
            for sub in attr.graphs:
                rename_graph(sub)

    copies = []
    for node in graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        rename_node(copy)
        copies.append(copy)
    return copies


def unused_prefix(taken: set[str], base: str) -> str:
    k = 0
    while True:
        prefix = f"{base}{k}/" if k else f"{base}/"
        if not any(n.startswith(prefix) for n in taken):
            return prefix
        k += 1


def run_copy(b: Builder, original: Sequence[onnx.NodeProto], graph: onnx.GraphProto, image: str,
             copy_input: str, outputs: Sequence[str], repeat_inputs: Mapping[str, int],
             label: str) -> list[str]:
    """Append one renamed copy of the original nodes, fed ``copy_input`` instead of ``image``; other
    inputs with a dynamic batch axis are repeated ``repeat_inputs[name]`` times along it. Returns the
    copy's names for ``outputs``."""
    tmp = onnx.GraphProto()
    tmp.node.extend(original)
    keep = {i.name for i in graph.initializer}
    mapping = {image: copy_input}
    for inp in real_inputs(graph):
        if inp.name == image:
            continue
        times = repeat_inputs.get(inp.name, 1)
        if times == 1:
            keep.add(inp.name)
        else:
            mapping[inp.name] = b.node("Concat", [inp.name] * times, hint=f"{label}_tiled", axis=0)
    prefix = unused_prefix(b.taken, f"{b.prefix}{label}")
    nodes = renamed_nodes(tmp, prefix, keep, mapping)
    b.graph.node.extend(nodes)
    for node in nodes:
        b.taken.update(node.output)
    return [mapping.get(o, o if o in keep else prefix + o) for o in outputs]


def activation_ranks(model: onnx.ModelProto, names: Sequence[str]) -> dict[str, int | None]:
    """Ranks of intermediate tensors, from ONNX shape inference (None where unknown)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # shape inference is best effort: per-channel bounds then need a known rank
        inferred = model
    g = inferred.graph
    infos = {vi.name: vi for vi in (*g.value_info, *g.output, *g.input)}
    ranks: dict[str, int | None] = {}
    for name in names:
        shape = dims(infos[name]) if name in infos else None
        ranks[name] = None if shape is None else len(shape)
    return ranks


def activation_bound_arrays(lo, hi, rank: int | None, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Scalar bounds stay scalars; 1-D per-channel bounds are shaped [C, 1, ...] for axis 1."""
    lo, hi = np.asarray(lo, dtype=np.float32), np.asarray(hi, dtype=np.float32)
    if lo.ndim > 1 or hi.ndim > 1:
        raise ValueError(f"activation bounds of {name!r} must be scalars or 1-D per channel")
    if lo.ndim == hi.ndim == 1 and lo.shape != hi.shape:
        raise ValueError(f"activation bounds of {name!r}: {lo.size} lower and {hi.size} upper bounds")
    if np.any(np.isnan(lo)) or np.any(np.isnan(hi)) or np.any(lo > hi):
        raise ValueError(f"activation bounds of {name!r} need lo <= hi and no NaN")
    if lo.ndim == hi.ndim == 0:
        return lo, hi
    if rank is None or rank < 2:
        raise ValueError(f"per-channel bounds for {name!r} need a tensor of known rank >= 2 (channels on "
                         "axis 1); shape inference could not tell its rank")
    channels = max(lo.size, hi.size)
    shape = (channels,) + (1,) * (rank - 2)
    return np.broadcast_to(lo, (channels,)).reshape(shape), np.broadcast_to(hi, (channels,)).reshape(shape)


# ---- the guard graph ----------------------------------------------------------------------------------

@dataclass
class GuardSpec:
    """The resolved, validated arguments of :func:`build_guard_graph`."""

    image: onnx.ValueInfoProto
    output: str
    squeezers: list[tuple[str, int]]
    threshold: float
    lo: float
    hi: float
    affine: tuple[np.ndarray, np.ndarray] | None  # unit = x * a + b maps normalized input to [0, 1]
    uint8: bool  # uint8 input: squeezed as the native uint8 kernels do, fed back as uint8
    layout: str
    logits: bool
    batched: bool
    bounds: dict[str, tuple[np.ndarray, np.ndarray]]
    input_checks: bool
    tensorrt_safe: bool


def resolve(m: onnx.ModelProto, *, input_name, output_name, squeezers, threshold, input_range, normalization,
            layout, activation_bounds, input_checks, tensorrt_safe, output_kind, batched) -> GuardSpec:
    opset = default_opset(m)
    if opset < ops.MIN_OPSET:
        raise ValueError(f"model opset {opset} is older than {ops.MIN_OPSET}; convert it first "
                         "(onnx.version_converter.convert_version(model, 17))")
    ops.layout_axes(layout)
    graph = m.graph
    image = pick_input(graph, input_name)
    output = pick_output(graph, output_name)
    elem_type = image.type.tensor_type.elem_type
    if elem_type not in (TensorProto.FLOAT, TensorProto.UINT8):
        raise ValueError(f"input {image.name!r} must be float32 or uint8 for the in-graph guard")
    uint8 = elem_type == TensorProto.UINT8
    if uint8 and (tuple(float(v) for v in input_range) != (0.0, 255.0) or normalization is not None):
        raise ValueError(f"uint8 input {image.name!r} needs input_range=(0, 255) and no normalization")
    shape = dims(image)
    if shape is not None and len(shape) != len(layout):
        raise ValueError(f"input {image.name!r} has rank {len(shape)}; layout {layout!r} needs {len(layout)}")
    specs = [parse_squeezer(s) for s in squeezers]
    if not specs:
        raise ValueError("the in-graph guard needs at least one squeezer")
    lo, hi = (float(v) for v in input_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"input_range must be finite with lo < hi, got {input_range!r}")
    dynamic = batch_is_dynamic(image)
    if batched is None:
        batched = dynamic
    if batched and not dynamic:
        raise ValueError(f"input {image.name!r} has a fixed batch size {shape[0]}; use batched=False")
    names = ops.names_in_graph(graph)
    for reserved in RESERVED:
        if reserved in names:
            raise ValueError(f"model already uses the name {reserved!r}")
    return GuardSpec(
        image=image, output=output, squeezers=specs, threshold=float(threshold), lo=lo, hi=hi,
        affine=unit_affine(normalization, lo, hi, layout), uint8=uint8, layout=layout,
        logits=resolve_logits(graph, output, output_kind), batched=bool(batched),
        bounds=resolve_bounds(m, activation_bounds or {}, names), input_checks=bool(input_checks),
        tensorrt_safe=bool(tensorrt_safe))


def unit_affine(normalization, lo: float, hi: float, layout: str) -> tuple[np.ndarray, np.ndarray] | None:
    """For a normalized input x = (pixel - mean) / std: float32 (a, b) with x * a + b = pixel mapped to
    [0, 1] (a = std / (hi - lo), b = (mean - lo) / (hi - lo), computed in float64 and rounded once, as the
    native session does, so both modes squeeze the same values)."""
    if normalization is None:
        return None
    try:
        mean, std = normalization
    except (TypeError, ValueError):
        raise ValueError("normalization must be a (mean, std) pair") from None
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    if mean.shape != std.shape or mean.ndim > 1:
        raise ValueError(f"normalization mean and std must be scalars or 1-D of one shape, got {mean.shape} "
                         f"and {std.shape}")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
        raise ValueError("normalization needs finite means and positive finite stds")
    span = hi - lo
    a, b = (std / span).astype(np.float32), ((mean - lo) / span).astype(np.float32)
    return ops.channel_shape(layout, a), ops.channel_shape(layout, b)


def resolve_bounds(m: onnx.ModelProto, activation_bounds: Mapping[str, tuple[Any, Any]],
                   names: set[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    for name in activation_bounds:
        if name not in names:
            raise ValueError(f"activation_bounds names unknown tensor {name!r}")
    ranks = activation_ranks(m, list(activation_bounds)) if activation_bounds else {}
    return {name: activation_bound_arrays(lo, hi, ranks.get(name), name)
            for name, (lo, hi) in activation_bounds.items()}


def build_guard_graph(
    model: onnx.ModelProto | str | os.PathLike | bytes,
    *,
    input_name: str | None = None,
    output_name: str | None = None,
    squeezers: Sequence[str] = ("bit_depth:5", "median:2"),
    threshold: float = float("inf"),
    input_range: tuple[float, float] = (0.0, 1.0),
    normalization: tuple[Any, Any] | None = None,
    layout: str = "NCHW",
    activation_bounds: Mapping[str, tuple[Any, Any]] | None = None,
    input_checks: bool = True,
    tensorrt_safe: bool = False,
    output_kind: str = "auto",
    batched: bool | None = None,
) -> onnx.ModelProto:
    """Build one ONNX model computing the original outputs plus the guard's scores, flags and checks.

    Args:
        model: the ONNX model (ModelProto, path or bytes); it is not modified.
        input_name / output_name: the image input and the class output (default: the only one).
        squeezers: "bit_depth:BITS" and "median:SIZE" (2, 3, 5); "nl_means:*" and "jpeg:*" raise ValueError.
        threshold: a sample is flagged when its squeeze score (max L1 distance) is > threshold.
        input_range: (lo, hi) of pixel values; the squeezers work on this range. A uint8 input needs
            (0, 255): it is squeezed as the native uint8 kernels do and fed to the copies as uint8.
        normalization: optional per-channel (mean, std); the model input is (pixel - mean) / std. The guard
            maps it to [0, 1] pixels before squeezing and back after (squeezing normalized values was ART
            issue #84); the range check then allows 1e-4 of rounding, as native mode does.
        layout: "NCHW", "NHWC" or "NHW" (batch first).
        activation_bounds: {tensor name: (lo, hi)}, scalars or per-channel (axis 1) bounds on the original
            run's intermediate tensors.
        input_checks: add NaN / Inf / out-of-range counts (they also flag the sample; a non-finite sample
            gets a squeeze score of +inf, as in native mode).
        tensorrt_safe: avoid operators TensorRT lacks: no IsInf/IsNaN (comparisons of |x| with inf and
            FLT_MAX instead) and no Pad "edge" (Slice + Concat instead).
        output_kind: "logits" (softmax applied), "probabilities", or "auto" (logits unless a Softmax node
            makes the output).
        batched: run the squeezed copies as one batch (needs a dynamic batch axis); default: when the
            batch axis is dynamic, else one model copy per squeezer.
    """
    m = load_model(model)
    spec = resolve(m, input_name=input_name, output_name=output_name, squeezers=squeezers,
                   threshold=threshold, input_range=input_range, normalization=normalization, layout=layout,
                   activation_bounds=activation_bounds, input_checks=input_checks,
                   tensorrt_safe=tensorrt_safe, output_kind=output_kind, batched=batched)
    graph = m.graph
    original = list(graph.node)
    b = Builder(graph, prefix="pyguard/", opset=default_opset(m))
    source, to_model = pixel_space(b, spec)
    checks = add_input_checks(b, spec, source) if spec.input_checks else {}
    squeezed = [to_model(squeeze(b, spec, source, kind, value)) for kind, value in spec.squeezers]
    outs = squeezed_outputs(b, spec, original, squeezed)
    scores, flag = add_detector(b, spec, outs, checks.get("nonfinite"))
    extra = [(SCORES, scores, TensorProto.FLOAT, len(spec.squeezers) + 1)]
    if checks:
        bad_input = b.node("Greater", [b.node("Add", [checks["nonfinite"], checks["out_of_range_count"]]),
                                       b.const(0, np.int32)], hint="bad_input")
        flag = b.node("Or", [flag, bad_input], hint="flag")
    if spec.bounds:
        counts, excess, violated = add_activation_checks(b, spec.bounds)
        flag = b.node("Or", [flag, violated], hint="flag")
        extra += [(ACTIVATION_COUNT, counts, TensorProto.INT32, len(spec.bounds)),
                  (ACTIVATION_EXCESS, excess, TensorProto.FLOAT, len(spec.bounds))]
    extra.append((FLAGS, flag, TensorProto.BOOL, None))
    extra += [(public, checks[k], TensorProto.INT32, None) for k, public in CHECK_OUTPUTS if k in checks]
    declare_outputs(b, spec, extra)
    record_metadata(m, squeezers=[f"{k}:{v}" for k, v in spec.squeezers], threshold=spec.threshold,
                    input=spec.image.name, output=spec.output, logits=spec.logits, layout=spec.layout,
                    input_range=[spec.lo, spec.hi], normalized=spec.affine is not None, batched=spec.batched,
                    activation_tensors=list(spec.bounds), tensorrt_safe=spec.tensorrt_safe)
    onnx.checker.check_model(m)
    return m


def pixel_space(b: Builder, spec: GuardSpec):
    """The tensor the squeezers read, and the map from squeezed values back to the model's input space."""
    x = spec.image.name
    if spec.uint8:
        source = b.node("Cast", [x], hint="pixels", to=TensorProto.FLOAT)
        return source, lambda s: b.node("Cast", [s], hint="squeezed_u8", to=TensorProto.UINT8)
    if spec.affine is None:
        return x, lambda s: s
    a, c = b.const(spec.affine[0]), b.const(spec.affine[1])
    unit = b.node("Add", [b.node("Mul", [x, a], hint="scaled"), c], hint="unit")
    return unit, lambda s: b.node("Div", [b.node("Sub", [s, c], hint="shifted"), a], hint="renormalized")


def squeeze(b: Builder, spec: GuardSpec, source: str, kind: str, value: int) -> str:
    if kind == "bit_depth" and spec.uint8:  # as the native uint8 kernel: rint(bit_depth(v / 255) * 255)
        unit = b.node("Div", [source, b.const(255.0)], hint="unit")
        levels = b.node("Mul", [ops.bit_depth(b, unit, value), b.const(255.0)], hint="levels_u8")
        return b.node("Round", [levels], hint="bit_depth_u8")
    if kind == "bit_depth":
        lo, hi = (0.0, 1.0) if spec.affine is not None else (spec.lo, spec.hi)
        return ops.bit_depth(b, source, value, lo, hi)
    return ops.median(b, source, value, spec.layout, portable=spec.tensorrt_safe)


def add_input_checks(b: Builder, spec: GuardSpec, source: str) -> dict[str, str]:
    """NaN / Inf counts of the input; out-of-range count of finite pixels (in [0, 1] with 1e-4 of
    tolerance when normalized, as native mode)."""
    x = source if spec.uint8 else spec.image.name
    counts = ops.input_checks(b, x, spec.lo, spec.hi, spec.tensorrt_safe)
    if spec.affine is not None:
        lo, hi = -UNIT_TOLERANCE, 1.0 + UNIT_TOLERANCE
        outside = ops.count_per_sample(b, ops.out_of_range_mask(b, source, lo, hi))
        counts["out_of_range_count"] = b.node("Sub", [outside, counts["inf_count"]], hint="out_of_range")
    counts["nonfinite"] = b.node("Add", [counts["nan_count"], counts["inf_count"]], hint="nonfinite")
    return counts


def squeezed_outputs(b: Builder, spec: GuardSpec, original: Sequence[onnx.NodeProto],
                     squeezed: Sequence[str]) -> list[str]:
    """The model's chosen output for each squeezed copy: one batched renamed copy of the model, or one
    renamed copy per squeezer for a fixed batch size."""
    graph, x, n = b.graph, spec.image.name, len(squeezed)
    if not spec.batched:
        return [run_copy(b, original, graph, x, s, [spec.output], {}, f"squeezed{i}")[0]
                for i, s in enumerate(squeezed)]
    repeat = {i.name: n for i in real_inputs(graph) if i.name != x and batch_is_dynamic(i)}
    batch = squeezed[0] if n == 1 else b.node("Concat", list(squeezed), hint="squeezed", axis=0)
    (y,) = run_copy(b, original, graph, x, batch, [spec.output], repeat, "squeezed")
    return [y] if n == 1 else split_batch(b, y, n)


def add_detector(b: Builder, spec: GuardSpec, outs: Sequence[str], nonfinite: str | None) -> tuple[str, str]:
    """Scores [N, n+1] (L1 distance per squeezer, then the max) and the squeeze flag (max > threshold)."""
    p0 = ops.probabilities(b, spec.output, spec.logits)
    distances = [ops.l1_distance(b, p0, ops.probabilities(b, y, spec.logits)) for y in outs]
    score = distances[0] if len(distances) == 1 else ops.max_columns(b, ops.stack_columns(b, distances))
    if nonfinite is not None:  # as native mode: a sample with NaN/Inf gets score +inf
        bad = b.node("Greater", [nonfinite, b.const(0, np.int32)], hint="has_nonfinite")
        distances = [b.node("Where", [bad, b.const(np.inf), d], hint="distance") for d in distances]
        score = b.node("Where", [bad, b.const(np.inf), score], hint="score")
    flag = b.node("Greater", [score, b.const(np.float32(spec.threshold))], hint="squeeze_flag")
    return ops.stack_columns(b, [*distances, score]), flag


def add_activation_checks(b: Builder, bounds: Mapping[str, tuple[np.ndarray, np.ndarray]]):
    """[N, L] violation counts and max excess on the original run's tensors, and the per-sample flag."""
    pairs = [ops.range_violations(b, name, lo, hi) for name, (lo, hi) in bounds.items()]
    counts = ops.stack_columns(b, [c for c, _ in pairs])
    excess = ops.stack_columns(b, [e for _, e in pairs])
    total = ops.reduce(b, "ReduceSum", counts, [1])
    return counts, excess, b.node("Greater", [total, b.const(0, np.int32)], hint="activation_flag")


def declare_outputs(b: Builder, spec: GuardSpec, extra) -> None:
    """Identity nodes to the public names, declared as graph outputs ([N] or [N, width])."""
    shape = dims(spec.image)
    batch = shape[0] if shape and isinstance(shape[0], int) else None
    for public, internal, dtype, width in extra:
        b.graph.node.append(helper.make_node("Identity", [internal], [public], name=b.fresh("output")))
        b.graph.output.append(helper.make_tensor_value_info(public, dtype, [batch] if width is None
                                                            else [batch, width]))


def split_batch(b: Builder, y: str, parts: int) -> list[str]:
    """Equal parts along axis 0 (opset 18 wants the count as an attribute)."""
    attrs = {"num_outputs": parts} if b.opset >= 18 else {}
    return b.node("Split", [y], hint="squeezed_out", n_out=parts, axis=0, **attrs)


def record_metadata(m: onnx.ModelProto, **info) -> None:
    for prop in list(m.metadata_props):
        if prop.key == METADATA_KEY:
            m.metadata_props.remove(prop)
    entry = m.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(info)


def guard_metadata(model: onnx.ModelProto) -> dict | None:
    """The guard parameters recorded in a guard model (None for a plain model)."""
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return json.loads(prop.value)
    return None


def compile_guard(model: onnx.ModelProto | str | os.PathLike | bytes, profile, **options) -> onnx.ModelProto:
    """The in-graph guard for ``model`` as calibrated in ``profile`` (a :class:`pyguard.GuardProfile` or a
    path to one): same squeezers, threshold, input range, normalization, layout and output kind.

    A model given as a path or bytes is checked against the profile's sha256 (ProfileError on mismatch).
    Activation bounds recorded in the profile (``profile.activations.bounds()``) become activation checks.
    ``options`` go to :func:`build_guard_graph` (``activation_bounds``, ``tensorrt_safe``, ``input_checks``,
    ``batched``). Squeezers without a standard-operator form (NLM, JPEG) raise ValueError.
    """
    if isinstance(profile, (str, os.PathLike)):
        from .profile import GuardProfile

        profile = GuardProfile.load(profile)
    if not isinstance(model, onnx.ModelProto) and hasattr(profile, "check_model"):
        from .profile import model_sha256

        data = bytes(model) if isinstance(model, (bytearray, memoryview)) else model
        profile.check_model(model_sha256(data))
    if getattr(profile, "fused", None) is not None:
        warnings.warn("the profile's fused detector has no standard-operator form: the compiled guard is "
                      "its Xu (squeeze) detector at the profile's Xu threshold (calibrate with "
                      "detector='squeeze' for a profile whose decision is the one compiled)", UserWarning,
                      stacklevel=2)
    spec = profile.input
    normalization = (spec.mean, spec.std) if getattr(spec, "mean", None) is not None else None
    activations = getattr(profile, "activations", None)  # an ActivationProfile (issue 4), when calibrated
    if activations is not None and hasattr(activations, "bounds") and "activation_bounds" not in options:
        options["activation_bounds"] = activations.bounds()
    return build_guard_graph(
        model, input_name=spec.name, output_name=profile.output_name, squeezers=list(profile.squeezers),
        threshold=profile.threshold, input_range=tuple(spec.range), normalization=normalization,
        layout=spec.layout, output_kind=profile.output_kind, **options)


__all__ = ["build_guard_graph", "compile_guard", "guard_metadata", "parse_squeezer", "SCORES", "FLAGS"]
