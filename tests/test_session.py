"""pyguard.InferenceSession: drop-in behaviour, detector mechanics, actions, concurrency, error paths."""

from __future__ import annotations

import dataclasses
import threading
import tracemalloc

import models
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto

import pyguard
from pyguard import ops
from pyguard.session import _OrtSession

SQUEEZERS = ("bit_depth:4", "median:2")


def plain_run(model, feed, names=None):
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(names, feed)


def same_bits(a, b) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# name -> (model bytes, feed builder(n), calibration kwargs)
def _cases():
    return {
        "dynamic_nchw_logits": (models.classifier(outputs=("logits",)),
                                lambda n: {"image": models.images(n, seed=n)}, {}),
        "dynamic_nhwc_logits_probs": (models.classifier(layout="NHWC",
                                                        outputs=("logits", "probs", "features")),
                                      lambda n: {"image": models.images(n, layout="NHWC", seed=n)}, {}),
        "fixed_batch_probs": (models.classifier(batch=2, outputs=("probs",)),
                              lambda n: {"image": models.images(2, seed=n)}, {}),
        "uint8_nchw": (models.classifier(dtype=TensorProto.UINT8, outputs=("probs", "logits")),
                       lambda n: {"image": models.images(n, seed=n, dtype=np.uint8)}, {}),
        "gray_nhw": (models.classifier(channels=1, layout="NHW", outputs=("probs",)),
                     lambda n: {"image": models.images(n, channels=1, seed=n)[:, 0]}, {}),
        "two_inputs": (models.two_inputs(),
                       lambda n: {"image": models.images(n, size=12, seed=n),
                                  "gain": np.linspace(0.5, 2.0, n, dtype=np.float32).reshape(n, 1)},
                       {"input_name": "image"}),
    }


CASES = {k: v for k, v in _cases().items() if v[0] is not None}


def _calibration_data(case):
    model, feed, kwargs = CASES[case]
    if case == "two_inputs":
        return model, [feed(8) for _ in range(8)], kwargs
    return model, np.concatenate([feed(8)["image"] for _ in range(8)]), kwargs


@pytest.fixture(scope="module")
def profiles():
    out = {}
    for case in CASES:
        model, data, kwargs = _calibration_data(case)
        out[case] = pyguard.calibrate(model, data, squeezers=SQUEEZERS, fpr=0.1, **kwargs, detector="squeeze")
    return out


# ---- drop-in: monitor outputs are onnxruntime's, bit for bit -----------------------------------------------
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("with_profile", [False, True], ids=["sanity", "detector"])
@pytest.mark.parametrize("n", [1, 3])
def test_monitor_outputs_bit_identical(case, with_profile, n, profiles):
    model, feed_of, _ = CASES[case]
    sess = pyguard.InferenceSession(model, profile=profiles[case] if with_profile else None)
    feed = feed_of(n)
    names_all = [o.name for o in sess.get_outputs()]
    for names in (None, names_all[-1:]):
        for _ in range(2):  # the first call with a shape also verifies the batched run
            got = sess.run(names, feed)
            want = plain_run(model, feed, names)
            assert len(got) == len(want)
            assert all(same_bits(g, w) for g, w in zip(got, want))
    report = sess.last_report
    assert report.flagged.dtype == np.bool_ and report.flagged.shape == (feed["image"].shape[0],)
    assert ("squeeze" in report.scores) == with_profile


