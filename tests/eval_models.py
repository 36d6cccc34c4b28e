"""A tiny trained digits classifier in ONNX for the evaluation tests (scikit-learn MLP, ~1 s to train).

8x8 digits from scikit-learn scaled to [0, 1], NCHW [N, 1, 8, 8]; Flatten -> Gemm -> Relu ("hidden") ->
Gemm -> logits. Undefended, so the attacks must succeed on it.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import onnx
from models import IR_VERSION, OPSET
from onnx import TensorProto, helper, numpy_helper


@functools.cache
def digits_mlp(batch="N") -> tuple[bytes, np.ndarray, np.ndarray]:
    """(model bytes, held-out images float32 [N,1,8,8], labels int64); the model saw other images only."""
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None]
    y = digits.target.astype(np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp = MLPClassifier(hidden_layer_sizes=(32,), max_iter=200, random_state=0)
        mlp.fit(x[:1000].reshape(1000, -1), y[:1000])
    w1, w2 = (w.T.astype(np.float32) for w in mlp.coefs_)
    b1, b2 = (b.astype(np.float32) for b in mlp.intercepts_)
    nodes = [helper.make_node("Flatten", ["image"], ["flat"], axis=1),
             helper.make_node("Gemm", ["flat", "w1", "b1"], ["pre"], transB=1),
             helper.make_node("Relu", ["pre"], ["hidden"]),
             helper.make_node("Gemm", ["hidden", "w2", "b2"], ["logits"], transB=1)]
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))]
    graph = helper.make_graph(nodes, "digits_mlp",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 1, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model.SerializeToString(), x[1000:], y[1000:]


def correct_subset(model: bytes, x: np.ndarray, y: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    pred = sess.run(None, {"image": x})[0].argmax(1)
    ok = np.flatnonzero(pred == y)[:n]
    return np.ascontiguousarray(x[ok]), y[ok]
