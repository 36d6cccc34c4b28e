"""Fault injection: exact float32 bit flips in activations and weights, and the seeded campaign."""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
import pytest
from graphs import residual_cnn

from pyguard import faults
from pyguard.activations import profile_activations

DATA = os.path.join(os.path.dirname(__file__), "..", "pyguard", "data")


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    return (load_digits().images.astype(np.float32) / 16.0)[:, None]


@pytest.fixture(scope="module")
def residual():
    d = np.load(os.path.join(DATA, "residual_digits.npz"))
    path = os.path.join(DATA, "residual_digits.onnx")
    return path, profile_activations(path, d["x_cal"], budget=None), d


def edge_values() -> np.ndarray:
    specials = [0.0, -0.0, 1.0, -1.0, 1.5, 2.0, 1e-40, -1e-42, 3.4e38, np.inf, -np.inf, 6.0, 0.1]
    rng = np.random.default_rng(0)
    return np.concatenate([specials, rng.normal(0, 3, 50)]).astype(np.float32)


@pytest.mark.parametrize("bit", range(32))
def test_flip_bit_is_an_xor_of_the_bits(bit):
    v = edge_values()
    flipped = faults.flip_bit(v, bit)
    np.testing.assert_array_equal(flipped.view(np.uint32), v.view(np.uint32) ^ np.uint32(1 << bit))
    np.testing.assert_array_equal(faults.flip_bit(flipped, bit).view(np.uint32), v.view(np.uint32))


def test_bit_ranges():
    assert faults.bit_range("sign") == [31]
    assert faults.bit_range("exponent") == list(range(23, 31))
    assert faults.bit_range("mantissa") == list(range(23))
    assert faults.bit_range("all") == list(range(32))
    assert faults.bit_range([0, 30]) == [0, 30]
    for bad in ("exp", [32], []):
        with pytest.raises(ValueError):
            faults.bit_range(bad)
    with pytest.raises(ValueError):
        faults.flip_bit(np.ones(1, np.float32), 40)


@pytest.mark.parametrize("bit", [0, 22, 23, 29, 30, 31])
def test_injected_activation_is_exactly_the_flipped_value(digits, bit):
    model = faults.inject_activation_fault(residual_cnn(), "residual_add")
    faulty_name = next(n.output[0] for n in model.graph.node if n.op_type == "ScatterND")
    model.graph.output.append(faults.onnx.ValueInfoProto(name=faulty_name))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = digits[:3]
    no_fault = {faults.FAULT_INDICES: np.zeros((0, 4), np.int64),
                faults.FAULT_UPDATES: np.zeros(0, np.float32)}
    _, clean, same = sess.run(None, {"input": x, **no_fault})
    np.testing.assert_array_equal(clean, same)
    index = (2, 5, 1)  # channel, row, column
    flipped = faults.flip_bit(clean[(slice(None), *index)], bit)
    idx = np.array([[s, *index] for s in range(3)], np.int64)
    _, _, faulty = sess.run(None, {"input": x, faults.FAULT_INDICES: idx, faults.FAULT_UPDATES: flipped})
    expected = clean.copy()
    expected[(slice(None), *index)] = flipped
    np.testing.assert_array_equal(faulty.view(np.uint32), expected.view(np.uint32))