def test_passes_through_the_onnxruntime_interface(tmp_path):
    model = models.classifier(outputs=("logits", "probs"))
    so = ort.SessionOptions()
    so.enable_profiling = True
    so.profile_file_prefix = str(tmp_path / "prof")
    sess = pyguard.InferenceSession(model, so, ["CPUExecutionProvider"])
    plain = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    assert isinstance(sess, ort.InferenceSession)
    assert [i.name for i in sess.get_inputs()] == [i.name for i in plain.get_inputs()]
    assert [o.name for o in sess.get_outputs()] == ["logits", "probs"]
    assert sess.get_providers() == ["CPUExecutionProvider"]
    x = models.images(2)
    binding = sess.io_binding()
    binding.bind_cpu_input("image", x)
    binding.bind_output("probs")
    sess.run_with_iobinding(binding)
    assert same_bits(binding.copy_outputs_to_cpu()[0], plain.run(["probs"], {"image": x})[0])
    assert sess.end_profiling().startswith(str(tmp_path / "prof"))


def test_last_report_is_per_thread():
    sess = pyguard.InferenceSession(models.classifier())
    assert sess.last_report is None
    sess.run(None, {"image": models.images(3)})
    seen = []
    t = threading.Thread(target=lambda: seen.append(sess.last_report))
    t.start()
    t.join()
    assert seen == [None] and len(sess.last_report) == 3


# ---- detector mechanics ------------------------------------------------------------------------------------
class RunCounter:
    def __init__(self, monkeypatch):
        self.batches = []
        original = _OrtSession.run

        def counting(sess, names, feed, run_options=None):
            self.batches.append(next(iter(feed.values())).shape[0])
            return original(sess, names, feed, run_options)

        monkeypatch.setattr(_OrtSession, "run", counting)


def test_dynamic_batch_runs_original_and_squeezed_in_one_batch(profiles, monkeypatch):
    model, feed_of, _ = CASES["dynamic_nchw_logits"]
    sess = pyguard.InferenceSession(model, profile=profiles["dynamic_nchw_logits"])
    counter = RunCounter(monkeypatch)
    feed = feed_of(3)
    sess.run(None, feed)  # first call with this shape: batched run + one check that batching is exact
    assert counter.batches == [9, 3]
    counter.batches.clear()
    for _ in range(3):
        sess.run(None, feed)
    assert counter.batches == [9, 9, 9]


def test_falls_back_to_separate_runs_when_batching_changes_the_numbers(profiles, monkeypatch):
    model, feed_of, _ = CASES["dynamic_nchw_logits"]
    sess = pyguard.InferenceSession(model, profile=profiles["dynamic_nchw_logits"])
    original = _OrtSession.run
    batches = []

    def inexact(s, names, feed, run_options=None):  # a provider whose batched results differ slightly
        batches.append(feed["image"].shape[0])
        out = original(s, names, feed, run_options)
        return [o + np.float32(1e-6) for o in out] if feed["image"].shape[0] > 2 else out

    monkeypatch.setattr(_OrtSession, "run", inexact)
    feed = feed_of(2)
    want = original(sess, None, feed)
    for _ in range(2):
        got, report = sess.run_with_report(None, feed)
        assert same_bits(got[0], want[0])
    assert batches == [6, 2, 2, 2] + [2, 2, 2]  # batched + check + 2 copies; then 3 separate runs
    assert np.isfinite(report.scores["squeeze"]).all()


def test_fixed_batch_runs_once_per_copy(profiles, monkeypatch):
    model, feed_of, _ = CASES["fixed_batch_probs"]
    sess = pyguard.InferenceSession(model, profile=profiles["fixed_batch_probs"])
    counter = RunCounter(monkeypatch)
    sess.run(None, feed_of(2))
    assert counter.batches == [2, 2, 2]


