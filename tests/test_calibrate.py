"""pyguard.calibrate and pyguard.metrics: the threshold rule, measured FPR, conventions, error paths."""

from __future__ import annotations

import math

import models
import numpy as np
import pytest
from onnx import TensorProto
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score

import pyguard
from pyguard.metrics import binomial_interval, detection_rate, roc_auc, threshold_at_fpr

SQUEEZERS = ("bit_depth:4", "median:2")


# ---- metrics -----------------------------------------------------------------------------------------------
def test_threshold_rule_is_the_reference_one():
    scores = np.arange(1, 101, dtype=np.float64)[::-1]
    assert threshold_at_fpr(scores, 0.05) == 95.0  # sorted[ceil(100 * 0.95) - 1]
    assert threshold_at_fpr(scores, 0.5) == 50.0
    assert threshold_at_fpr([3.0, 1.0, 2.0], 0.05) == 3.0  # ceil(2.85) - 1 = 2
    rng = np.random.default_rng(0)
    for n in (1, 7, 20, 333):
        s = rng.random(n)
        for fpr in (0.01, 0.05, 0.1, 0.37):
            t = threshold_at_fpr(s, fpr)
            assert t == sorted(s)[math.ceil(n * (1 - fpr)) - 1]
            assert np.mean(s > t) <= fpr


@pytest.mark.parametrize("bad", [0, 1, -0.1, 1.5, "0.05", True, None])
def test_threshold_rule_rejects_bad_fpr(bad):
    with pytest.raises(pyguard.ConfigError, match="fpr"):
        threshold_at_fpr([1.0, 2.0], bad)


def test_threshold_rule_rejects_empty_and_non_finite():
    with pytest.raises(pyguard.ConfigError, match="empty"):
        threshold_at_fpr([], 0.05)
    with pytest.raises(pyguard.ConfigError, match="non-finite"):
        threshold_at_fpr([1.0, np.nan], 0.05)


def test_roc_auc_matches_scikit_learn_with_ties():
    rng = np.random.default_rng(1)
    for _ in range(20):
        neg = rng.integers(0, 10, rng.integers(1, 50)).astype(float)
        pos = rng.integers(3, 13, rng.integers(1, 50)).astype(float)
        y = np.r_[np.zeros(len(neg)), np.ones(len(pos))]
        assert roc_auc(neg, pos) == pytest.approx(roc_auc_score(y, np.r_[neg, pos]), abs=1e-12)
    assert np.isnan(roc_auc([], [1.0]))


def test_detection_rate_and_interval():
    assert detection_rate([0.1, 0.5, 0.9, 1.0], 0.5) == 0.5
    assert np.isnan(detection_rate([], 0.5))
    lo, hi = binomial_interval(50, 1000)
    assert lo < 0.05 < hi and 0.02 < lo and hi < 0.08


# ---- calibration -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model():
    return models.classifier(outputs=("logits", "probs"))


def test_threshold_is_the_rule_on_the_session_scores(model):
    data = models.images(300, seed=5)
    profile = pyguard.calibrate(model, data, squeezers=SQUEEZERS, fpr=0.05, batch_size=64, detector="squeeze")
    sess = pyguard.InferenceSession(model, profile=profile)
    _, report = sess.run_with_report(None, {"image": data})
    assert profile.threshold == threshold_at_fpr(report.scores["squeeze"], 0.05)
    assert report.flagged.sum() <= 0.05 * len(data)
    assert profile.n_calibration == 300
    assert profile.output_name == "logits" and profile.output_kind == "logits"
    assert profile.score_quantiles["1"] == pytest.approx(report.scores["squeeze"].max())
    assert profile.purifier in profile.squeezers


def test_measured_fpr_on_held_out_clean_data_is_within_a_binomial_interval(model):
    fpr = 0.05
    calib, held_out = models.images(4000, seed=11), models.images(3000, seed=12)
    profile = pyguard.calibrate(model, calib, squeezers=SQUEEZERS, fpr=fpr, batch_size=500,
                                detector="squeeze")
    sess = pyguard.InferenceSession(model, profile=profile)
    flagged = sum(int(sess.run_with_report(None, {"image": held_out[i:i + 500]})[1].flagged.sum())
                  for i in range(0, len(held_out), 500))
    interval = binomtest(flagged, len(held_out), fpr).proportion_ci(confidence_level=0.999)
    assert interval.low <= fpr <= interval.high, (flagged / len(held_out), interval)


def test_output_kind_detection(model):
    data = models.images(20)
    assert pyguard.calibrate(model, data, output_name="probs", fpr=0.1).output_kind == "probabilities"
    assert pyguard.calibrate(model, data, output_name="logits", fpr=0.1).output_kind == "logits"


