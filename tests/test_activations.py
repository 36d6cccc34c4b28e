"""Activation profiling and the in-graph monitor, on small graphs built with onnx.helper and real digits."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from graphs import (
    conv_relu6_chain,
    conv_without_activation,
    no_activation_model,
    residual_cnn,
    two_output_mlp,
)

from pyguard.activations import (
    ActivationError,
    ActivationGuard,
    ActivationProfile,
    _expose,
    activation_tensors,
    instrument,
    profile_activations,
)
from pyguard.faults import FAULT_INDICES, FAULT_UPDATES, inject_activation_fault


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    return (load_digits().images.astype(np.float32) / 16.0)[:, None]


@pytest.fixture(scope="module")
def patches(photos) -> np.ndarray:
    """3x16x16 float32 patches cut from real photos."""
    img = photos["astronaut"].astype(np.float32) / 255
    out = [img[y:y + 16, x:x + 16].transpose(2, 0, 1) for y in range(0, 160, 20) for x in range(0, 160, 20)]
    return np.ascontiguousarray(np.stack(out))


def run_exposed(model, names, feed):
    sess = ort.InferenceSession(_expose(model, names).SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip(names, sess.run(names, feed)))


def test_default_tensors_are_activation_outputs_in_graph_order():
    assert activation_tensors(residual_cnn()) == ["stem_relu", "block_relu", "residual_relu",
                                                  "branch_sigmoid", "branch_leaky"]
    assert activation_tensors(two_output_mlp()) == ["hidden_tanh", "feature"]


def test_unknown_tensor_names_are_named_in_the_error():
    with pytest.raises(ActivationError, match="no_such_tensor"):
        activation_tensors(residual_cnn(), ["stem_relu", "no_such_tensor"])
    with pytest.raises(ActivationError, match="graph inputs"):
        activation_tensors(residual_cnn(), ["input"])


def test_model_without_activations_is_a_clear_error(digits):
    with pytest.raises(ActivationError, match="no activation operators"):
        profile_activations(no_activation_model(), np.zeros((4, 4), np.float32))


def test_profile_matches_numpy_on_branches_residuals_and_concat(digits):
    model = residual_cnn()
    names = ["stem_relu", "residual_add", "residual_relu", "concat", "branch_leaky"]
    profile = profile_activations(model, digits[:300], tensors=names, budget=None, batch_size=64)
    values = run_exposed(model, names, {"input": digits[:300]})
    for name in names:
        v = values[name]
        r = profile.tensors[name]
        assert r.hi == float(v.max()) and r.observed_lo == float(v.min())
        np.testing.assert_array_equal(r.channel_hi, v.max(axis=(0, 2, 3)))
        np.testing.assert_array_equal(r.channel_lo, v.min(axis=(0, 2, 3)))
        assert r.channels == v.shape[1] and r.elements == v[0].size and r.rank == 4
    assert profile.tensors["stem_relu"].lo == 0.0  # Relu's own lower bound, as in Ranger
    assert profile.tensors["branch_leaky"].lo == profile.tensors["branch_leaky"].observed_lo < 0
    assert profile.samples == 300


@pytest.mark.parametrize("preset, q", [("p99.9", 0.999), ("p90", 0.90)])
def test_presets_are_quantiles_of_per_sample_maxima(digits, preset, q):
    model = residual_cnn()
    profile = profile_activations(model, digits[:200], preset=preset, budget=0)
    ranger = profile_activations(model, digits[:200], budget=0)
    v = run_exposed(model, ["residual_relu"], {"input": digits[:200]})["residual_relu"]
    sample_max = v.reshape(200, -1).max(axis=1)
    assert profile.tensors["residual_relu"].hi == float(np.quantile(sample_max, q, method="higher"))
    assert profile.tensors["residual_relu"].hi <= ranger.tensors["residual_relu"].hi
    assert ranger.tensors["residual_relu"].hi == float(sample_max.max())
    assert profile.monitor is None  # budget 0: nothing monitored


def test_multiple_outputs_and_rank2_tensors(digits):
    model = two_output_mlp()
    x = digits[:256, 0].reshape(256, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(256, 16)
    profile = profile_activations(model, x, budget=None)
    assert profile.tensors["feature"].rank == 2 and profile.tensors["feature"].channels == 16
    assert profile.tensors["hidden_tanh"].observed_lo >= -1 and profile.tensors["hidden_tanh"].hi <= 1
    guard = ActivationGuard(model, profile)
    outputs, flagged, scores = guard.run(None, {"input": x[:10]})
    plain = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for a, b in zip(outputs, plain.run(None, {"input": x[:10]})):
        np.testing.assert_array_equal(a, b)
    assert len(outputs) == 2 and flagged.shape == (10,) and scores.shape == (10,)


def test_dynamic_spatial_shapes_from_an_iterable_of_feeds(digits):
    model = residual_cnn(hw=("H", "W"))
    big = np.pad(digits[:64], ((0, 0), (0, 0), (1, 1), (1, 1)))
    feeds = [{"input": digits[:64]}, {"input": big}, {"input": digits[64:128]}]
    profile = profile_activations(model, feeds, budget=None)
    v = [run_exposed(model, ["residual_relu"], f)["residual_relu"] for f in feeds]
    assert profile.tensors["residual_relu"].hi == max(float(a.max()) for a in v)
    assert profile.samples == 192


def test_monitor_outputs_identical_and_clean_fpr_near_target(digits):
    model = residual_cnn()
    profile = profile_activations(model, digits[:1000], budget=None, fpr=0.02)
    guard = ActivationGuard(model, profile)
    held_out = digits[1000:]
    outputs, flagged, _ = guard.run(None, {"input": held_out})
    plain = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(outputs[0], plain.run(None, {"input": held_out})[0])
    assert flagged.mean() <= 0.05  # target 2%: well inside the binomial spread for 797 samples
    assert profile.monitor.tolerance >= 0


def test_corrupted_activation_is_flagged(digits):
    model = residual_cnn()
    profile = profile_activations(model, digits[:500], budget=None)
    faulty = inject_activation_fault(instrument(model, profile), "block_relu", expose=False)
    sess = ort.InferenceSession(faulty.SerializeToString(), providers=["CPUExecutionProvider"])
    x = digits[500:504]
    idx = np.array([[1, 3, 4, 4]], np.int64)  # sample 1, channel 3, pixel (4, 4)
    big = np.array([1e4], np.float32)
    _, excess = sess.run(None, {"input": x, FAULT_INDICES: idx, FAULT_UPDATES: big})
    flagged, scores = profile.monitor.check(excess)
    assert flagged.tolist() == [False, True, False, False]
    assert scores[1] > 100 and scores[1] == scores.max()


def test_in_graph_scores_match_the_raw_maxima(digits):
    model = residual_cnn()
    profile = profile_activations(model, digits[:500], budget=None)
    x = {"input": digits[500:700]}
    names = profile.monitor.tensors
    raw = run_exposed(model, names, x)
    channel_max = np.concatenate([raw[n].max(axis=(2, 3)) for n in names], axis=1)
    excess = ort.InferenceSession(instrument(model, profile).SerializeToString(),
                                  providers=["CPUExecutionProvider"]).run([profile.monitor.output_name], x)[0]
    np.testing.assert_allclose(excess, profile.monitor.normalize(channel_max), rtol=1e-6, atol=1e-6)
    flagged, scores = profile.monitor.check(excess)
    np.testing.assert_allclose(scores, excess.max(axis=1))
    np.testing.assert_array_equal(flagged, scores > profile.monitor.tolerance)


def test_corrupted_weight_is_flagged(digits):
    model = residual_cnn()
    profile = profile_activations(model, digits[:500], budget=None)
    bad = residual_cnn()
    w = next(i for i in bad.graph.initializer if i.name.startswith("w"))
    arr = np.frombuffer(w.raw_data, np.float32).copy()
    arr[5] = np.float32(3e3)
    w.raw_data = arr.tobytes()
    _, flagged, _ = ActivationGuard(bad, profile).run(None, {"input": digits[500:600]})
    _, clean_flags, _ = ActivationGuard(model, profile).run(None, {"input": digits[500:600]})
    assert flagged.mean() > 0.9 and clean_flags.mean() < 0.1


def test_nan_activation_is_flagged(digits):
    model = conv_relu6_chain()
    x = np.random.default_rng(0).random((64, 3, 16, 16), dtype=np.float32)
    profile = profile_activations(model, x, budget=None)
    channel_max = np.zeros((2, profile.monitor.channel_hi.size), np.float32)
    channel_max[1, 3] = np.nan
    flagged, scores = profile.monitor.check(profile.monitor.normalize(channel_max))
    assert flagged.tolist() == [False, True] and np.isinf(scores[1])


def test_a_budget_nothing_fits_warns(digits):
    with pytest.warns(UserWarning, match="no activation check fits"):
        profile = profile_activations(residual_cnn(), digits[:100], budget=1e-6)
    assert profile.monitor is None and len(profile.tensors) == 5


def test_budget_picks_deepest_tensors_first(digits, monkeypatch):
    import pyguard.activations as acts

    monkeypatch.setattr(acts, "plain_latency", lambda model, feed: 1e-4)  # 0.1 ms: a fixed reference
    model = residual_cnn()
    every = profile_activations(model, digits[:100], budget=None)
    assert every.monitor.tensors == list(every.tensors)
    some = profile_activations(model, digits[:100], budget=every.monitor.estimated_overhead * 0.5)
    chosen = some.monitor.tensors
    assert 1 <= len(chosen) < len(every.tensors) and chosen[-1] == "branch_leaky"  # the deepest first
    assert chosen == [n for n in every.tensors if n in chosen]  # kept in graph order
    assert some.monitor.estimated_overhead <= every.monitor.estimated_overhead * 0.5


def test_profile_round_trips_through_json(digits, tmp_path):
    profile = profile_activations(residual_cnn(), digits[:100], budget=None, preset="p99.9")
    path = tmp_path / "acts.json"
    profile.save(path)
    again = ActivationProfile.load(path)
    assert again.to_dict() == json.loads(json.dumps(profile.to_dict()))
    np.testing.assert_array_equal(again.monitor.channel_hi, profile.monitor.channel_hi)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ActivationError, match="not an activation profile"):
        ActivationProfile.load(tmp_path / "bad.json")


def test_bad_arguments(digits):
    with pytest.raises(ValueError, match="preset"):
        profile_activations(residual_cnn(), digits[:10], preset="p50")
    with pytest.raises(ValueError, match="fpr"):
        profile_activations(residual_cnn(), digits[:10], fpr=1.5)
    with pytest.raises(ValueError, match="empty"):
        profile_activations(residual_cnn(), digits[:0])
    with pytest.raises(TypeError, match="model"):
        profile_activations(123, digits[:10])


# ---- integration with the guarded session ---------------------------------------------------------------


@pytest.fixture(scope="module")
def residual_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "residual.onnx"
    path.write_bytes(residual_cnn().SerializeToString())
    return str(path)


def test_calibrate_stores_activation_ranges_and_the_session_checks_them(residual_model, digits, tmp_path):
    import pyguard

    profile = pyguard.calibrate(residual_model, digits[:800], squeezers=(), activations=True,
                                activation_budget=None)
    assert profile.activations is not None and profile.activations.monitor is not None
    path = tmp_path / "p.json"
    profile.save(path)
    loaded = pyguard.GuardProfile.load(path)
    assert loaded.activations.to_dict() == json.loads(json.dumps(profile.activations.to_dict()))
    sess = pyguard.InferenceSession(residual_model, profile=loaded)
    plain = ort.InferenceSession(residual_model, providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == [o.name for o in plain.get_outputs()]
    x = np.ascontiguousarray(digits[800:900])
    x[7] *= 40  # far outside the clean activation ranges (still finite, so no input non_finite flag)
    outputs, report = sess.run_with_report(None, {"input": x})
    np.testing.assert_array_equal(outputs[0], plain.run(None, {"input": x})[0])
    assert len(outputs) == 1
    assert "activation_range" in report.reasons[7] and report.flagged[7]
    assert report.scores["activation_range"][7] == report.scores["activation_range"].max() > 1
    assert report.flagged.sum() <= 6


def test_restrict_activations_uses_harden(residual_model, digits):
    import pyguard

    profile = pyguard.calibrate(residual_model, digits[:800], squeezers=(), activation_budget=0,
                                activations=["stem_relu", "residual_relu"])
    assert list(profile.activations.tensors) == ["stem_relu", "residual_relu"]
    sess = pyguard.InferenceSession(residual_model, profile=profile, restrict_activations=True)
    plain = ort.InferenceSession(residual_model, providers=["CPUExecutionProvider"])
    clean = digits[:800]
    np.testing.assert_array_equal(sess.run(None, {"input": clean})[0], plain.run(None, {"input": clean})[0])
    loud = np.ascontiguousarray(digits[800:810] * 40)
    assert not np.array_equal(sess.run(None, {"input": loud})[0], plain.run(None, {"input": loud})[0])
    fused = pyguard.InferenceSession(residual_model, profile=profile, restrict_activations="fused")
    np.testing.assert_array_equal(fused.run(None, {"input": clean})[0], plain.run(None, {"input": clean})[0])
    with pytest.raises(pyguard.ConfigError, match="restrict_activations"):
        pyguard.InferenceSession(residual_model, profile=profile, restrict_activations="sometimes")
    no_acts = pyguard.calibrate(residual_model, digits[:200], squeezers=(), activations=False)
    assert no_acts.activations is None
    with pytest.raises(pyguard.ConfigError, match="activation ranges"):
        pyguard.InferenceSession(residual_model, profile=no_acts, restrict_activations=True)


def test_calibrate_errors_for_activations(residual_model, digits, tmp_path):
    import pyguard

    with pytest.raises(pyguard.ConfigError, match="missing_tensor"):
        pyguard.calibrate(residual_model, digits[:100], squeezers=(), activations=["missing_tensor"])
    path = tmp_path / "noact.onnx"
    path.write_bytes(conv_without_activation().SerializeToString())
    with pytest.raises(pyguard.ConfigError, match="no activation operators"):
        pyguard.calibrate(str(path), digits[:100], squeezers=(), activations=True)
    assert pyguard.calibrate(str(path), digits[:100], squeezers=()).activations is None  # default: skip
