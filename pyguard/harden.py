"""Restriction (Ranger): clamp every profiled activation to its clean range with constant-bound ``Clip``.

``harden(model, profile)`` returns a new ``onnx.ModelProto``; tensor names stay the same, so graph outputs and
consumers are untouched. Where the clamp can be merged into the activation exactly, it is, because that is
what keeps the cost at zero in onnxruntime:

* ``Relu`` followed by ``Clip(lo, hi)`` equals ``Clip(max(0, lo), hi)``: the Relu node becomes that Clip,
  which onnxruntime fuses into the preceding convolution (``FusedConv`` with a Clip activation);
* a ``Clip(a, b)`` with constant bounds followed by ``Clip(lo, hi)`` equals ``Clip(max(a, lo), min(b, hi))``
  whenever the two ranges overlap: the existing bounds are tightened (ReLU6 in MobileNetV2);
* any other activation (Sigmoid, Tanh, LeakyRelu, ...) gets a ``Clip`` inserted after it.

With the ``"ranger"`` preset the bounds are the observed extremes, so outputs on the calibration data are
bit-identical to the original model's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .activations import ActivationError, ActivationProfile, ModelLike, _Names, copy_model, load_model

Bounds = Mapping[str, "tuple[float, float]"]


def bounds_of(profile_or_bounds: Any) -> dict[str, tuple[float, float]]:
    """Bounds per tensor from an ActivationProfile, a GuardProfile carrying one, or a {name: (lo, hi)} map."""
    activations = getattr(profile_or_bounds, "activations", None)
    if isinstance(activations, ActivationProfile):
        profile_or_bounds = activations
    if isinstance(profile_or_bounds, ActivationProfile):
        return profile_or_bounds.bounds()
    if isinstance(profile_or_bounds, Mapping):
        out = {}
        for name, pair in profile_or_bounds.items():
            lo, hi = (float(v) for v in pair)
            if not lo <= hi:
                raise ValueError(f"bounds for {name!r} are empty: lo={lo} > hi={hi}")
            out[str(name)] = (lo, hi)
        return out
    raise TypeError("harden() needs an ActivationProfile, a GuardProfile with activation bounds, or a "
                    f"mapping {{tensor name: (lo, hi)}}; got {type(profile_or_bounds).__name__}")


def _opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    return 1


def _constant_scalar(model: onnx.ModelProto, name: str) -> float | None:
    if not name:
        return None
    for init in model.graph.initializer:
        if init.name == name:
            arr = numpy_helper.to_array(init)
            return float(arr) if arr.size == 1 else None
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output and node.output[0] == name:
            for attr in node.attribute:
                if attr.name == "value":
                    arr = numpy_helper.to_array(attr.t)
                    return float(arr) if arr.size == 1 else None
    return None


def _clip_bounds(model: onnx.ModelProto, node: onnx.NodeProto) -> tuple[float, float] | None:
    """Constant (min, max) of a Clip node, or None when a bound is computed at run time."""
    if _opset(model) < 11:
        attrs = {a.name: a.f for a in node.attribute}
        return attrs.get("min", -np.inf), attrs.get("max", np.inf)
    lo = -np.inf if len(node.input) < 2 or not node.input[1] else _constant_scalar(model, node.input[1])
    hi = np.inf if len(node.input) < 3 or not node.input[2] else _constant_scalar(model, node.input[2])
    if lo is None or hi is None:
        return None
    return lo, hi


def harden(model: ModelLike, profile_or_bounds: Any, *, placement: str = "every") -> onnx.ModelProto:
    """Return a copy of ``model`` with the profiled tensors clamped to their (lo, hi) bounds.

    ``placement="every"`` clamps every profiled tensor (Ranger). ``"fused"`` clamps only where onnxruntime
    fuses the clamp into the producing convolution (an activation whose input is a Conv output read by
    nothing else) plus the last profiled tensor, so the hardened model costs nothing extra; a clamp after a
    residual ``Add`` is left out there, because onnxruntime's NCHWc convolution fuses ``Add`` + ``Relu`` but
    not ``Add`` + ``Clip`` and the lone Clip costs two layout reorders.
    """
    proto = load_model(model)
    if _opset(proto) < 11:
        raise ActivationError(f"harden() needs opset >= 11 (Clip with tensor bounds); the model has opset "
                              f"{_opset(proto)}")
    bounds = bounds_of(profile_or_bounds)
    if not bounds:
        raise ActivationError("no bounds to apply: the profile has no activation ranges")
    if placement == "fused":
        bounds = {k: v for k, v in bounds.items() if k in fusable_tensors(proto, list(bounds))}
    elif placement != "every":
        raise ValueError(f"placement must be 'every' or 'fused', got {placement!r}")
    out = copy_model(proto)
    names = _Names(out)
    produced = {o: node for node in out.graph.node for o in node.output if o}
    missing = [t for t in bounds if t not in produced]
    if missing:
        raise ActivationError(f"bounds name tensor(s) {missing} that no node of the model produces")
    new_nodes: list[onnx.NodeProto] = []
    replaced: set[str] = set()
    for node in out.graph.node:
        target = node.output[0] if node.output else None
        if target not in bounds or node.domain not in ("", "ai.onnx"):
            new_nodes.append(node)
            continue
        lo, hi = bounds[target]
        merged = _merged_bounds(out, node, lo, hi)
        if merged is not None:
            lo_name, hi_name = _bound_initializers(out, names, *merged)
            node.op_type = "Clip"
            replaced.update(node.input[1:])
            del node.input[1:]
            node.input.extend([lo_name, hi_name])
            new_nodes.append(node)
            continue
        raw = names("unclipped")
        node.output[0] = raw
        new_nodes.append(node)
        lo_name, hi_name = _bound_initializers(out, names, lo, hi)
        new_nodes.append(helper.make_node("Clip", [raw, lo_name, hi_name], [target], name=names("clip")))
    del out.graph.node[:]
    out.graph.node.extend(new_nodes)
    _drop_unused(out, replaced)
    return out


def _drop_unused(model: onnx.ModelProto, candidates: set[str]) -> None:
    """Remove the old Clip bound constants that nothing reads any more."""
    used = {i for node in model.graph.node for i in node.input} | {o.name for o in model.graph.output}
    dead = candidates - used
    keep = [i for i in model.graph.initializer if i.name not in dead]
    if len(keep) != len(model.graph.initializer):
        del model.graph.initializer[:]
        model.graph.initializer.extend(keep)
    nodes = [n for n in model.graph.node if not (n.op_type == "Constant" and n.output[0] in dead)]
    if len(nodes) != len(model.graph.node):
        del model.graph.node[:]
        model.graph.node.extend(nodes)


def fusable_tensors(model: onnx.ModelProto, tensors: list[str]) -> set[str]:
    """Tensors whose clamp onnxruntime fuses into the producing Conv, plus the last one of ``tensors``."""
    producer = {o: node for node in model.graph.node for o in node.output if o}
    readers: dict[str, int] = {}
    for node in model.graph.node:
        for i in node.input:
            readers[i] = readers.get(i, 0) + 1
    out = {tensors[-1]} if tensors else set()
    for t in tensors:
        node = producer.get(t)
        if node is None or node.op_type not in ("Relu", "Clip") or not node.input:
            continue
        src = producer.get(node.input[0])
        if src is not None and src.op_type == "Conv" and readers.get(node.input[0], 0) == 1:
            out.add(t)
    return out


def _merged_bounds(model: onnx.ModelProto, node: onnx.NodeProto, lo: float, hi: float
                   ) -> tuple[float, float] | None:
    """Bounds of a single Clip equal to ``node`` followed by Clip(lo, hi), if one exists."""
    if node.op_type == "Relu":
        return max(0.0, lo), hi
    if node.op_type == "Clip":
        own = _clip_bounds(model, node)
        if own is None:
            return None
        new_lo, new_hi = max(own[0], lo), min(own[1], hi)
        if new_lo <= new_hi:
            return new_lo, new_hi
    return None


def _bound_initializers(model: onnx.ModelProto, names, lo: float, hi: float) -> tuple[str, str]:
    lo_name, hi_name = names("lo"), names("hi")
    model.graph.initializer.extend([numpy_helper.from_array(np.array(lo, np.float32), lo_name),
                                    numpy_helper.from_array(np.array(hi, np.float32), hi_name)])
    return lo_name, hi_name
