"""The bundled digits demo: files load, are consistent with each other and with what meta.json claims."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from pyguard.data import DIGITS_DIR, DigitsDemo, load_digits_demo

EXPECTED_ATTACKS = {"fgsm_0.1", "fgsm_0.3", "bim_0.1", "bim_0.3", "cw_l2_0", "cw_l2_10", "deepfool", "jsma"}


@pytest.fixture(scope="module")
def demo() -> DigitsDemo:
    return load_digits_demo()


@pytest.fixture(scope="module")
def session(demo):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(demo.model_path), opts, providers=["CPUExecutionProvider"])


def predict(session, x: np.ndarray) -> np.ndarray:
    return session.run(["logits"], {"image": x})[0].argmax(1)


def test_files_are_small():
    total = sum(f.stat().st_size for f in DIGITS_DIR.iterdir())
    assert total < 10e6


def test_model_interface(demo):
    model = onnx.load(str(demo.model_path))
    onnx.checker.check_model(model)
    assert any(op.domain in ("", "ai.onnx") and op.version == 17 for op in model.opset_import)
    (inp,) = model.graph.input
    (out,) = model.graph.output
    assert inp.name == "image" and out.name == "logits"
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, 28, 28]
    assert demo.model_bytes() == demo.model_path.read_bytes()


@pytest.mark.parametrize("split", ["calib", "test"])
def test_clean_splits(demo, session, split):
    x, y = getattr(demo, f"x_{split}"), getattr(demo, f"y_{split}")
    assert x.dtype == np.float32 and x.shape[1:] == (1, 28, 28) and x.flags.c_contiguous
    assert y.dtype == np.int64 and y.shape == (len(x),)
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert set(np.unique(y)) == set(range(10))
    accuracy = float((predict(session, x) == y).mean())
    assert accuracy == pytest.approx(demo.meta["accuracy"][split], abs=1e-4)
    assert accuracy >= 0.97


def test_splits_are_disjoint(demo):
    calib = {a.tobytes() for a in demo.x_calib}
    assert not any(a.tobytes() in calib for a in demo.x_test)
    assert (len(demo.x_calib), len(demo.x_test)) == (400, 397)


def test_adversarial_examples(demo, session):
    assert set(demo.attacks) == EXPECTED_ATTACKS
    for name, (x_adv, idx) in demo.adversarial.items():
        stats = demo.meta["attacks"][name]
        assert x_adv.dtype == np.float32 and x_adv.shape == (len(idx), 1, 28, 28)
        assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
        assert idx.dtype == np.int64 and (0 <= idx).all() and (idx < len(demo.x_test)).all()
        y = demo.y_test[idx]
        assert (predict(session, demo.x_test[idx]) == y).all(), "only correct images are attacked"
        success = float((predict(session, x_adv) != y).mean())
        assert success == pytest.approx(stats["success_rate"], abs=1e-4), name
        if "eps" in stats["params"]:
            delta = np.abs(x_adv - demo.x_test[idx]).max()
            assert delta <= stats["params"]["eps"] + 1e-6, name
    for name in ("fgsm_0.3", "bim_0.3", "cw_l2_0", "deepfool"):
        assert demo.meta["attacks"][name]["success_rate"] >= 0.9, name
