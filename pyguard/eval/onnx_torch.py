"""A differentiable PyTorch copy of a small ONNX classifier, for white-box and adaptive attacks.

The demo ships only ``model.onnx``; the gradient-based attacks need a torch module. :func:`to_torch`
interprets the graph node by node with torch operators (weights are copied from the initializers), so
gradients flow to the input and any intermediate tensor can be read by its ONNX name (the adaptive attack
penalizes activations outside the profiled ranges). It covers the operators of common CNN classifiers
(Conv, Gemm, MatMul, pooling, ReLU family, BatchNormalization, Flatten/Reshape, Add/Mul/Sub/Div, Concat,
Softmax); anything else raises ``NotImplementedError`` naming the operator. :func:`check_matches` compares
it with onnxruntime.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("pyguard.eval white-box attacks need PyTorch: pip install torch") from exc
    return torch


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _pads_2d(attrs: dict, kernel: Sequence[int]) -> tuple[int, ...]:
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        raise NotImplementedError("auto_pad SAME_* is not supported; export with explicit pads")
    pads = list(attrs.get("pads", [0] * (2 * len(kernel))))
    return tuple(pads)


def _symmetric(pads: Sequence[int]):
    half = len(pads) // 2
    begin, end = pads[:half], pads[half:]
    return tuple(begin) if list(begin) == list(end) else None


def _pad_input(torch, x, pads, value=0.0):
    """Asymmetric ONNX pads [b1, b2, e1, e2] applied explicitly (torch's F.pad wants the last axis first)."""
    half = len(pads) // 2
    spec = []
    for axis in reversed(range(half)):
        spec += [pads[axis], pads[half + axis]]
    return torch.nn.functional.pad(x, spec, value=value)


def _make_module_class():
    torch = _torch()
    F = torch.nn.functional

    class OnnxModule(torch.nn.Module):
        """Evaluates the ONNX graph with torch ops; ``forward(x)`` returns the chosen output."""

        def __init__(self, model, input_name: str, output_name: str):
            super().__init__()
            from onnx import numpy_helper

            self.graph = model.graph
            self.input_name, self.output_name = input_name, output_name
            self._consts = {}
            for i, init in enumerate(model.graph.initializer):
                arr = numpy_helper.to_array(init).copy()
                t = torch.from_numpy(arr)
                if t.is_floating_point():
                    self.register_buffer(f"w{i}", t)
                    self._consts[init.name] = f"w{i}"
                else:
                    self._consts[init.name] = t

        def _const(self, name):
            ref = self._consts[name]
            return getattr(self, ref) if isinstance(ref, str) else ref

        def forward(self, x):
            return self.run(x)[self.output_name]

        def run(self, x, keep: Sequence[str] = ()):
            """Every value needed for the output; ``keep`` names intermediate tensors to return too."""
            env = {self.input_name: x}
            for name in self._consts:
                env[name] = self._const(name)
            for node in self.graph.node:
                outs = _apply(torch, F, node, [env[n] if n else None for n in node.input])
                for name, value in zip(node.output, outs):
                    if name:
                        env[name] = value
            wanted = {self.output_name, *keep}
            return {k: env[k] for k in wanted}

    return OnnxModule


def _apply(torch, F, node, inputs):
    op, a = node.op_type, _attrs(node)
    if node.domain not in ("", "ai.onnx"):
        raise NotImplementedError(f"operator {node.domain}.{op} is not supported by pyguard.eval.to_torch")
    if op == "Conv":
        x, w = inputs[0], inputs[1]
        b = inputs[2] if len(inputs) > 2 else None
        k = list(w.shape[2:])
        pads = _pads_2d(a, k)
        sym = _symmetric(pads)
        if sym is None:
            x, sym = _pad_input(torch, x, pads), (0,) * len(k)
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[len(k)]
        return [conv(x, w, b, stride=a.get("strides", 1), padding=sym, dilation=a.get("dilations", 1),
                     groups=a.get("group", 1))]
    if op in ("MaxPool", "AveragePool"):
        x, k = inputs[0], list(a["kernel_shape"])
        pads = _pads_2d(a, k)
        sym = _symmetric(pads)
        strides = a.get("strides", [1] * len(k))
        if op == "MaxPool":
            if sym is None:
                x, sym = _pad_input(torch, x, pads, value=-float("inf")), (0,) * len(k)
            pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[len(k)]
            return [pool(x, k, strides, sym, a.get("dilations", 1), bool(a.get("ceil_mode", 0)))]
        if sym is None:
            raise NotImplementedError("AveragePool with asymmetric pads")
        pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[len(k)]
        return [pool(x, k, strides, sym, bool(a.get("ceil_mode", 0)),
                     count_include_pad=bool(a.get("count_include_pad", 0)))]
    if op == "GlobalAveragePool":
        return [inputs[0].mean(dim=tuple(range(2, inputs[0].dim())), keepdim=True)]
    if op == "GlobalMaxPool":
        return [inputs[0].amax(dim=tuple(range(2, inputs[0].dim())), keepdim=True)]
    if op == "Relu":
        return [F.relu(inputs[0])]
    if op == "LeakyRelu":
        return [F.leaky_relu(inputs[0], a.get("alpha", 0.01))]
    if op == "Sigmoid":
        return [torch.sigmoid(inputs[0])]
    if op == "Tanh":
        return [torch.tanh(inputs[0])]
    if op == "Clip":
        lo = inputs[1] if len(inputs) > 1 and inputs[1] is not None else a.get("min")
        hi = inputs[2] if len(inputs) > 2 and inputs[2] is not None else a.get("max")
        lo = float(lo) if lo is not None else None
        hi = float(hi) if hi is not None else None
        return [inputs[0].clamp(lo, hi)]
    if op == "Flatten":
        axis = a.get("axis", 1)
        x = inputs[0]
        axis = axis if axis >= 0 else x.dim() + axis
        return [x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)]
    if op == "Reshape":
        shape = [int(v) for v in inputs[1].tolist()]
        x = inputs[0]
        shape = [x.shape[i] if s == 0 and not a.get("allowzero", 0) else s for i, s in enumerate(shape)]
        return [x.reshape(shape)]
    if op == "Gemm":
        x, w = inputs[0], inputs[1]
        if a.get("transA", 0):
            x = x.t()
        if a.get("transB", 0):
            w = w.t()
        y = a.get("alpha", 1.0) * (x @ w)
        if len(inputs) > 2 and inputs[2] is not None:
            y = y + a.get("beta", 1.0) * inputs[2]
        return [y]
    if op == "MatMul":
        return [inputs[0] @ inputs[1]]
    if op in ("Add", "Sub", "Mul", "Div"):
        fn = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div}[op]
        return [fn(inputs[0], inputs[1])]
    if op == "BatchNormalization":
        x, scale, bias, mean, var = inputs[:5]
        return [F.batch_norm(x, mean, var, scale, bias, training=False, eps=a.get("epsilon", 1e-5))]
    if op == "Softmax":
        return [F.softmax(inputs[0], dim=a.get("axis", -1))]
    if op == "Concat":
        return [torch.cat(inputs, dim=a["axis"])]
    if op in ("Identity", "Dropout"):
        return [inputs[0]]
    if op == "Constant":
        from onnx import numpy_helper

        return [torch.from_numpy(numpy_helper.to_array(a["value"]).copy())]
    raise NotImplementedError(f"operator {op} is not supported by pyguard.eval.to_torch; "
                              "pass your own torch model instead")


