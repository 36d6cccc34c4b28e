"""Small ONNX models built with onnx.helper for the in-graph guard tests and benchmarks."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def conv_classifier(*, layout: str = "NCHW", batch: int | str = "N", classes: int = 10, channels: int = 3,
                    softmax: bool = False, opset: int = 17, seed: int = 0, width: int = 8,
                    hw: tuple = ("H", "W"), uint8: bool = False) -> onnx.ModelProto:
    """Conv-ReLU-Conv-ReLU-GlobalAveragePool-Gemm classifier with random weights (logits or softmax);
    ``uint8``: the image input is uint8 pixels, scaled to [0, 1] inside the model."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.5, (width, channels, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(0, 0.1, width).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.normal(0, 0.3, (width, width, 3, 3)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.normal(0, 0.1, width).astype(np.float32), "b2"),
        numpy_helper.from_array(rng.normal(0, 2.0, (width, classes)).astype(np.float32), "wf"),
        numpy_helper.from_array(rng.normal(0, 0.1, classes).astype(np.float32), "bf"),
    ]
    nodes = []
    x = "image"
    if uint8:
        inits.append(numpy_helper.from_array(np.array(255.0, np.float32), "u8_scale"))
        nodes += [helper.make_node("Cast", [x], ["image_f32"], to=TensorProto.FLOAT),
                  helper.make_node("Div", ["image_f32", "u8_scale"], ["image_unit"])]
        x = "image_unit"
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", [x], ["image_nchw"], perm=[0, 3, 1, 2]))
        x = "image_nchw"
    if layout == "NHW":  # grayscale without a channel axis
        inits.append(numpy_helper.from_array(np.array([1], np.int64), "channel_axis"))
        nodes.append(helper.make_node("Unsqueeze", [x, "channel_axis"], ["image_nchw"]))
        x = "image_nchw"
    nodes += [
        helper.make_node("Conv", [x, "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["features"], axis=1),
        helper.make_node("Gemm", ["features", "wf", "bf"], ["logits" if softmax else "out"]),
    ]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["out"], axis=-1))
    in_shape = {"NCHW": [batch, channels, *hw], "NHWC": [batch, *hw, channels], "NHW": [batch, *hw]}[layout]
    graph = helper.make_graph(
        nodes, "conv_classifier",
        [helper.make_tensor_value_info("image", TensorProto.UINT8 if uint8 else TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [batch, classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