def test_scores_follow_the_definition(profiles):
    """score = max over squeezers of L1(softmax(logits(x)), softmax(logits(squeeze(x))))."""
    model, feed_of, _ = CASES["dynamic_nchw_logits"]
    sess = pyguard.InferenceSession(model, profile=profiles["dynamic_nchw_logits"])
    x = feed_of(5)["image"]
    _, report = sess.run_with_report(None, {"image": x})

    def probs(v):
        z = plain_run(model, {"image": v})[0].astype(np.float64)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    squeezed = [ops.bit_depth(x, 4), ops.median_filter(x, 2, layout="NCHW")]
    per = [np.abs(probs(x) - probs(s)).sum(axis=1) for s in squeezed]
    np.testing.assert_allclose(report.scores["squeeze[bit_depth:4]"], per[0], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(report.scores["squeeze[median:2]"], per[1], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(report.scores["squeeze"], np.maximum(*per), rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(report.flagged, report.scores["squeeze"] > report.threshold)


def test_probability_output_is_not_softmaxed_again(profiles):
    case = "fixed_batch_probs"
    model, feed_of, _ = CASES[case]
    assert profiles[case].output_kind == "probabilities"
    x = feed_of(0)["image"]
    _, report = pyguard.InferenceSession(model, profile=profiles[case]).run_with_report(None, {"image": x})
    p0 = plain_run(model, {"image": x})[0]
    p1 = plain_run(model, {"image": ops.bit_depth(x, 4)})[0]
    np.testing.assert_allclose(report.scores["squeeze[bit_depth:4]"], np.abs(p0 - p1).sum(axis=1), rtol=1e-5)


def test_normalized_input_is_squeezed_in_pixel_space():
    """A model fed (pixel - mean) / std must get the same scores as the same model fed pixels."""
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    pixel_model = models.classifier()
    norm_model = models.classifier(denormalize=(mean, std))
    pixels = models.images(40, seed=3)
    m, s = (np.asarray(v, np.float32).reshape(1, 3, 1, 1) for v in (mean, std))
    normalized = ((pixels - m) / s).astype(np.float32)
    p_pix = pyguard.calibrate(pixel_model, pixels[:32], squeezers=SQUEEZERS, fpr=0.1, detector="squeeze")
    p_norm = pyguard.calibrate(norm_model, normalized[:32], squeezers=SQUEEZERS, fpr=0.1,
                               normalization=(mean, std), detector="squeeze")
    assert p_norm.input.range == (0.0, 1.0) and p_norm.input.mean == pytest.approx(mean)
    _, r_pix = pyguard.InferenceSession(pixel_model, profile=p_pix).run_with_report(
        None, {"image": pixels[32:]})
    _, r_norm = pyguard.InferenceSession(norm_model, profile=p_norm).run_with_report(
        None, {"image": normalized[32:]})
    np.testing.assert_allclose(r_norm.scores["squeeze"], r_pix.scores["squeeze"], atol=2e-3)
    assert not r_norm.scores["out_of_range"].any()


def test_buffers_are_reused_across_calls():
    model = models.classifier(size=32)
    profile = pyguard.calibrate(model, models.images(20, size=32), squeezers=SQUEEZERS, fpr=0.1,
                                detector="squeeze")
    sess = pyguard.InferenceSession(model, profile=profile)
    x = models.images(4, size=32)
    sess.run(None, {"image": x})
    sess.run(None, {"image": x})
    stack = sess._local.workspaces[(x.shape, True)].stack
    tracemalloc.start()
    try:
        sess.run(None, {"image": x})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sess._local.workspaces[(x.shape, True)].stack is stack
    assert peak < stack.nbytes // 2, f"a steady-state call allocated {peak} bytes (stack is {stack.nbytes})"


# ---- sanity checks and actions -----------------------------------------------------------------------------
def test_non_finite_inputs_are_flagged_without_a_profile():
    model = models.classifier()
    x = models.images(3)
    x[1, 0, 2, 2] = np.nan
    x[2, 1, 0, 0] = np.inf
    sess = pyguard.InferenceSession(model)
    out, report = sess.run_with_report(None, {"image": x})
    assert same_bits(out[0], plain_run(model, {"image": x})[0])
    assert report.flagged.tolist() == [False, True, True]
    assert report.reasons == [[], ["non_finite"], ["non_finite"]]
    assert report.scores["non_finite"].tolist() == [0, 1, 1]


def test_non_finite_and_out_of_range_with_a_profile(profiles):
    model, feed_of, _ = CASES["dynamic_nchw_logits"]
    x = feed_of(4)["image"].copy()
    x[0, 0, 0, 0] = np.nan
    x[1, 2, 3, 4] = 1.5
    sess = pyguard.InferenceSession(model, profile=profiles["dynamic_nchw_logits"])
    out, report = sess.run_with_report(None, {"image": x})
    assert same_bits(out[0], plain_run(model, {"image": x})[0])
    assert "non_finite" in report.reasons[0] and report.scores["squeeze"][0] == np.inf
    assert "input_range" in report.reasons[1]
    assert np.isfinite(report.scores["squeeze"][1:]).all()


def test_profile_without_squeezers_checks_the_range():
    model = models.classifier()
    profile = pyguard.calibrate(model, models.images(20), squeezers=(), fpr=0.1)
    assert profile.squeezers == [] and profile.purifier is None
    x = models.images(3)
    x[2, 0, 0, 0] = -0.5
    out, report = pyguard.InferenceSession(model, profile=profile).run_with_report(None, {"image": x})
    assert same_bits(out[0], plain_run(model, {"image": x})[0])
    assert report.reasons == [[], [], ["input_range"]] and "squeeze" not in report.scores


def test_reject_raises_on_non_finite_values_even_without_a_profile():
    x = models.images(2)
    x[0, 0, 0, 0] = np.inf
    sess = pyguard.InferenceSession(models.classifier(), action="reject")
    with pytest.raises(pyguard.AdversarialInputError, match="non_finite") as err:
        sess.run(None, {"image": x})
    assert err.value.report.flagged.tolist() == [True, False]


def test_reject_raises_with_the_report(profiles):
    model, feed_of, _ = CASES["dynamic_nchw_logits"]
    strict = dataclasses.replace(profiles["dynamic_nchw_logits"], threshold=-1.0)
    sess = pyguard.InferenceSession(model, profile=strict, action="reject")
    with pytest.raises(pyguard.AdversarialInputError) as err:
        sess.run(None, feed_of(2))
    assert isinstance(err.value, pyguard.GuardError)
    assert err.value.report.flagged.all() and err.value.report is sess.last_report
    assert all(r == ["squeeze"] for r in err.value.report.reasons)
    x = feed_of(2)["image"]
    lenient_profile = dataclasses.replace(profiles["dynamic_nchw_logits"], threshold=10.0)
    lenient = pyguard.InferenceSession(model, profile=lenient_profile, action="reject")
    assert same_bits(lenient.run(None, {"image": x})[0], plain_run(model, {"image": x})[0])


@pytest.mark.parametrize("case", ["dynamic_nchw_logits", "fixed_batch_probs"])
def test_purify_returns_the_squeezed_outputs_for_flagged_samples(case, profiles):
    model, feed_of, _ = CASES[case]
    profile = profiles[case]
    x = feed_of(2)["image"]
    # Flag exactly sample 0: a threshold between the two scores.
    _, base = pyguard.InferenceSession(model, profile=profile).run_with_report(None, {"image": x})
    s = base.scores["squeeze"]
    if s[0] <= s[1]:
        x = np.ascontiguousarray(x[::-1])
        s = s[::-1]
    mid = dataclasses.replace(profile, threshold=float((s[0] + s[1]) / 2), purifier="median:2")
    sess = pyguard.InferenceSession(model, profile=mid, action="purify")
    got, report = sess.run_with_report(None, {"image": x})
    assert report.flagged.tolist() == [True, False] and report.purified.tolist() == [True, False]
    squeezed = ops.median_filter(x, 2, layout="NCHW")
    want_flagged = plain_run(model, {"image": squeezed})[0][0]
    want_clean = plain_run(model, {"image": x})[0][1]
    np.testing.assert_array_equal(got[0][0], want_flagged)
    np.testing.assert_array_equal(got[0][1], want_clean)


# ---- concurrency -------------------------------------------------------------------------------------------
def test_threads_on_one_session_give_the_serial_reports(profiles):
    model, _, _ = CASES["dynamic_nchw_logits"]
    sess = pyguard.InferenceSession(model, profile=profiles["dynamic_nchw_logits"])
    inputs = [models.images(1 + i % 3, seed=100 + i) for i in range(24)]
    serial = [sess.run_with_report(None, {"image": x}) for x in inputs]
    results: dict[int, tuple] = {}
    errors = []

    def worker(indices):
        try:
            for i in indices:
                out, report = sess.run_with_report(None, {"image": inputs[i]})
                assert sess.last_report is report
                results[i] = (out, report)
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(range(k, 24, 4),)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, (out, report) in enumerate(serial):
        t_out, t_report = results[i]
        assert same_bits(t_out[0], out[0])
        np.testing.assert_array_equal(t_report.scores["squeeze"], report.scores["squeeze"])
        np.testing.assert_array_equal(t_report.flagged, report.flagged)


# ---- error paths -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def guarded(profiles):
    model, _, _ = CASES["dynamic_nchw_logits"]
    return pyguard.InferenceSession(model, profile=profiles["dynamic_nchw_logits"])


@pytest.mark.parametrize("feed, match", [
    ({"img": models.images(1)}, "unknown input name 'img'"),
    ({}, "missing input"),
    ({"image": models.images(1).astype(np.float64)}, "dtype float64"),
    ({"image": models.images(1)[0]}, "3 dimensions"),
    ({"image": models.images(1, channels=1)}, "axis 1 must be 3"),
    ({"image": models.images(1).tolist()}, "must be a numpy array"),
])
def test_bad_feeds_raise_input_error(guarded, feed, match):
    with pytest.raises(pyguard.InputError, match=match):
        guarded.run(None, feed)


def test_ort_values_pass_through_sanity_only_sessions(guarded):
    model = CASES["dynamic_nchw_logits"][0]
    x = models.images(2)
    value = ort.OrtValue.ortvalue_from_numpy(x)
    assert same_bits(pyguard.InferenceSession(model).run(None, {"image": value})[0],
                     plain_run(model, {"image": x})[0])
    with pytest.raises(pyguard.InputError, match="must be a numpy array"):
        guarded.run(None, {"image": value})  # the detector needs the pixels


def test_bad_feed_on_fixed_batch_and_bad_output_name(profiles):
    model, feed_of, _ = CASES["fixed_batch_probs"]
    sess = pyguard.InferenceSession(model, profile=profiles["fixed_batch_probs"])
    with pytest.raises(pyguard.InputError, match="axis 0 must be 2"):
        sess.run(None, {"image": models.images(3)})
    with pytest.raises(pyguard.InputError, match="unknown output"):
        sess.run(["nope"], feed_of(0))
    with pytest.raises(pyguard.InputError, match="must be a dict"):
        sess.run(None, [feed_of(0)["image"]])
    assert issubclass(pyguard.InputError, ValueError)


def test_profile_for_another_model_is_refused(profiles):
    other = models.classifier(seed=42)
    with pytest.raises(pyguard.ProfileError, match="calibrated for model sha256"):
        pyguard.InferenceSession(other, profile=profiles["dynamic_nchw_logits"])


def test_profile_naming_a_missing_input_or_output_is_refused(profiles):
    model, _, _ = CASES["dynamic_nchw_logits"]
    p = profiles["dynamic_nchw_logits"]
    bad_input = dataclasses.replace(p, input=dataclasses.replace(p.input, name="pixels"))
    with pytest.raises(pyguard.ProfileError, match="'pixels' is not an input"):
        pyguard.InferenceSession(model, profile=bad_input)
    with pytest.raises(pyguard.ProfileError, match="not an output"):
        pyguard.InferenceSession(model, profile=dataclasses.replace(p, output_name="probs"))


def test_corrupt_or_missing_model_raises_model_error(tmp_path, profiles):
    with pytest.raises(pyguard.ModelError):
        pyguard.InferenceSession(b"this is not an onnx model")
    truncated = CASES["dynamic_nchw_logits"][0][:200]
    with pytest.raises(pyguard.ModelError):
        pyguard.InferenceSession(truncated)
    with pytest.raises(pyguard.ModelError):
        pyguard.InferenceSession(str(tmp_path / "missing.onnx"))
    with pytest.raises(pyguard.ModelError):
        pyguard.InferenceSession(str(tmp_path / "missing.onnx"), profile=profiles["dynamic_nchw_logits"])


def test_bad_action_and_profile_type():
    model = models.classifier()
    with pytest.raises(pyguard.ConfigError, match="action"):
        pyguard.InferenceSession(model, action="block")
    with pytest.raises(pyguard.ConfigError, match="profile"):
        pyguard.InferenceSession(model, profile={"threshold": 1})
    with pytest.raises(pyguard.ConfigError, match="purify"):
        pyguard.InferenceSession(model, action="purify")


# ---- every squeezer on every layout ------------------------------------------------------------------------
def _direct_squeeze(spec, x, layout):
    """The squeezer applied with pyguard.ops directly (NHW images go through as one-channel NHWC)."""
    view, lay = (x[..., None], "NHWC") if layout == "NHW" else (x, layout)
    kind, arg = spec.split(":")
    if kind == "bit_depth":
        out = ops.bit_depth(view, int(arg))
    elif kind == "median":
        out = ops.median_filter(view, int(arg), layout=lay)
    elif kind == "jpeg":
        out = ops.jpeg(view, int(arg), layout=lay)
    else:
        search, patch, h = arg.split("-")
        out = ops.nl_means(view, search=int(search), patch=int(patch), h=float(h), layout=lay)
    return out.reshape(x.shape)


@pytest.mark.parametrize("spec", ["bit_depth:3", "median:3", "median:5", "jpeg:75", "nl_means:5-3-4"])
@pytest.mark.parametrize("layout, dtype", [("NCHW", np.float32), ("NHWC", np.float32), ("NHW", np.float32),
                                           ("NCHW", np.uint8)])
def test_every_squeezer_on_every_layout(spec, layout, dtype):
    channels = 1 if layout == "NHW" else 3
    model = models.classifier(layout=layout, channels=channels, outputs=("probs",),
                              dtype=TensorProto.UINT8 if dtype == np.uint8 else TensorProto.FLOAT)
    data = models.images(12, layout="NHWC" if layout == "NHWC" else "NCHW", channels=channels, dtype=dtype)
    if layout == "NHW":
        data = np.ascontiguousarray(data[:, 0])
    profile = pyguard.calibrate(model, data[:10], squeezers=(spec,), fpr=0.1, detector="squeeze")
    x = data[10:]
    _, report = pyguard.InferenceSession(model, profile=profile).run_with_report(None, {"image": x})
    p0 = plain_run(model, {"image": x})[0].astype(np.float64)
    p1 = plain_run(model, {"image": _direct_squeeze(spec, x, layout)})[0].astype(np.float64)
    np.testing.assert_allclose(report.scores["squeeze"], np.abs(p0 - p1).sum(axis=1), rtol=1e-6, atol=1e-9)


# ---- the fast path (the common call: one contiguous input, no squeeze detector) ----------------------------
@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    return np.ascontiguousarray(load_digits().images.astype(np.float32)[:, None] / 16.0)


@pytest.fixture(scope="module")
def fast_cases(digits):
    """name -> (model, profile or None, feeds): every kind of check the fast path makes."""
    from graphs import residual_cnn

    residual = residual_cnn().SerializeToString()
    u8_model = models.classifier(dtype=TensorProto.UINT8, outputs=("probs", "logits"))
    u8_data = models.images(40, dtype=np.uint8)
    clean = digits[600:640].copy()
    loud = clean.copy()
    loud[3] *= 40  # activations and input range
    nan = clean.copy()
    nan[5, 0, 2, 2] = np.nan
    above = clean.copy()
    above[7, 0, 0, 0] = 1.0001
    digit_feeds = {"clean": clean, "loud": loud, "nan": nan, "above": above, "one": clean[:1].copy()}
    monitor = pyguard.calibrate(residual, digits[:600], squeezers=(), activations=True,
                                activation_budget=None)
    range_only = pyguard.calibrate(residual, digits[:600], squeezers=(), activations=False)
    u8_profile = pyguard.calibrate(u8_model, u8_data[:30], squeezers=(), activations=False, fpr=0.1)
    u8_feeds = {"clean": u8_data[30:], "one": u8_data[30:31].copy()}
    return {"sanity": (residual, None, digit_feeds), "monitor": (residual, monitor, digit_feeds),
            "range_only": (residual, range_only, digit_feeds), "u8_range": (u8_model, u8_profile, u8_feeds),
            "u8_sanity": (u8_model, None, u8_feeds)}


def general_path(sess):
    sess._fast = None  # the same session, made to take the general path
    return sess


def assert_same_report(got, want) -> None:
    assert got.flagged.dtype == want.flagged.dtype and got.flagged.tolist() == want.flagged.tolist()
    assert got.reasons == want.reasons and got.threshold == want.threshold and got.action == want.action
    assert list(got.scores) == list(want.scores)
    for key, value in want.scores.items():
        assert same_bits(np.asarray(got.scores[key]), np.asarray(value)), key
    assert list(got.timings) == list(want.timings)


@pytest.mark.parametrize("case", ["sanity", "monitor", "range_only", "u8_range", "u8_sanity"])
def test_fast_path_gives_the_general_paths_outputs_and_report(case, fast_cases):
    from pyguard.session import _PendingReport

    model, profile, feeds = fast_cases[case]
    fast = pyguard.InferenceSession(model, profile=profile)
    general = general_path(pyguard.InferenceSession(model, profile=profile))
    assert fast._fast is not None
    name = fast.get_inputs()[0].name
    last_output = [fast.get_outputs()[-1].name]
    for label, x in feeds.items():
        feed = {name: x}
        want, want_report = general.run_with_report(None, feed)
        got, got_report = fast.run_with_report(None, feed)
        assert len(got) == len(want) and all(same_bits(a, b) for a, b in zip(got, want)), label
        assert_same_report(got_report, want_report)
        assert fast.last_report is got_report
        got = fast.run(None, feed)
        assert type(fast._local.report) is _PendingReport  # built when read, then kept
        assert all(same_bits(a, b) for a, b in zip(got, want))
        assert_same_report(fast.last_report, want_report)
        assert fast.last_report is fast.last_report
        assert same_bits(fast.run(last_output, feed)[0], want[-1])
        assert_same_report(fast.last_report, want_report)
    if case == "monitor":
        assert fast.last_report.scores["activation_range"].shape == (1,)
        assert "activation_range" in fast.run_with_report(None, {name: feeds["loud"]})[1].reasons[3]


def test_calls_the_fast_path_leaves_to_the_general_path(fast_cases):
    from pyguard.report import GuardReport

    model, profile, feeds = fast_cases["monitor"]
    sess = pyguard.InferenceSession(model, profile=profile)
    general = general_path(pyguard.InferenceSession(model, profile=profile))
    x = feeds["nan"]
    strided = np.repeat(x, 2, axis=0)[::2]
    assert not strided.flags.c_contiguous
    for feed in ({"input": strided}, _DictFeed(input=x)):
        got = sess.run(None, feed)
        assert type(sess._local.report) is GuardReport  # the general path builds it at once
        assert_same_report(sess.last_report, general.run_with_report(None, dict(feed))[1])
        assert same_bits(got[0], general.run(None, dict(feed))[0])
    for bad, match in (({"input": x.astype(np.float64)}, "dtype"), ({"input": x[:, :, :4]}, "shape"),
                       ({"input": x[0]}, "dimensions"), ({"image": x}, "unknown input"),
                       ({"input": x, "extra": x}, "unknown input"), ({}, "missing")):
        with pytest.raises(pyguard.InputError, match=match):
            sess.run(None, bad)
    with pytest.raises(pyguard.InputError, match="unknown output"):
        sess.run(["nope"], {"input": x})


class _DictFeed(dict):
    """A dict subclass: the fast path takes plain dicts only."""


def test_fast_path_reject_and_telemetry(fast_cases, tmp_path):
    from pyguard.telemetry import Telemetry

    model, profile, feeds = fast_cases["monitor"]
    sess = pyguard.InferenceSession(model, profile=profile, action="reject")
    assert len(sess.run(None, {"input": feeds["clean"][:2]})) == 1
    with pytest.raises(pyguard.AdversarialInputError) as err:
        sess.run(None, {"input": feeds["loud"]})
    assert err.value.report is sess.last_report and "activation_range" in err.value.report.reasons[3]
    telemetry = Telemetry()
    counted = pyguard.InferenceSession(model, profile=profile, telemetry=telemetry)
    counted.run(None, {"input": feeds["loud"]})
    counted.run(None, {"input": feeds["clean"]})
    assert type(counted._local.report) is pyguard.GuardReport  # the hooks see the report at once
    assert telemetry.snapshot()["samples"] == 2 * len(feeds["clean"])


def test_a_pending_report_does_not_keep_the_session_alive(fast_cases):
    import weakref

    model, profile, feeds = fast_cases["monitor"]
    sess = pyguard.InferenceSession(model, profile=profile)
    sess.run(None, {"input": feeds["clean"]})
    ref = weakref.ref(sess)
    del sess
    assert ref() is None


def test_calibration_without_squeezers_still_checks_the_input_range():
    with pytest.raises(pyguard.ConfigError, match="outside input_range"):
        pyguard.calibrate(models.classifier(), models.images(20) * 255, fpr=0.1, squeezers=(),
                          input_range=(0, 1), activations=False)


def test_native_verdict_matches_the_monitor_check(fast_cases, isa):
    from pyguard import _core

    monitor = fast_cases["monitor"][1].activations.monitor
    k = monitor.score_hi.size
    rng = np.random.default_rng(3)
    excess = (rng.normal(size=(64, k)) * max(monitor.tolerance, 1e-3) * 2).astype(np.float32)
    excess[3, 5] = np.nan
    excess[4, :] = -0.0
    excess[5, -1] = np.inf
    nonfinite, out_of_range = np.zeros(64, np.int64), np.zeros(64, np.int64)
    nonfinite[7], out_of_range[8] = 2, 1
    flagged, scores, hits = _core.session_verdict(nonfinite, out_of_range, excess, k, monitor.tolerance, isa)
    want_flags, want_scores = monitor.check(excess)
    assert same_bits(scores, want_scores) and np.isinf(scores[3])
    assert flagged.tolist() == (want_flags | (nonfinite > 0) | (out_of_range > 0)).tolist()
    assert hits == flagged.sum() > 2
    flagged, scores, hits = _core.session_verdict(nonfinite, out_of_range, excess, 0, 0.0, isa)
    assert scores is None and hits == 2
    assert flagged.tolist() == ((nonfinite > 0) | (out_of_range > 0)).tolist()
    with pytest.raises(ValueError):
        _core.session_verdict(nonfinite, out_of_range, excess[:, :-1].copy(), k, 0.0, isa)
