"""Black-box attacks (Square L-inf/L2, SimBA pixel/DCT) on a tiny undefended digits MLP via onnxruntime."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from eval_models import correct_subset, digits_mlp

from pyguard.eval import blackbox as bb

N = 32
BUDGET = 300
EPS = 0.3


@pytest.fixture(scope="module")
def tiny():
    model, x, y = digits_mlp()
    xs, ys = correct_subset(model, x, y, N)
    return model, xs, ys


def predict(model: bytes, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return sess.run(None, {"image": np.ascontiguousarray(x)})[0].argmax(1)


ATTACKS = {
    "square_linf": (lambda m, x, y, **kw: bb.square_linf(m, x, y, EPS, max_queries=BUDGET, **kw),
                    "linf", EPS),
    "square_l2": (lambda m, x, y, **kw: bb.square_l2(m, x, y, 2.0, max_queries=BUDGET, **kw), "l2", 2.0),
    "simba_pixel": (lambda m, x, y, **kw: bb.simba(m, x, y, step=EPS, linf=EPS, max_queries=BUDGET, **kw),
                    "linf", EPS),
    "simba_dct": (lambda m, x, y, **kw: bb.simba(m, x, y, step=1.0, basis="dct", linf=EPS, max_queries=BUDGET,
                                                 **kw), "linf", EPS),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_succeeds_within_budget_and_ball(tiny, name):
    model, x, y = tiny
    attack, norm, eps = ATTACKS[name]
    qm = bb.QueryModel(model)
    r = attack(qm, x, y)
    assert r.x_adv.dtype == np.float32 and r.x_adv.shape == x.shape
    assert r.x_adv.min() >= 0.0 and r.x_adv.max() <= 1.0
    delta = (r.x_adv.astype(np.float64) - x).reshape(len(x), -1)
    size = np.abs(delta).max(1) if norm == "linf" else np.linalg.norm(delta, axis=1)
    assert size.max() <= eps + 1e-5
    # Success as reported is what onnxruntime says about the returned images, and the attack works.
    assert np.array_equal(r.success, predict(model, r.x_adv) != y)
    assert r.success.mean() >= 0.9, f"{name}: success {r.success.mean():.2f}"
    # Query counts: every image sent to the model is counted once, against the right sample, within budget.
    assert r.queries.min() >= 1 and r.queries.max() <= BUDGET
    assert qm.images == int(r.queries.sum())


class Stubborn:
    """A model that is never fooled: constant scores, so every candidate is rejected."""

    def __init__(self):
        self.images = 0

    def __call__(self, x):
        self.images += len(x)
        out = np.zeros((len(x), 10), np.float32)
        out[:, 3] = 5.0
        return out


@pytest.mark.parametrize("name", list(ATTACKS))
def test_failed_images_spend_exactly_the_budget(name):
    x = np.random.default_rng(0).random((5, 1, 8, 8), dtype=np.float32)
    y = np.full(5, 3)
    model = Stubborn()
    r = ATTACKS[name][0](model, x, y)
    assert not r.success.any()
    expected = BUDGET if name.startswith("square") else min(BUDGET, 1 + 2 * 64)  # SimBA: 64 basis vectors
    assert (r.queries == expected).all()
    assert model.images == 5 * expected


@pytest.mark.parametrize("name", list(ATTACKS))
def test_seeded_and_independent_of_the_split(tiny, name):
    model, x, y = tiny
    attack = ATTACKS[name][0]
    qm = bb.QueryModel(model)
    whole = attack(qm, x[:12], y[:12], seed=7)
    again = attack(qm, x[:12], y[:12], seed=7)
    first = attack(qm, x[:5], y[:5], seed=7, sample_ids=np.arange(5))
    rest = attack(qm, x[5:12], y[5:12], seed=7, sample_ids=np.arange(5, 12))
    assert np.array_equal(whole.x_adv, again.x_adv)
    assert np.array_equal(whole.x_adv, np.concatenate([first.x_adv, rest.x_adv]))
    assert np.array_equal(whole.queries, np.concatenate([first.queries, rest.queries]))
    other = attack(qm, x[:12], y[:12], seed=8)  # another seed, other random choices
    assert not np.array_equal(whole.x_adv, other.x_adv)


def test_fixed_batch_model_and_nhwc_layout(tiny):
    model, x, y = tiny
    fixed, _, _ = digits_mlp(batch=1)
    qm = bb.QueryModel(fixed)
    assert qm.fixed_batch == 1
    r = bb.square_linf(qm, x[:6], y[:6], EPS, max_queries=100)
    ref = bb.square_linf(bb.QueryModel(model), x[:6], y[:6], EPS, max_queries=100)
    assert np.array_equal(r.queries, ref.queries) and qm.images == int(r.queries.sum())
    np.testing.assert_allclose(r.x_adv, ref.x_adv)

    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])

    def nhwc_model(batch):  # the same classifier taking NHWC images
        return sess.run(None, {"image": np.ascontiguousarray(batch.transpose(0, 3, 1, 2))})[0]

    x_nhwc = np.ascontiguousarray(x[:6].transpose(0, 2, 3, 1))
    r2 = bb.square_linf(nhwc_model, x_nhwc, y[:6], EPS, max_queries=100, layout="NHWC")
    assert np.array_equal(r2.x_adv.transpose(0, 3, 1, 2), ref.x_adv)


def test_probability_outputs_give_the_same_attack(tiny):
    model, x, y = tiny
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])

    def probs(batch):
        z = sess.run(None, {"image": batch})[0].astype(np.float64)
        e = np.exp(z - z.max(1, keepdims=True))
        return (e / e.sum(1, keepdims=True)).astype(np.float32)

    a = bb.simba(probs, x[:8], y[:8], step=EPS, linf=EPS, max_queries=200)
    b = bb.simba(model, x[:8], y[:8], step=EPS, linf=EPS, max_queries=200)
    assert np.array_equal(a.success, b.success)


def test_dct_basis_is_orthonormal_and_low_frequency_first():
    from scipy.fft import dct

    d = bb.dct_matrix(7)
    np.testing.assert_allclose(d @ d.T, np.eye(7), atol=1e-12)
    np.testing.assert_allclose(d, dct(np.eye(7), norm="ortho", axis=0), atol=1e-12)
    order = bb.low_frequency_order(1, 8, 8, np.random.default_rng(0), initial=2, stride=2)
    assert sorted(order.tolist()) == list(range(64))
    u, v = np.divmod(order, 8)
    assert np.max(np.maximum(u, v)[:4]) < 2 and np.all(np.diff(np.maximum(u, v)[4:] >= 2) >= 0)


def test_square_schedule_and_margin():
    assert bb.p_schedule(0.05, 0, 1000) == 0.05
    assert bb.p_schedule(0.05, 3, 1000) == 0.025  # 30/10000 of the way
    assert bb.p_schedule(0.05, 999, 1000) == 0.05 / 512
    lp = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4]]))
    np.testing.assert_allclose(bb.margin(lp, np.array([0, 2])), [np.log(0.7 / 0.2), np.log(0.4 / 0.5)])


@pytest.mark.parametrize("bad, error", [
    (dict(x=np.zeros((2, 1, 8, 8), np.float64)), TypeError),
    (dict(eps=0.0), ValueError),
    (dict(layout="CHW"), ValueError),
    (dict(max_queries=0), ValueError),
    (dict(y=np.zeros(3, np.int64)), ValueError),
    (dict(x=np.full((2, 1, 8, 8), 2.0, np.float32)), ValueError),
    (dict(x=np.full((2, 1, 8, 8), np.nan, np.float32)), ValueError),
])
def test_bad_arguments(tiny, bad, error):
    model, x, y = tiny
    args = {"x": x[:2], "y": y[:2], "eps": EPS, "layout": "NCHW", "max_queries": 10, **bad}
    with pytest.raises(error):
        bb.square_linf(model, args["x"], args["y"], args["eps"], layout=args["layout"],
                       max_queries=args["max_queries"])
    with pytest.raises(ValueError):
        bb.simba(model, x[:2], y[:2], basis="wavelet")
