"""pyguard.InferenceSession in graph mode (the in-graph guard run by onnxruntime, report from its small
outputs) vs native mode (native squeezer kernels, batched onnxruntime run), same profile, 1 thread, CPU.

No goal: on the CPU provider native mode is expected to win (its kernels are faster than the standard-op
squeezers); graph mode is for devices, where it saves the host round trip. The row records the cost.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from bench_graph import MODELS, SQUEEZERS, profile_for
from conftest import tag

import pyguard


def guarded(model, mode: str) -> pyguard.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return pyguard.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"],
                                    profile=profile_for(model), guard_mode=mode)


@pytest.fixture(scope="module", params=list(MODELS))
def case(request, image_nchw):
    model = MODELS[request.param]()
    return request.param, model, {model.graph.input[0].name: image_nchw}


def target(name: str) -> str:
    return f"guard_mode graph vs native session {'+'.join(SQUEEZERS)}, {name} 1x3x224x224"


@pytest.mark.parametrize("mode", ["native", "graph"])
def test_session(benchmark, case, mode):
    name, model, feed = case
    sess = guarded(model, mode)
    assert sess.guard_mode == mode
    tag(benchmark, target(name), "anchor" if mode == "native" else "ours")
    out = benchmark(sess.run, None, feed)
    assert np.isfinite(out[0]).all()