def test_input_range_inference_and_override():
    model = models.classifier()
    unit = models.images(20)
    assert pyguard.calibrate(model, unit, fpr=0.1).input.range == (0.0, 1.0)
    assert pyguard.calibrate(model, unit * 255, fpr=0.1).input.range == (0.0, 255.0)
    assert pyguard.calibrate(model, unit, fpr=0.1, input_range=(0, 2)).input.range == (0.0, 2.0)
    with pytest.raises(pyguard.ConfigError, match="neither"):
        pyguard.calibrate(model, unit * 1000, fpr=0.1)
    with pytest.raises(pyguard.ConfigError, match="outside input_range"):
        pyguard.calibrate(model, unit * 255, fpr=0.1, input_range=(0, 1))
    with pytest.raises(pyguard.ConfigError, match="lo < hi"):
        pyguard.calibrate(model, unit, fpr=0.1, input_range=(1, 0))
    u8_model = models.classifier(dtype=TensorProto.UINT8)
    u8 = pyguard.calibrate(u8_model, models.images(20, dtype=np.uint8), fpr=0.1)
    assert u8.input.range == (0.0, 255.0) and u8.input.dtype == "uint8"


def test_range_0_255_squeezes_like_range_0_1():
    """Same model on [0, 255] inputs (scaled inside): scores equal those of the [0, 1] model."""
    model = models.classifier()
    data = models.images(30, seed=4)
    p1 = pyguard.calibrate(model, data, squeezers=("bit_depth:3", "jpeg:60"), fpr=0.1, detector="squeeze")
    s1 = pyguard.InferenceSession(model, profile=p1).run_with_report(None, {"image": data})[1]
    scaled = models.classifier(denormalize=([0.0] * 3, [1 / 255] * 3))
    p255 = pyguard.calibrate(scaled, data * 255, squeezers=("bit_depth:3", "jpeg:60"), fpr=0.1,
                             detector="squeeze")
    s255 = pyguard.InferenceSession(scaled, profile=p255).run_with_report(None, {"image": data * 255})[1]
    assert p255.input.range == (0.0, 255.0)
    np.testing.assert_allclose(s255.scores["squeeze"], s1.scores["squeeze"], atol=1e-3)


def test_layout_inference():
    nhwc = models.classifier(layout="NHWC")
    assert pyguard.calibrate(nhwc, models.images(20, layout="NHWC"), fpr=0.1).input.layout == "NHWC"
    assert pyguard.calibrate(models.classifier(), models.images(20), fpr=0.1).input.layout == "NCHW"
    gray = models.classifier(channels=1, layout="NHW")
    assert pyguard.calibrate(gray, models.images(20, channels=1)[:, 0], fpr=0.1).input.layout == "NHW"
    with pytest.raises(pyguard.ConfigError, match="layout"):
        pyguard.calibrate(nhwc, models.images(20, layout="NHWC"), fpr=0.1, layout="NHW")


def test_fixed_batch_model_pads_the_last_batch():
    model = models.classifier(batch=4)
    data = models.images(10, seed=2)
    profile = pyguard.calibrate(model, data, squeezers=SQUEEZERS, fpr=0.1, detector="squeeze")
    assert profile.n_calibration == 10
    sess = pyguard.InferenceSession(model, profile=profile)
    padded = np.concatenate([data, np.repeat(data[-1:], 2, axis=0)])
    scores = np.concatenate([sess.run_with_report(None, {"image": padded[i:i + 4]})[1].scores["squeeze"]
                             for i in range(0, 12, 4)])[:10]
    assert profile.threshold == threshold_at_fpr(scores, 0.1)


def test_iterable_of_feeds_with_two_inputs():
    model = models.two_inputs()
    feeds = [{"image": models.images(8, size=12, seed=i), "gain": np.full((8, 1), 1.5, np.float32)}
             for i in range(5)]
    profile = pyguard.calibrate(model, feeds, input_name="image", output_name="probs", fpr=0.1)
    assert profile.n_calibration == 40 and profile.output_kind == "probabilities"
    assert pyguard.calibrate(model, feeds, fpr=0.1).input.name == "image"  # the only image-shaped input
    with pytest.raises(pyguard.InputError, match="missing input"):
        pyguard.calibrate(model, models.images(8, size=12), fpr=0.1)  # an array feeds the image only
    with pytest.raises(pyguard.InputError, match="must be a dict containing 'image'"):
        pyguard.calibrate(model, [np.zeros(3)], input_name="image", fpr=0.1)


def test_normalization_conventions():
    model = models.classifier()
    data = models.images(20)
    p = pyguard.calibrate(model, data, fpr=0.1, normalization=(0.5, 0.25))
    assert p.input.mean == [0.5] * 3 and p.input.std == [0.25] * 3 and p.input.range == (0.0, 1.0)
    p255 = pyguard.calibrate(model, data, fpr=0.1, normalization=([120] * 3, [60] * 3))
    assert p255.input.range == (0, 255)
    with pytest.raises(pyguard.ConfigError, match="2 values; the input has 3 channels"):
        pyguard.calibrate(model, data, fpr=0.1, normalization=([0.5, 0.5], [0.2, 0.2]))
    with pytest.raises(pyguard.ConfigError, match="std must be positive"):
        pyguard.calibrate(model, data, fpr=0.1, normalization=(0.5, 0.0))
    u8 = models.classifier(dtype=TensorProto.UINT8)
    with pytest.raises(pyguard.ConfigError, match="uint8"):
        pyguard.calibrate(u8, models.images(20, dtype=np.uint8), fpr=0.1, normalization=(0.5, 0.2))


