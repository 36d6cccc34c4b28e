"""The adaptive (BPDA) attack on the squeezing detector, the ONNX->torch copy and the activation penalty."""

from __future__ import annotations

import warnings

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch")

from eval_models import correct_subset, digits_mlp  # noqa: E402

from pyguard import InferenceSession, calibrate  # noqa: E402
from pyguard.eval.adaptive import (  # noqa: E402
    SqueezeDetector,
    adaptive_pgd,
    non_adaptive,
    range_penalty,
    range_violations,
)
from pyguard.eval.onnx_torch import check_matches, to_torch  # noqa: E402
from pyguard.squeezers import parse  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def demo():
    """The demo model, its torch copy, a profile calibrated like `pyguard demo`, and attackable images."""
    from pyguard.demo import calibrate_demo, load_demo

    d = load_demo()
    profile = calibrate_demo(d)
    sess = InferenceSession(d["model"], profile=profile)
    module = to_torch(d["model"])
    x, y = correct_subset(open(d["model"], "rb").read(), d["test_x"], d["test_y"], 96)
    return d, profile, sess, module, x, y


def guard_verdicts(sess, x, y):
    out, report = sess.run_with_report(None, {"image": x})
    wrong = out[0].argmax(1) != y
    return wrong, report.flagged


def test_torch_copy_matches_onnxruntime(demo):
    d, _, _, module, _, _ = demo
    sess = ort.InferenceSession(d["model"], providers=["CPUExecutionProvider"])
    assert check_matches(module, sess, d["test_x"]) < 1e-4
    model, x, _ = digits_mlp()
    assert check_matches(to_torch(model), ort.InferenceSession(model), x) < 1e-4


def test_torch_copy_rejects_unknown_operators():
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Erf", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(NotImplementedError, match="Erf"):
        to_torch(model)(torch.zeros(1, 2))


def test_straight_through_squeeze(demo):
    _, profile, _, _, x, _ = demo
    det = SqueezeDetector(profile)
    xt = torch.from_numpy(x[:4]).requires_grad_(True)
    squeezer = parse("median:2")
    out = det._fn.apply(xt, det._numpy_squeeze(squeezer))
    expected = squeezer.apply(x[:4], np.empty_like(x[:4]), layout="NCHW")
    assert np.array_equal(out.detach().numpy(), expected)  # forward: the native squeezer
    weights = torch.randn_like(out)
    (grad,) = torch.autograd.grad((out * weights).sum(), xt)
    assert torch.equal(grad, weights)  # backward: the identity (BPDA)


def test_detector_scores_match_the_session(demo):
    d, profile, sess, module, _, _ = demo
    x = d["attacks"]["CW L2 conf=0"]["x"][:64]
    _, report = sess.run_with_report(None, {"image": x})
    with torch.no_grad():
        scores = SqueezeDetector(profile).scores(module, torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(scores, report.scores["squeeze"], atol=1e-5)


def test_adaptive_lowers_detection_at_the_same_budget(demo):
    _, profile, sess, module, x, y = demo
    budget = {"eps": 0.1, "step": 0.02, "steps": 20}
    base = non_adaptive(module, x, y, **budget)
    adv = adaptive_pgd(module, x, y, profile, **budget)
    assert np.abs(adv - x).max() <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    base_wrong, base_flag = guard_verdicts(sess, base, y)
    adv_wrong, adv_flag = guard_verdicts(sess, adv, y)
    base_rate, adv_rate = base_flag[base_wrong].mean(), adv_flag[adv_wrong].mean()
    assert adv_rate < base_rate - 0.03, (base_rate, adv_rate)
    # and more adversarial examples get through undetected
    assert (adv_wrong & ~adv_flag).sum() > (base_wrong & ~base_flag).sum()


def test_activation_penalty_keeps_ranges():
    model, x, y = digits_mlp()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        profile = calibrate(model, x[:300], fpr=0.05, input_range=(0.0, 1.0))
    xs, ys = correct_subset(model, x[300:], y[300:], 64)
    module = to_torch(model)
    with torch.no_grad():
        hidden = module.run(torch.from_numpy(x[:300]), keep=["hidden"])["hidden"]
    bounds = {"hidden": (0.0, float(np.quantile(hidden.amax(1).numpy(), 0.9)))}  # a tight ("p90") bound
    rates = []
    for b in ({}, bounds):
        adv = adaptive_pgd(module, xs, ys, profile, eps=0.3, steps=20, bounds=b)
        with torch.no_grad():
            env = module.run(torch.from_numpy(adv), keep=["hidden"])
        assert (env["logits"].argmax(1).numpy() != ys).mean() > 0.9
        rates.append(range_violations(env, bounds)["hidden"].mean())
    assert rates[0] > 0 and rates[1] < rates[0]


def test_range_penalty_hand_case():
    acts = {"a": torch.tensor([[0.0, 2.0, 3.0], [0.5, 0.5, 0.5]]), "b": torch.tensor([[-1.0], [0.0]])}
    bounds = {"a": (0.0, 2.0), "b": (0.0, 1.0)}
    np.testing.assert_allclose(range_penalty(acts, bounds).numpy(), [0.5 + 1.0, 0.0])
    v = range_violations(acts, bounds)
    assert v["a"].tolist() == [True, False] and v["b"].tolist() == [True, False]


def test_profile_without_squeezers_is_rejected(demo):
    _, profile, _, module, x, y = demo
    from dataclasses import replace

    with pytest.raises(ValueError, match="no squeezers"):
        adaptive_pgd(module, x[:2], y[:2], replace(profile, squeezers=[], purifier=None))
