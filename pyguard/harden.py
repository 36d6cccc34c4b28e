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


MODES = ("clamp", "zero")


def harden(model: ModelLike, profile_or_bounds: Any, *, placement: str = "every", mode: str = "clamp",
           per_channel: bool = False, scrub_nan: bool = False, zero_margin: float = 1.0) -> onnx.ModelProto:
    """Return a copy of ``model`` with the profiled tensors restricted to their (lo, hi) bounds.

    ``mode="clamp"`` (Ranger) saturates out-of-range values at the bound; it costs nothing where the clamp
    merges into a fused activation. ``mode="zero"`` (after FT-ClipAct, Hoang et al. 2020) replaces NaN, +-Inf
    and values beyond the bounds by more than ``zero_margin`` x (hi - lo) with 0 and clamps the nearer ones:
    a flipped exponent bit or corrupted weight then removes one value's contribution instead of pinning it
    at the largest clean value, which contains far more faults (bench/README.md), at the price of four
    unfused elementwise passes per tensor. The margin keeps clean values slightly beyond the calibrated
    range (new data, or another rounding of fused kernels) from being zeroed.

    ``placement="every"`` restricts every profiled tensor. ``"fused"`` restricts only where onnxruntime
    fuses the clamp into the producing convolution (an activation whose input is a Conv output read by
    nothing else) plus the last profiled tensor, so the hardened model costs nothing extra; a clamp after a
    residual ``Add`` is left out there, because onnxruntime's NCHWc convolution fuses ``Add`` + ``Relu`` but
    not ``Add`` + ``Clip`` and the lone Clip costs two layout reorders.

    ``per_channel=True`` (needs a profile with per-channel ranges) uses each channel's own range as well
    (``Max``/``Min`` with per-channel bounds): a corrupted weight inflates one output channel, which stays
    far below the tensor-wide bound but far above its own. ``scrub_nan=True`` (clamp mode) maps NaN to 0
    after every clamp (see :func:`_nan_scrub`). With the ``"ranger"`` preset every variant leaves the
    values seen on the calibration data unchanged.
    """
    proto = load_model(model)
    if _opset(proto) < 11:
        raise ActivationError(f"harden() needs opset >= 11 (Clip with tensor bounds); the model has opset "
                              f"{_opset(proto)}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not (np.isfinite(zero_margin) and zero_margin >= 0):
        raise ValueError(f"zero_margin must be a finite number >= 0, got {zero_margin!r}")
    bounds = bounds_of(profile_or_bounds)
    if not bounds:
        raise ActivationError("no bounds to apply: the profile has no activation ranges")
    channel_bounds = _channel_bounds(profile_or_bounds) if per_channel else {}
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
        per_ch = channel_bounds.get(target)
        if mode == "zero":
            new_nodes.extend(_zero_outside(out, names, node, bounds[target], per_ch, zero_margin))
        else:
            new_nodes.extend(_clamp(out, names, node, bounds[target], per_ch, scrub_nan, replaced))
    del out.graph.node[:]
    out.graph.node.extend(new_nodes)
    _drop_unused(out, replaced)
    return out


def _clamp(model, names, node, bounds, per_ch, scrub_nan, replaced) -> list[onnx.NodeProto]:
    """``node`` with its output saturated at the bounds, merged into the node itself where that is exact."""
    target = node.output[0]
    if scrub_nan or per_ch is not None:  # the clamp's output feeds the per-channel clamp or the scrub
        node.output[0] = names("clamped")
    clamped = node.output[0]
    nodes = [node]
    merged = _merged_bounds(model, node, *bounds)
    if merged is not None:
        lo_name, hi_name = _bound_initializers(model, names, *merged)
        node.op_type = "Clip"
        replaced.update(node.input[1:])
        del node.input[1:]
        node.input.extend([lo_name, hi_name])
    else:
        raw = names("unclipped")
        node.output[0] = raw
        nodes += _range_clamp(model, names, raw, clamped, *bounds)
    if per_ch is not None:
        final = names("channel_clamped") if scrub_nan else target
        nodes.extend(_channel_clamp(model, names, clamped, final, *per_ch))
        clamped = final
    if scrub_nan:
        nodes.append(_nan_scrub(clamped, target, names))
    return nodes


def _zero_outside(model, names, node, bounds, per_ch, margin: float) -> list[onnx.NodeProto]:
    """``node`` followed by ``Where(Equal(wide, x), Clip(wide, lo, hi), 0)``, ``wide`` = x clamped to the
    range widened by ``margin`` x its width: NaN, +-Inf and far-out values become 0, near ones are clamped."""
    target = node.output[0]
    raw = names("unrestricted")
    node.output[0] = raw
    nodes = [node]
    lo, hi = (np.asarray(b, np.float32) for b in (per_ch if per_ch is not None else bounds))
    pad = np.float32(margin) * (hi - lo)
    wide, inside, narrow, zero = names("wide"), names("inside"), names("clamped"), names("zero")
    nodes += _range_clamp(model, names, raw, wide, lo - pad, hi + pad)
    nodes.append(helper.make_node("Equal", [wide, raw], [inside], name=names("in_range")))
    nodes += _range_clamp(model, names, wide, narrow, lo, hi)
    model.graph.initializer.append(numpy_helper.from_array(np.array(0, np.float32), zero))
    nodes.append(helper.make_node("Where", [inside, narrow, zero], [target], name=names("zero_outside")))
    return nodes


def _range_clamp(model, names, src: str, dst: str, lo, hi) -> list[onnx.NodeProto]:
    """Clip for scalar bounds, Max/Min for per-channel (array) ones."""
    if np.ndim(lo) == 0:
        lo_name, hi_name = _bound_initializers(model, names, float(lo), float(hi))
        return [helper.make_node("Clip", [src, lo_name, hi_name], [dst], name=names("clip"))]
    return _channel_clamp(model, names, src, dst, lo, hi)


def _channel_bounds(profile: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-channel (lo, hi) bounds shaped to broadcast over axis 1, for tensors with more than one channel."""
    acts = getattr(profile, "activations", profile)
    if not isinstance(acts, ActivationProfile):
        raise ActivationError("per_channel=True needs an ActivationProfile (or a GuardProfile with one): a "
                              "{name: (lo, hi)} mapping has no per-channel ranges")
    out = {}
    for name, t in acts.tensors.items():
        if t.channels > 1 and len(t.channel_lo) == t.channels == len(t.channel_hi) and t.rank >= 2:
            shape = (t.channels,) + (1,) * (t.rank - 2)
            lo = np.maximum(np.asarray(t.channel_lo, np.float32), np.float32(t.lo)).reshape(shape)
            hi = np.minimum(np.asarray(t.channel_hi, np.float32), np.float32(t.hi)).reshape(shape)
            out[name] = (lo, np.maximum(hi, lo))
    return out


def _channel_clamp(model: onnx.ModelProto, names, src: str, dst: str, lo: np.ndarray, hi: np.ndarray
                   ) -> list[onnx.NodeProto]:
    lo_name, hi_name, mid = names("channel_lo"), names("channel_hi"), names("channel_floor")
    model.graph.initializer.extend([numpy_helper.from_array(lo, lo_name),
                                    numpy_helper.from_array(hi, hi_name)])
    return [helper.make_node("Max", [src, lo_name], [mid], name=names("channel_max")),
            helper.make_node("Min", [mid, hi_name], [dst], name=names("channel_min"))]


def _nan_scrub(src: str, dst: str, names) -> onnx.NodeProto:
    """``Shrink`` with lambd=0, bias=0: the identity on every number (-0.0 becomes +0.0) and 0 for NaN.

    Clip, Max, Min and every activation onnxruntime fuses propagate NaN (a flipped exponent bit turns a
    value in [1, 2) into NaN), so a clamp alone cannot contain it; Shrink is the one elementwise operator
    that maps NaN to a number in a single pass (``Where(IsNaN(x), 0, x)`` takes two and a bool tensor).
    """
    return helper.make_node("Shrink", [src], [dst], name=names("scrub_nan"), lambd=0.0, bias=0.0)


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
