"""Small ONNX models built with onnx.helper for the session, calibration and patch tests.

Random but fixed weights (seeded): a conv -> relu -> pool -> dense classifier in several shapes, so the
guard is exercised with dynamic and fixed batch, NCHW and NHWC inputs, logits and softmax outputs, and a
model with several inputs and outputs.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 9  # onnxruntime 1.31 reads IR <= 13; onnx 1.23 would write 14 by default


def _init(rng, name, shape, scale):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def classifier(*, batch="N", layout="NCHW", channels=3, size=16, classes=10, outputs=("logits",),
               dtype=TensorProto.FLOAT, denormalize=None, seed=0) -> bytes:
    """conv3x3(8) -> relu -> maxpool2 -> dense(classes); outputs any of "logits", "probs", "features".

    ``denormalize=(mean, std)`` (NCHW, per channel) makes the model take ``(pixel - mean) / std`` and undo it
    first, so it computes exactly what the plain model computes on the pixels."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    x = "image"
    if denormalize is not None:
        mean, std = (np.asarray(v, np.float32).reshape(1, -1, 1, 1) for v in denormalize)
        inits += [numpy_helper.from_array(std, "norm_std"), numpy_helper.from_array(mean, "norm_mean")]
        nodes += [helper.make_node("Mul", [x, "norm_std"], ["x_scaled"]),
                  helper.make_node("Add", ["x_scaled", "norm_mean"], ["x_pixels"])]
        x = "x_pixels"
    if dtype == TensorProto.UINT8:
        nodes.append(helper.make_node("Cast", [x], ["x_f"], to=TensorProto.FLOAT))
        nodes.append(helper.make_node("Div", ["x_f", "c255"], ["x_unit"]))
        inits.append(numpy_helper.from_array(np.array(255.0, np.float32), "c255"))
        x = "x_unit"
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", [x], ["x_nchw"], perm=[0, 3, 1, 2]))
        x = "x_nchw"
    elif layout == "NHW":
        inits.append(numpy_helper.from_array(np.array([1], np.int64), "channel_axis"))
        nodes.append(helper.make_node("Unsqueeze", [x, "channel_axis"], ["x_nchw"]))
        x = "x_nchw"
    inits += [_init(rng, "W1", (8, channels, 3, 3), 0.5), _init(rng, "B1", (8,), 0.1),
              _init(rng, "W2", (8 * (size // 2) ** 2, classes), 0.3), _init(rng, "B2", (classes,), 0.1)]
    nodes += [
        helper.make_node("Conv", [x, "W1", "B1"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("MaxPool", ["relu"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pool"], ["features"]),
        helper.make_node("MatMul", ["features", "W2"], ["mm"]),
        helper.make_node("Add", ["mm", "B2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    shape = {"NCHW": [batch, channels, size, size], "NHWC": [batch, size, size, channels],
             "NHW": [batch, size, size]}[layout]
    dims = {"logits": [batch, classes], "probs": [batch, classes], "features": [batch, 8 * (size // 2) ** 2]}
    graph = helper.make_graph(
        nodes, "classifier", [helper.make_tensor_value_info("image", dtype, shape)],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, dims[o]) for o in outputs], inits)
    return _serialize(graph)


def two_inputs(*, size=12, classes=5, seed=1) -> bytes:
    """Inputs: image [N,3,size,size] and gain [N,1]; outputs: probs [N,classes] and logits [N,classes].

    The gain scales the logits per sample, so a joint run must tile it with the image."""
    rng = np.random.default_rng(seed)
    inits = [_init(rng, "W1", (4, 3, 3, 3), 0.5), _init(rng, "W2", (4 * size * size, classes), 0.2)]
    nodes = [
        helper.make_node("Conv", ["image", "W1"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("Flatten", ["relu"], ["flat"]),
        helper.make_node("MatMul", ["flat", "W2"], ["raw"]),
        helper.make_node("Mul", ["raw", "gain"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "two_inputs",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size]),
         helper.make_tensor_value_info("gain", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", classes]),
         helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])], inits)
    return _serialize(graph)


def _serialize(graph) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def images(n, *, layout="NCHW", channels=3, size=16, seed=0, dtype=np.float32) -> np.ndarray:
    """Smooth random images in [0, 1] (low-frequency blobs, so median smoothing changes little)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((n, channels, size // 4 + 1, size // 4 + 1))
    img = np.repeat(np.repeat(coarse, 4, axis=2), 4, axis=3)[:, :, :size, :size]
    img = np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1)
    if layout == "NHWC":
        img = img.transpose(0, 2, 3, 1)
    if dtype == np.uint8:
        return np.ascontiguousarray(np.rint(img * 255).astype(np.uint8))
    return np.ascontiguousarray(img.astype(np.float32))