def to_torch(model, *, input_name: str | None = None, output_name: str | None = None):
    """A ``torch.nn.Module`` computing ``output_name`` of the ONNX ``model`` (path, bytes or ModelProto).

    The module is in eval mode; ``module.run(x, keep=[...])`` also returns named intermediate tensors.
    """
    import onnx

    if isinstance(model, (bytes, bytearray)):
        proto = onnx.load_model_from_string(bytes(model))
    elif isinstance(model, onnx.ModelProto):
        proto = model
    else:
        proto = onnx.load(str(model))
    initializers = {i.name for i in proto.graph.initializer}
    inputs = [i.name for i in proto.graph.input if i.name not in initializers]
    if input_name is None:
        if len(inputs) != 1:
            raise ValueError(f"the model has inputs {inputs}; pass input_name")
        input_name = inputs[0]
    output_name = output_name or proto.graph.output[0].name
    return _make_module_class()(proto, input_name, output_name).eval()


def check_matches(module, session, x: np.ndarray, *, atol: float = 1e-4) -> float:
    """Max abs difference between the torch copy and onnxruntime on ``x``; raises above ``atol``."""
    torch = _torch()
    with torch.no_grad():
        got = module(torch.from_numpy(np.ascontiguousarray(x))).numpy()
    want = session.run([module.output_name], {module.input_name: x})[0]
    err = float(np.abs(got - want).max())
    if err > atol:
        raise ValueError(f"the torch copy differs from onnxruntime by {err} (> {atol})")
    return err


__all__ = ["to_torch", "check_matches"]