def test_calibration_error_paths(model, tmp_path):
    data = models.images(20)
    with pytest.raises(pyguard.ConfigError, match="unknown squeezer"):
        pyguard.calibrate(model, data, squeezers=("blur:3",), detector="squeeze")
    with pytest.raises(pyguard.ConfigError, match="duplicate"):
        pyguard.calibrate(model, data, squeezers=("median:2", "median:2"), detector="squeeze")
    with pytest.raises(pyguard.ConfigError, match="fpr"):
        pyguard.calibrate(model, data, fpr=0.0)
    with pytest.raises(pyguard.ConfigError, match="batch_size"):
        pyguard.calibrate(model, data, batch_size=0)
    with pytest.raises(pyguard.InputError, match="empty"):
        pyguard.calibrate(model, data[:0])
    with pytest.raises(pyguard.InputError, match="dtype float64"):
        pyguard.calibrate(model, data.astype(np.float64))
    bad = data.copy()
    bad[3, 0, 0, 0] = np.nan
    with pytest.raises(pyguard.InputError, match="NaN or Inf"):
        pyguard.calibrate(model, bad)
    with pytest.raises(pyguard.InputError, match="no input 'pixels'"):
        pyguard.calibrate(model, data, input_name="pixels")
    with pytest.raises(pyguard.InputError, match="no output 'scores'"):
        pyguard.calibrate(model, data, output_name="scores")
    with pytest.raises(pyguard.ModelError):
        pyguard.calibrate(str(tmp_path / "missing.onnx"), data)
    with pytest.raises(pyguard.ModelError):
        pyguard.calibrate(b"garbage", data)
    with pytest.raises(pyguard.ConfigError, match="path or bytes"):
        pyguard.calibrate(42, data)


def test_few_samples_warn(model):
    with pytest.warns(UserWarning, match="too few"):
        pyguard.calibrate(model, models.images(10), fpr=0.05)


def test_squeezer_specs():
    from pyguard import squeezers as sq

    assert sq.parse("bit_depth:5") == sq.BitDepth(5)
    assert sq.parse("median:3") == sq.Median(3)
    assert sq.parse("nl_means:11-3-4") == sq.NLMeans(11, 3, 4.0)
    assert sq.parse("nl_means:13-3-2").spec == "nl_means:13-3-2"
    assert sq.parse("jpeg:75").spec == "jpeg:75"
    assert sq.parse(sq.Median(2)) == sq.Median(2)
    for bad in ("bit_depth:0", "bit_depth:9", "bit_depth:x", "median:4", "jpeg:0", "jpeg:101",
                "nl_means:11-3", "nl_means:10-3-4", "nl_means:11-3-0", "nl_means:11-3-h", "median",
                "sharpen:2"):
        with pytest.raises(pyguard.ConfigError):
            sq.parse(bad)
    with pytest.raises(pyguard.ConfigError):
        sq.parse(5)


# ---- the bundled digits demo: FPR and detection on its adversarial examples --------------------------------
@pytest.fixture(scope="module")
def digits():
    from pyguard.data import load_digits_demo

    demo = load_digits_demo()
    profile = pyguard.calibrate(demo.model_path, demo.x_calib, squeezers=("bit_depth:1", "median:2"),
                                fpr=0.05, detector="squeeze")
    return demo, pyguard.InferenceSession(str(demo.model_path), profile=profile)


def test_demo_fpr_on_held_out_test_images(digits):
    demo, sess = digits
    _, report = sess.run_with_report(None, {"image": demo.x_test})
    flagged = int(report.flagged.sum())
    interval = binomtest(flagged, len(demo.x_test), 0.05).proportion_ci(confidence_level=0.999)
    assert interval.low <= 0.05 <= interval.high


def test_demo_detects_minimal_perturbation_attacks(digits):
    """Feature squeezing catches the attacks that stop just across the decision boundary (CW L2 with zero
    confidence, DeepFool, JSMA) far above its false-positive rate; ROC-AUC counts successful examples."""
    demo, sess = digits
    _, clean = sess.run_with_report(None, {"image": demo.x_test})
    for name in ("cw_l2_0", "deepfool", "jsma"):
        x_adv, idx = demo.adversarial[name]
        (logits,), report = sess.run_with_report(["logits"], {"image": x_adv})
        success = logits.argmax(axis=1) != demo.y_test[idx]
        assert success.sum() > 200
        rate = detection_rate(report.scores["squeeze"][success], report.threshold)
        auc = roc_auc(clean.scores["squeeze"], report.scores["squeeze"][success])
        assert rate >= 0.7 and auc >= 0.9, (name, rate, auc)
