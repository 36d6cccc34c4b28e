"""The benchmark models of bench/models.py have the advertised shape and run in onnxruntime."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest


def _load_bench_models():
    """bench/models.py under its own module name: tests/models.py is the tests' ``models``."""
    path = Path(__file__).resolve().parents[1] / "bench" / "models.py"
    spec = importlib.util.spec_from_file_location("pyguard_bench_models", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


models = _load_bench_models()

EXPECTED = {
    "resnet18": (models.build_resnet18, {"Conv": 20, "Relu": 17, "Add": 8, "MaxPool": 1, "Gemm": 1}),
    "mobilenetv2": (models.build_mobilenetv2, {"Conv": 52, "Clip": 35, "Add": 10, "Gemm": 1}),
}


@pytest.fixture(scope="module", params=list(EXPECTED))
def built(request):
    build, counts = EXPECTED[request.param]
    return build(), counts, build


def test_structure(built):
    model, counts, _ = built
    ops = Counter(node.op_type for node in model.graph.node)
    assert {op: ops[op] for op in counts} == counts
    assert ops["GlobalAveragePool"] == 1
    assert model.opset_import[0].version == models.OPSET
    (inp,) = model.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert inp.name == models.INPUT and dims[0].dim_param == "N"
    assert [d.dim_value for d in dims[1:]] == [3, 224, 224]
    onnx.checker.check_model(model, full_check=True)


def test_runs_with_dynamic_batch(built):
    model, _, _ = built
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(size=(2, 3, 224, 224)).astype(np.float32)
    (logits,) = sess.run(None, {models.INPUT: x})
    assert logits.shape == (2, 1000) and np.isfinite(logits).all()
    assert np.abs(logits).max() > 1e-3  # He init keeps the signal alive through the whole depth
    assert not np.allclose(logits[0], logits[1])
    np.testing.assert_allclose(sess.run(None, {models.INPUT: x[:1]})[0], logits[:1], rtol=1e-4, atol=1e-5)


def test_seeded(built):
    model, _, build = built
    assert build().SerializeToString() == model.SerializeToString()
