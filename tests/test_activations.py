"""Activations: the native ops (minmax / range_check / clamp vs NumPy on every ISA, per sample and per
channel, in every layout) and activation-range profiling with the in-graph monitor (small graphs built with
onnx.helper, real digits)."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from conftest import ODD_SIZES
from graphs import (
    conv_relu6_chain,
    conv_without_activation,
    no_activation_model,
    residual_cnn,
    two_output_mlp,
)

from pyguard import ops
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

# ---- native ops: minmax / range_check / clamp ----------------------------------------------------------


def reduce_axes(ndim: int, channel_axis: int | None) -> tuple[int, ...]:
    keep = None if channel_axis is None else channel_axis % ndim
    return tuple(a for a in range(1, ndim) if a != keep)


def bound_shape(x: np.ndarray, value, channel_axis: int | None) -> np.ndarray:
    value = np.asarray(value, dtype=np.float32)
    if value.ndim == 0 or channel_axis is None:
        return value
    shape = [1] * x.ndim
    shape[channel_axis % x.ndim] = value.size
    return value.reshape(shape)


def numpy_minmax(x, channel_axis=None):
    axes = reduce_axes(x.ndim, channel_axis)
    if not axes:
        return x.copy(), x.copy()
    return x.min(axis=axes), x.max(axis=axes)


def numpy_range_check(x, lo, hi, channel_axis=None):
    lo_b, hi_b = bound_shape(x, lo, channel_axis), bound_shape(x, hi, channel_axis)
    with np.errstate(invalid="ignore", over="ignore"):
        bad = ~((x >= lo_b) & (x <= hi_b))
        excess = np.maximum(lo_b - x, x - hi_b)
    excess = np.where(np.isnan(x), np.float32(np.inf), excess)
    flat_bad = bad.reshape(x.shape[0], -1)
    flat_excess = np.where(bad, excess, np.float32(0)).reshape(x.shape[0], -1)
    return flat_bad.sum(1), flat_excess.max(1).astype(np.float32)


def numpy_clamp(x, lo, hi, channel_axis=None):
    return np.clip(x, bound_shape(x, lo, channel_axis), bound_shape(x, hi, channel_axis))


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.array_equal(got, want, equal_nan=True)


def assert_same_bits(got: np.ndarray, want: np.ndarray) -> None:
    assert_same(got, want)
    assert np.array_equal(np.signbit(got), np.signbit(want))


def activations(shape, seed=0, specials=True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.3, 2.0, size=shape).astype(np.float32)
    if specials:
        flat = x.reshape(-1)
        picks = np.array([np.inf, -np.inf, -0.0, 0.0, 1e-45, -1e-45, 3.4e38, -3.4e38, -1.0, 1.5], np.float32)
        idx = rng.choice(flat.size, size=max(1, flat.size // 50), replace=False)
        flat[idx] = rng.choice(picks, size=idx.size)
    return x


LAYOUT_CASES = [
    ((3, 3, 224, 224), None), ((3, 3, 224, 224), 1), ((2, 224, 224, 3), -1), ((2, 224, 224, 3), 3),
    ((2, 64, 7, 7), 1), ((2, 7, 7, 512), -1), ((4, 10), None), ((4, 10), 1), ((5, 6, 7, 8, 3), 2),
    ((6,), None), ((2, 3, 4099), 1),
]


def test_photo_batch(photo_batch_nchw, isa):
    for axis in (None, 1):
        mins, maxs = ops.minmax(photo_batch_nchw, channel_axis=axis, isa=isa)
        want_min, want_max = numpy_minmax(photo_batch_nchw, axis)
        assert_same(mins, want_min)
        assert_same(maxs, want_max)
    nhwc = np.ascontiguousarray(photo_batch_nchw.transpose(0, 2, 3, 1))
    assert_same(ops.minmax(nhwc, channel_axis=-1, isa=isa)[1], numpy_minmax(nhwc, -1)[1])
    lo, hi = np.array([0.1, 0.2, 0.3], np.float32), np.array([0.8, 0.9, 0.95], np.float32)
    for x, axis in ((photo_batch_nchw, 1), (nhwc, -1)):
        count, excess = ops.range_check(x, lo, hi, channel_axis=axis, isa=isa)
        want_count, want_excess = numpy_range_check(x, lo, hi, axis)
        assert np.array_equal(count, want_count) and count.dtype == np.int64
        assert_same_bits(excess, want_excess)
        # np.clip with array bounds may return the bound for a tie (+0.0 for -0.0): compare values.
        assert_same(ops.clamp(x, lo, hi, channel_axis=axis, isa=isa), numpy_clamp(x, lo, hi, axis))


@pytest.mark.parametrize("shape,axis", LAYOUT_CASES)
def test_layouts_match_numpy(isa, shape, axis):
    x = activations(shape, seed=len(shape) + (axis or 0))
    mins, maxs = ops.minmax(x, channel_axis=axis, isa=isa)
    want_min, want_max = numpy_minmax(x, axis)
    assert_same(mins, want_min)
    assert_same(maxs, want_max)
    channels = None if axis is None else shape[axis]
    for lo, hi in [(-1.0, 1.5), (0.0, 0.0), (-np.inf, 2.0)]:
        count, excess = ops.range_check(x, lo, hi, channel_axis=axis, isa=isa)
        want_count, want_excess = numpy_range_check(x, lo, hi)
        assert np.array_equal(count, want_count)
        assert_same_bits(excess, want_excess)
        assert_same_bits(ops.clamp(x, lo, hi, channel_axis=axis, isa=isa), numpy_clamp(x, lo, hi))
    if channels is not None:
        rng = np.random.default_rng(channels)
        lo = rng.uniform(-2, 0, channels).astype(np.float32)
        hi = (lo + rng.uniform(0, 3, channels)).astype(np.float32)
        count, excess = ops.range_check(x, lo, hi, channel_axis=axis, isa=isa)
        want_count, want_excess = numpy_range_check(x, lo, hi, axis)
        assert np.array_equal(count, want_count)
        assert_same_bits(excess, want_excess)
        # Array bounds: NumPy's inner loop decides whether a tie returns the bound, so compare values.
        assert_same(ops.clamp(x, lo, hi, channel_axis=axis, isa=isa), numpy_clamp(x, lo, hi, axis))
        relu_hi = np.maximum(hi, np.float32(0))  # scalar lo with per-channel hi (a ReLU6-like bound)
        got = ops.clamp(x, 0.0, relu_hi, channel_axis=axis, isa=isa)
        assert_same(got, numpy_clamp(x, 0.0, relu_hi, axis))


@pytest.mark.parametrize("size", ODD_SIZES)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC", "HW", "HWC"])
def test_odd_sizes(isa, size, layout):
    h, w = size
    shape, axis = {"NCHW": ((2, 3, h, w), 1), "NHWC": ((2, h, w, 3), -1), "HW": ((h, w), None),
                   "HWC": ((h, w, 3), -1)}[layout]
    x = activations(shape, seed=h * w, specials=h * w > 4)
    for ax in (None, axis):
        mins, maxs = ops.minmax(x, channel_axis=ax, isa=isa)
        assert_same(mins, numpy_minmax(x, ax)[0])
        assert_same(maxs, numpy_minmax(x, ax)[1])
    count, excess = ops.range_check(x, -1.0, 1.0, isa=isa)
    assert np.array_equal(count, numpy_range_check(x, -1.0, 1.0)[0])
    assert_same_bits(excess, numpy_range_check(x, -1.0, 1.0)[1])
    assert_same_bits(ops.clamp(x, -1.0, 1.0, isa=isa), numpy_clamp(x, -1.0, 1.0))


def test_nan_propagates_per_channel(isa):
    x = activations((2, 4, 9, 9), seed=3, specials=False)
    x[1, 2, 5, 5] = np.nan
    mins, maxs = ops.minmax(x, channel_axis=1, isa=isa)
    assert np.isnan(mins[1, 2]) and np.isnan(maxs[1, 2])
    assert np.isnan(mins).sum() == 1
    assert_same(mins, x.min(axis=(2, 3)))
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    mins, maxs = ops.minmax(nhwc, channel_axis=-1, isa=isa)
    assert_same(maxs, nhwc.max(axis=(1, 2)))
    assert np.isnan(maxs).sum() == 1
    count, excess = ops.range_check(x, -100.0, 100.0, isa=isa)
    assert count.tolist() == [0, 1] and excess[0] == 0 and np.isposinf(excess[1])
    clamped = ops.clamp(x, -1.0, 1.0, isa=isa)
    assert np.isnan(clamped[1, 2, 5, 5]) and np.isnan(clamped).sum() == 1


def test_signed_zero_and_bounds_are_kept_like_np_clip(isa):
    x = np.array([[-0.0, 0.0, 1.0, -1.0, 2.0, np.nan, np.inf, -np.inf] * 5], np.float32)
    for lo, hi in [(0.0, 1.0), (-0.0, 1.0), (-1.0, -0.0)]:
        assert_same_bits(ops.clamp(x, lo, hi, isa=isa), np.clip(x, np.float32(lo), np.float32(hi)))


def test_out_and_in_place(photo_batch_nchw, isa):
    want = numpy_clamp(photo_batch_nchw, 0.2, 0.7)
    out = np.empty_like(photo_batch_nchw)
    assert ops.clamp(photo_batch_nchw, 0.2, 0.7, out=out, isa=isa) is out
    assert_same_bits(out, want)
    x = photo_batch_nchw.copy()
    assert ops.clamp(x, 0.2, 0.7, out=x, isa=isa) is x
    assert_same_bits(x, want)


def test_non_contiguous_inputs(photo_batch_nchw, isa):
    view = photo_batch_nchw.transpose(0, 2, 3, 1)  # NHWC view of NCHW memory
    strided = photo_batch_nchw[:, :, ::3, 1::2]
    for x, axis in ((view, -1), (strided, 1)):
        assert not x.flags.c_contiguous
        assert_same(ops.minmax(x, channel_axis=axis, isa=isa)[0], numpy_minmax(x, axis)[0])
        assert np.array_equal(ops.range_check(x, 0.1, 0.9, isa=isa)[0], numpy_range_check(x, 0.1, 0.9)[0])
        assert_same_bits(ops.clamp(x, 0.1, 0.9, isa=isa), numpy_clamp(x, 0.1, 0.9))


def test_bad_inputs():
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(TypeError, match="dtype uint8"):
        ops.minmax(x.astype(np.uint8))
    with pytest.raises(TypeError, match="dtype float64"):
        ops.clamp(x.astype(np.float64), 0.0, 1.0)
    with pytest.raises(ValueError, match="empty"):
        ops.minmax(np.zeros((0, 3), np.float32))
    with pytest.raises(ValueError, match="dimension"):
        ops.minmax(np.array(1.0, np.float32))
    for axis in (0, 3, -3, 7):
        with pytest.raises(ValueError, match="channel_axis"):
            ops.minmax(x, channel_axis=axis)
    for axis in (1.0, True, "1"):
        with pytest.raises(TypeError, match="channel_axis"):
            ops.minmax(x, channel_axis=axis)
    with pytest.raises(ValueError, match="channel_axis"):
        ops.range_check(x, np.zeros(3, np.float32), 1.0)
    with pytest.raises(ValueError, match="shape"):
        ops.clamp(x, np.zeros(4, np.float32), 1.0, channel_axis=1)
    with pytest.raises(ValueError, match="NaN"):
        ops.clamp(x, np.nan, 1.0)
    with pytest.raises(ValueError, match="lo must be <= hi"):
        ops.range_check(x, 2.0, 1.0)
    with pytest.raises(ValueError, match="lo must be <= hi"):
        ops.clamp(x, np.array([0, 2, 0], np.float32), np.ones(3, np.float32), channel_axis=1)
    with pytest.raises(TypeError, match="lo"):
        ops.clamp(x, "0", 1.0)
    with pytest.raises(TypeError, match="hi"):
        ops.range_check(x, 0.0, [1.0])
    with pytest.raises(ValueError, match="shape"):
        ops.clamp(x, 0.0, 1.0, out=np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="isa"):
        ops.minmax(x, isa="mmx")


# ---- activation ranges: profiling, the monitor, the session hooks --------------------------------------

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
    assert len(sess.run(None, {"input": x})) == 1 and len(sess.run(None, {"input": x})) == 1  # repeatable


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
    zero = pyguard.InferenceSession(residual_model, profile=profile, restrict_activations="zero")
    # clean data: the same values (up to the rounding of other fused kernels); far out: zeroed, not clamped
    np.testing.assert_allclose(zero.run(None, {"input": clean})[0], plain.run(None, {"input": clean})[0],
                               rtol=1e-5, atol=1e-5)
    assert not np.allclose(zero.run(None, {"input": loud})[0], sess.run(None, {"input": loud})[0])
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