def test_weight_as_input_gives_the_same_outputs_up_to_rounding(digits):
    # a weight fed at run time is not pre-packed, so the convolution may sum in another order: the campaign
    # therefore compares faulty runs with fault-free runs of the same graph, never of the original model
    model = residual_cnn()
    w = model.graph.initializer[0]
    moved = faults.weight_as_input(model, w.name)
    a = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(moved.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {"input": digits[:20]}
    np.testing.assert_allclose(a.run(None, feed)[0],
                               b.run(None, {**feed, w.name: faults.numpy_helper.to_array(w)})[0], rtol=1e-5,
                               atol=1e-6)
    with pytest.raises(faults.ActivationError, match="unknown weight"):
        faults.weight_as_input(model, "missing")


def test_injection_errors():
    with pytest.raises(faults.ActivationError, match="no node"):
        faults.inject_activation_fault(residual_cnn(), "input")
    with pytest.raises(faults.ActivationError, match="graph output"):
        faults.inject_activation_fault(residual_cnn(), "logits")


def test_wilson_interval():
    lo, hi = faults.wilson(0, 100)
    assert lo == 0 and 0.03 < hi < 0.04
    lo, hi = faults.wilson(50, 100)
    assert lo < 0.5 < hi and abs((lo + hi) / 2 - 0.5) < 1e-9


def test_campaign_is_reproducible_with_a_seed(residual):
    path, profile, d = residual
    kwargs = dict(injections=40, inputs=16, seed=7, bits="exponent")
    a = faults.run_campaign(path, profile, d["x_test"], d["y_test"], **kwargs)
    b = faults.run_campaign(path, profile, d["x_test"], d["y_test"], **kwargs)
    assert a.table() == b.table()
    c = faults.run_campaign(path, profile, d["x_test"], d["y_test"], **{**kwargs, "seed": 8})
    assert [k.sdc_plain.k for k in a.kinds] != [k.sdc_plain.k for k in c.kinds] or a.table() != c.table()


def test_campaign_on_the_trained_residual_model(residual):
    path, profile, d = residual
    result = faults.run_campaign(path, profile, d["x_test"], d["y_test"], injections=150, inputs=32, seed=0,
                                 kinds=("activation",), bits="exponent", clean_data=d["x_test"],
                                 clean_labels=d["y_test"])
    act = result.kinds[0]
    assert act.sdc_plain.n == 150 * 32
    assert act.sdc_plain.k > 20  # exponent flips corrupt often
    assert act.silent_restricted.k * 5 <= act.silent_plain.k
    assert act.sdc_flagged.value >= 0.9
    assert result.accuracy_plain.k == result.accuracy_restricted.k
    assert "SDC restricted" in result.table()


def test_cli_calibrate_then_faults_end_to_end(tmp_path, capsys):
    from pyguard.cli import main

    d = np.load(os.path.join(DATA, "residual_digits.npz"))
    model = os.path.join(DATA, "residual_digits.onnx")
    for name in ("x_cal", "x_test", "y_test"):
        np.save(tmp_path / f"{name}.npy", d[name])
    profile = str(tmp_path / "p.json")
    assert main(["calibrate", model, "--data", str(tmp_path / "x_cal.npy"), "--squeezers", "bit_depth:1",
                 "--activation-budget", "-1", "-o", profile]) == 0
    assert "activations: 9 tensors profiled" in capsys.readouterr().out
    args = ["faults", model, "--profile", profile, "--data", str(tmp_path / "x_test.npy"), "--labels",
            str(tmp_path / "y_test.npy"), "--injections", "20", "--inputs", "8", "--seed", "3"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "| SDC unprotected |" in first and "clean accuracy restricted" in first
    assert main(args) == 0
    assert capsys.readouterr().out == first  # same seed, same table
    assert main(["faults", model, "--profile", str(tmp_path / "none.json"), "--data", "x.npy"]) == 2
    assert "cannot read profile" in capsys.readouterr().err


def test_zero_mode_contains_the_faults_a_clamp_lets_through(residual):
    """FT-ClipAct restriction: NaN and out-of-range values become 0, which removes both the NaN-driven
    activation SDCs a Clip propagates and most weight-fault SDCs on the trained residual model."""
    path, profile, d = residual
    kwargs = dict(injections=150, inputs=32, seed=0, bits="exponent", clean_data=d["x_test"],
                  clean_labels=d["y_test"])
    clamp = faults.run_campaign(path, profile, d["x_test"], d["y_test"], **kwargs)
    zero = faults.run_campaign(path, profile, d["x_test"], d["y_test"], mode="zero", **kwargs)
    for c, z in zip(clamp.kinds, zero.kinds):
        assert c.sdc_plain.k == z.sdc_plain.k > 20
        assert z.sdc_restricted.k * 10 <= c.sdc_plain.k
        assert z.sdc_restricted.k < c.sdc_restricted.k
    assert zero.accuracy_restricted.k == zero.accuracy_plain.k
