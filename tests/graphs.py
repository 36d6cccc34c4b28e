"""Small ONNX graphs built with onnx.helper for the activation / harden / fault tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class GraphBuilder:
    def __init__(self, seed: int = 0, opset: int = 17):
        self.nodes: list = []
        self.inits: list = []
        self.rng = np.random.default_rng(seed)
        self.count = 0
        self.opset = opset

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, value, prefix: str = "c") -> str:
        name = self.fresh(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def op(self, op_type: str, inputs: list[str], out: str | None = None, **attrs) -> str:
        out = out or self.fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out + "_node", **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int = 3, out: str | None = None) -> str:
        w = self.const(self.rng.normal(0, np.sqrt(2.0 / (k * k * cin)), (cout, cin, k, k)), "w")
        b = self.const(self.rng.normal(0, 0.05, cout), "b")
        return self.op("Conv", [x, w, b], out, kernel_shape=[k, k], pads=[k // 2] * 4)

    def dense(self, x: str, fin: int, fout: int, out: str | None = None) -> str:
        w = self.const(self.rng.normal(0, np.sqrt(1.0 / fin), (fin, fout)), "fc")
        b = self.const(np.zeros(fout), "fcb")
        return self.op("Gemm", [x, w, b], out)

    def model(self, inputs: list[tuple[str, list]], outputs: list[str]) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, "test",
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", None]) for n in outputs], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def residual_cnn(batch="N", hw=(8, 8), classes: int = 10, seed: int = 0) -> onnx.ModelProto:
    """Conv-Relu, a residual block (Add then Relu), a branch joined by Concat, pooled, then Gemm."""
    g = GraphBuilder(seed)
    h = g.op("Relu", [g.conv("input", 1, 8)], "stem_relu")
    r = g.op("Relu", [g.conv(h, 8, 8)], "block_relu")
    r = g.conv(r, 8, 8)
    h = g.op("Relu", [g.op("Add", [h, r], "residual_add")], "residual_relu")
    a = g.op("Sigmoid", [g.conv(h, 8, 4)], "branch_sigmoid")
    b = g.op("LeakyRelu", [g.conv(h, 8, 4)], "branch_leaky", alpha=0.1)
    h = g.op("Concat", [a, b], "concat", axis=1)
    h = g.op("Flatten", [g.op("GlobalAveragePool", [h])], axis=1)
    g.dense(h, 8, classes, "logits")
    return g.model([("input", [batch, 1, *hw])], ["logits"])


def two_output_mlp(seed: int = 1) -> onnx.ModelProto:
    """Dynamic batch MLP with Tanh and Relu, and two outputs (logits and a hidden feature)."""
    g = GraphBuilder(seed)
    h = g.op("Tanh", [g.dense("input", 16, 32)], "hidden_tanh")
    f = g.op("Relu", [g.dense(h, 32, 16)], "feature")
    g.dense(f, 16, 5, "logits")
    return g.model([("input", ["N", 16])], ["logits", "feature"])


def conv_relu6_chain(seed: int = 2) -> onnx.ModelProto:
    """Conv -> Relu / Conv -> Clip(0, 6), 16x16 input: shapes where onnxruntime fuses the activation."""
    g = GraphBuilder(seed)
    h = g.op("Relu", [g.conv("input", 3, 16)], "relu_a")
    h = g.op("Clip", [g.conv(h, 16, 16), g.const(0.0), g.const(6.0)], "relu6_b")
    h = g.op("Flatten", [g.op("GlobalAveragePool", [h])], axis=1)
    g.dense(h, 16, 4, "logits")
    return g.model([("input", ["N", 3, 16, 16])], ["logits"])


def no_activation_model() -> onnx.ModelProto:
    g = GraphBuilder(3)
    g.dense("input", 4, 3, "logits")
    return g.model([("input", ["N", 4])], ["logits"])


def conv_without_activation() -> onnx.ModelProto:
    """An image classifier with no activation operator (Conv, pooling, Gemm)."""
    g = GraphBuilder(4)
    h = g.op("Flatten", [g.op("GlobalAveragePool", [g.conv("input", 1, 4)])], axis=1)
    g.dense(h, 4, 3, "logits")
    return g.model([("input", ["N", 1, 8, 8])], ["logits"])
