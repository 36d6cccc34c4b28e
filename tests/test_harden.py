"""harden(): Ranger restriction with constant-bound Clip, exact on clean data and fused by onnxruntime."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from graphs import conv_relu6_chain, residual_cnn, two_output_mlp

from pyguard.activations import ActivationError, _expose, profile_activations
from pyguard.harden import harden


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    return (load_digits().images.astype(np.float32) / 16.0)[:, None]


@pytest.fixture(scope="module")
def patches(photos) -> np.ndarray:
    img = photos["chelsea"].astype(np.float32) / 255
    out = [img[y:y + 16, x:x + 16].transpose(2, 0, 1) for y in range(0, 200, 25) for x in range(0, 200, 25)]
    return np.ascontiguousarray(np.stack(out))


def session(model, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL, optimized_path=None):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = level
    opts.log_severity_level = 3
    if optimized_path:
        opts.optimized_model_filepath = str(optimized_path)
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def assert_same_outputs(a, b, feed, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
    for x, y in zip(session(a, level).run(None, feed), session(b, level).run(None, feed)):
        np.testing.assert_array_equal(x, y)


def test_outputs_identical_on_calibration_data(digits, patches):
    model = residual_cnn()
    hardened = harden(model, profile_activations(model, digits, budget=0))
    assert_same_outputs(model, hardened, {"input": digits})
    chain = conv_relu6_chain()
    chain_profile = profile_activations(chain, patches, budget=0)
    assert_same_outputs(chain, harden(chain, chain_profile), {"input": patches})
    mlp = two_output_mlp()
    x = digits[:, 0].reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(-1, 16)
    assert_same_outputs(mlp, harden(mlp, profile_activations(mlp, x, budget=0)), {"input": x})


def test_graph_rewrite_keeps_names_and_merges_where_exact(digits):
    model = residual_cnn()
    profile = profile_activations(model, digits[:300], budget=0)
    hardened = harden(model, profile)
    ops = {n.output[0]: n.op_type for n in hardened.graph.node}
    assert ops["stem_relu"] == ops["residual_relu"] == "Clip"  # Relu + Clip folded into one Clip
    assert ops["branch_sigmoid"] == ops["branch_leaky"] == "Clip"  # inserted after the activation
    assert sum(n.op_type == "Sigmoid" for n in hardened.graph.node) == 1
    assert [o.name for o in hardened.graph.output] == [o.name for o in model.graph.output]
    onnx.checker.check_model(hardened)


def test_values_beyond_the_bounds_are_clamped(digits):
    model = residual_cnn()
    bounds = {"stem_relu": (0.0, 0.5), "branch_leaky": (-0.01, 0.25), "branch_sigmoid": (0.4, 0.6)}
    hardened = harden(model, bounds)
    names = list(bounds)
    sess = session(_expose(hardened, names))
    values = dict(zip(names, sess.run(names, {"input": digits[:50] * 3})))
    for name, (lo, hi) in bounds.items():
        v = values[name]
        assert v.min() >= np.float32(lo) and v.max() <= np.float32(hi)
        assert v.max() == np.float32(hi)  # the clamp is active on these scaled-up inputs


def test_existing_clip_bounds_are_tightened(patches):
    chain = conv_relu6_chain()
    hardened = harden(chain, {"relu6_b": (-1.0, 2.5)})
    node = next(n for n in hardened.graph.node if n.output[0] == "relu6_b")
    consts = {i.name: onnx.numpy_helper.to_array(i) for i in hardened.graph.initializer}
    assert (float(consts[node.input[1]]), float(consts[node.input[2]])) == (0.0, 2.5)
    assert sum(n.op_type == "Clip" for n in hardened.graph.node) == 1


def fused_activations(path):
    optimized = onnx.load(str(path))
    counts = collections.Counter(n.op_type for n in optimized.graph.node)
    acts = [a.s.decode() for n in optimized.graph.node if n.op_type in ("FusedConv", "Conv")
            for a in n.attribute if a.name == "activation"]
    return counts, acts


def test_clip_after_conv_fuses_into_fusedconv(patches, tmp_path):
    chain = conv_relu6_chain()
    hardened = harden(chain, profile_activations(chain, patches, budget=0))
    session(hardened, ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, tmp_path / "extended.onnx")
    counts, acts = fused_activations(tmp_path / "extended.onnx")
    assert counts["FusedConv"] == 2 and acts == ["Clip", "Clip"]
    assert counts["Clip"] == 0 and counts["Relu"] == 0
    # with every optimization (NCHWc layout) the clamps stay inside the convolutions as well
    session(hardened, ort.GraphOptimizationLevel.ORT_ENABLE_ALL, tmp_path / "all.onnx")
    counts, acts = fused_activations(tmp_path / "all.onnx")
    assert counts["Clip"] == 0 and acts.count("Clip") == 2


def test_bad_bounds_and_names(digits):
    model = residual_cnn()
    with pytest.raises(ActivationError, match="nope"):
        harden(model, {"nope": (0.0, 1.0)})
    with pytest.raises(ValueError, match="empty"):
        harden(model, {"stem_relu": (2.0, 1.0)})
    with pytest.raises(TypeError, match="ActivationProfile"):
        harden(model, [1, 2])
    with pytest.raises(ActivationError, match="no bounds"):
        harden(model, {})


# ---- zero mode (FT-ClipAct), NaN scrubbing and per-channel bounds ----------------------------------------


def _nan_pixel(x: np.ndarray) -> np.ndarray:
    bad = x[:20].copy()
    bad[:, :, 3, 4] = np.nan
    return bad


@pytest.mark.parametrize("kw", [{"mode": "zero"}, {"scrub_nan": True}, {"per_channel": True},
                                {"mode": "zero", "per_channel": True},
                                {"per_channel": True, "scrub_nan": True}])
def test_every_variant_is_exact_on_calibration_data(digits, patches, kw):
    # without graph optimizations: the extra nodes change which convolutions onnxruntime fuses with a
    # following Add, and a fused Add rounds differently (~1e-7), which says nothing about the restriction
    exact = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    model = residual_cnn()
    assert_same_outputs(model, harden(model, profile_activations(model, digits, budget=0), **kw),
                        {"input": digits}, exact)
    chain = conv_relu6_chain()
    assert_same_outputs(chain, harden(chain, profile_activations(chain, patches, budget=0), **kw),
                        {"input": patches}, exact)


def test_zero_mode_zeroes_far_values_and_nan_and_clamps_near_ones(digits):
    model = residual_cnn()
    bounds = {"stem_relu": (0.0, 0.5), "branch_sigmoid": (0.4, 0.6)}
    names = list(bounds)
    x = digits[:50] * 3
    raw = dict(zip(names, session(_expose(model, names)).run(names, {"input": x})))
    for margin in (0.0, 0.5):
        for name, (lo, hi) in bounds.items():  # one at a time: restricting one changes what follows it
            hardened = harden(model, {name: (lo, hi)}, mode="zero", zero_margin=margin)
            got = session(_expose(hardened, [name])).run([name], {"input": x})[0]
            lo, hi, v = np.float32(lo), np.float32(hi), raw[name]
            pad = np.float32(margin) * (hi - lo)
            near = (v >= lo - pad) & (v <= hi + pad)
            assert near.any() and (~near).any()  # both cases occur on these scaled-up inputs
            np.testing.assert_array_equal(got, np.where(near, np.clip(v, lo, hi), np.float32(0)))
    out = session(_expose(harden(model, bounds, mode="zero"), ["stem_relu"])).run(
        ["stem_relu"], {"input": _nan_pixel(digits)})[0]
    assert np.isfinite(out).all()
    with pytest.raises(ValueError, match="zero_margin"):
        harden(model, bounds, mode="zero", zero_margin=-1)


def test_a_clamp_lets_nan_through_and_scrub_nan_stops_it(digits):
    model = residual_cnn()
    profile = profile_activations(model, digits, budget=0)
    name = "stem_relu"
    nan_in = _nan_pixel(digits)
    clamped = session(_expose(harden(model, profile), [name])).run([name], {"input": nan_in})[0]
    assert np.isnan(clamped).any()  # why scrub_nan exists: onnxruntime's Clip propagates NaN
    scrubbed = session(_expose(harden(model, profile, scrub_nan=True), [name])).run([name],
                                                                                    {"input": nan_in})[0]
    assert np.isfinite(scrubbed).all()
    np.testing.assert_array_equal(np.where(np.isnan(clamped), np.float32(0), clamped), scrubbed)


def test_per_channel_bounds_clamp_each_channel_to_its_own_range(digits):
    model = residual_cnn()
    profile = profile_activations(model, digits, budget=0)
    name = "stem_relu"
    t = profile.tensors[name]
    assert t.channels > 1 and min(t.channel_hi) < t.hi
    x = digits[:50] * 3
    hardened = harden(model, profile, per_channel=True)
    got = session(_expose(hardened, [name])).run([name], {"input": x})[0]
    per_channel_max = got.max(axis=(0, 2, 3))
    assert np.all(per_channel_max <= np.asarray(t.channel_hi, np.float32))
    assert np.any(per_channel_max == np.asarray(t.channel_hi, np.float32))
    with pytest.raises(ActivationError, match="per-channel"):
        harden(model, {name: (0.0, 1.0)}, per_channel=True)
    with pytest.raises(ValueError, match="mode"):
        harden(model, profile, mode="saturate")
