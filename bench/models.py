"""Benchmark models: ResNet-18- and MobileNetV2-shaped ONNX graphs with seeded random weights.

Built with ``onnx.helper`` (no download, no torch), for timing only: the weights are random (He init, so
activations stay finite), batch normalization is folded into the convolution biases. Input ``image``
float32 ``[N, 3, 224, 224]`` (dynamic batch), output ``logits`` ``[N, 1000]``, opset 17. The files are
cached under ``build/bench_models/`` (or ``$PYGUARD_BENCH_MODELS``) and never committed.

    python bench/models.py     # builds both and prints single-thread onnxruntime latencies
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
INPUT, OUTPUT = "image", "logits"
BUILDER_VERSION = 1  # bump when the graphs change, so cached files are rebuilt
DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[1] / "build" / "bench_models"
CACHE_DIR = Path(os.environ.get("PYGUARD_BENCH_MODELS", DEFAULT_CACHE_DIR))

MOBILENETV2_BLOCKS = [  # (expansion t, output channels c, repeats n, first stride s), from the paper
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
]


class GraphBuilder:
    """Accumulates nodes and seeded He-initialized weights for a convolutional graph."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.counts: dict[str, int] = {}

    def name(self, kind: str) -> str:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return f"{kind}_{self.counts[kind]}"

    def weight(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
             gain: float = 1.0) -> str:
        name = self.name("conv")
        fan_in = cin // groups * k * k
        w = self.rng.standard_normal((cout, cin // groups, k, k)) * gain * np.sqrt(2.0 / fan_in)
        b = self.rng.standard_normal(cout) * 0.01
        self.nodes.append(helper.make_node(
            "Conv", [x, self.weight(f"{name}.w", w), self.weight(f"{name}.b", b)], [name],
            kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4, group=groups, name=name))
        return name

    def op(self, op_type: str, inputs: list[str], **attrs) -> str:
        name = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attrs))
        return name

    def relu(self, x: str) -> str:
        return self.op("Relu", [x])

    def relu6(self, x: str) -> str:
        if "clip.min" not in {t.name for t in self.initializers}:
            self.weight("clip.min", np.array(0.0))
            self.weight("clip.max", np.array(6.0))
        return self.op("Clip", [x, "clip.min", "clip.max"])

    def classifier(self, x: str, features: int, classes: int = 1000) -> str:
        pooled = self.op("Flatten", [self.op("GlobalAveragePool", [x])], axis=1)
        w = self.rng.standard_normal((classes, features)) * np.sqrt(1.0 / features)
        self.nodes.append(helper.make_node(
            "Gemm", [pooled, self.weight("fc.w", w), self.weight("fc.b", np.zeros(classes))], [OUTPUT],
            transB=1, name="fc"))
        return OUTPUT

    def model(self, graph_name: str) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, graph_name,
            [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", 3, 224, 224])],
            [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", 1000])],
            self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="pyguard-bench")
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        return model


def build_resnet18(seed: int = 18) -> onnx.ModelProto:
    """ResNet-18 layout: conv7x7/2, maxpool, 4 stages of 2 basic blocks (64..512), 17 Relu, GAP, Gemm."""
    g = GraphBuilder(seed)
    x = g.relu(g.conv(INPUT, 3, 64, 7, stride=2))
    x = g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for stage, cout in enumerate((64, 128, 256, 512)):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            shortcut = x if stride == 1 and cin == cout else g.conv(x, cin, cout, 1, stride=stride)
            y = g.relu(g.conv(x, cin, cout, 3, stride=stride))
            # The residual branch's last conv is scaled down so activations do not double at every block.
            y = g.conv(y, cout, cout, 3, gain=0.5)
            x = g.relu(g.op("Add", [y, shortcut]))
            cin = cout
    g.classifier(x, 512)
    return g.model("resnet18_shaped")


def build_mobilenetv2(seed: int = 2) -> onnx.ModelProto:
    """MobileNetV2 layout: inverted residuals with depthwise 3x3 convs and Clip(0, 6) (35 Clip), GAP, Gemm."""
    g = GraphBuilder(seed)
    x = g.relu6(g.conv(INPUT, 3, 32, 3, stride=2))
    cin = 32
    for t, c, n, s in MOBILENETV2_BLOCKS:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            y = x if t == 1 else g.relu6(g.conv(x, cin, hidden, 1))
            y = g.relu6(g.conv(y, hidden, hidden, 3, stride=stride, groups=hidden))
            y = g.conv(y, hidden, c, 1, gain=0.5)  # linear bottleneck
            x = g.op("Add", [x, y]) if stride == 1 and cin == c else y
            cin = c
    x = g.relu6(g.conv(x, cin, 1280, 1))
    g.classifier(x, 1280)
    return g.model("mobilenetv2_shaped")


def _cached(filename: str, build) -> Path:
    path = CACHE_DIR / f"{filename}.v{BUILDER_VERSION}.onnx"
    if not path.is_file():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        onnx.save(build(), str(tmp))
        os.replace(tmp, path)  # atomic: concurrent builders never see a partial file
    return path


def resnet18_path() -> Path:
    """Path of the cached ResNet-18-shaped model (built on first use)."""
    return _cached("resnet18_shaped", build_resnet18)


def mobilenetv2_path() -> Path:
    """Path of the cached MobileNetV2-shaped model (built on first use)."""
    return _cached("mobilenetv2_shaped", build_mobilenetv2)


def single_thread_session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def median_latency_ms(sess, x: np.ndarray, repeats: int = 30) -> float:
    sess.run(None, {INPUT: x})  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sess.run(None, {INPUT: x})
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def main() -> None:
    rng = np.random.default_rng(0)
    for name, path_fn in (("ResNet-18-shaped", resnet18_path), ("MobileNetV2-shaped", mobilenetv2_path)):
        path = path_fn()
        model = onnx.load(str(path))
        ops = [n.op_type for n in model.graph.node]
        sess = single_thread_session(path)
        for batch in (1, 3):
            x = rng.uniform(size=(batch, 3, 224, 224)).astype(np.float32)
            logits = sess.run(None, {INPUT: x})[0]
            assert logits.shape == (batch, 1000) and np.isfinite(logits).all()
            print(f"{name} batch {batch}: {median_latency_ms(sess, x):.2f} ms (1 thread), "
                  f"|logits| max {np.abs(logits).max():.3g}; Relu {ops.count('Relu')}, "
                  f"Clip {ops.count('Clip')}, Add {ops.count('Add')}, {path.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
