"""Evaluation metrics against hand-computed cases (Feature Squeezing paper definitions)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pyguard.metrics import (
    attack_success,
    attack_summary,
    detection_rate,
    perturbation_norms,
    roc_auc,
    roc_curve,
)


def test_roc_curve_hand_case():
    # clean scores 0.1, 0.4; adversarial 0.35, 0.8. Thresholds (descending, flag when score >= t):
    # 0.8 -> (0, 1/2); 0.4 -> (1/2, 1/2); 0.35 -> (1/2, 1); 0.1 -> (1, 1).
    fpr, tpr = roc_curve([0.1, 0.4], [0.35, 0.8])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    assert np.trapezoid(tpr, fpr) == pytest.approx(0.75) == roc_auc([0.1, 0.4], [0.35, 0.8])


def test_roc_curve_ties_and_empty():
    fpr, tpr = roc_curve([1.0, 1.0], [1.0])
    np.testing.assert_allclose(fpr, [0, 1])
    np.testing.assert_allclose(tpr, [0, 1])
    assert roc_auc([1.0, 1.0], [1.0]) == 0.5
    fpr, tpr = roc_curve([], [1.0])
    np.testing.assert_allclose(fpr, [0, 1])
    assert math.isnan(roc_auc([], [1.0]))


def test_attack_success_needs_a_correct_source():
    pred = np.array([1, 2, 3, 4])
    y = np.array([1, 0, 0, 0])
    assert attack_success(pred, y).tolist() == [False, True, True, True]
    masked = attack_success(pred, y, source_correct=[True, True, False, True])
    assert masked.tolist() == [False, True, False, True]


def test_perturbation_norms():
    x = np.zeros((2, 1, 2, 2), np.float32)
    adv = x.copy()
    adv[0, 0, 0, 0], adv[0, 0, 1, 1] = 0.3, -0.4
    adv[1, 0, 0, 1] = 0.1
    l2, linf = perturbation_norms(adv, x)
    np.testing.assert_allclose(l2, [0.5, 0.1], rtol=1e-6)
    np.testing.assert_allclose(linf, [0.4, 0.1], rtol=1e-6)


def test_attack_summary_hand_case():
    # 4 adversarial examples; #2 failed (model still right). Threshold 0.5, flag when score > 0.5.
    success = np.array([True, True, False, True])
    scores = np.array([0.9, 0.2, 0.95, 0.6])
    flagged = scores > 0.5
    clean = np.array([0.1, 0.3, 0.7])
    s = attack_summary(success=success, scores=scores, flagged=flagged, clean_scores=clean, threshold=0.5,
                       l2=np.array([1.0, 2.0, 100.0, 3.0]), linf=np.array([0.1, 0.2, 0.9, 0.3]),
                       robust=np.array([False, True, True, False]), queries=np.array([10, 20, 1000, 30]))
    assert s["examples"] == 4 and s["successful"] == 3
    assert s["success_rate"] == 0.75
    assert s["detection_rate"] == pytest.approx(2 / 3)  # 0.9 and 0.6 of the three successful ones
    # ROC-AUC of successful {0.9, 0.2, 0.6} vs clean {0.1, 0.3, 0.7}: pairs won 3 + 1 + 2 = 6 of 9.
    assert s["roc_auc"] == pytest.approx(6 / 9)
    assert s["flagged_all"] == 0.75  # the failed one is flagged too
    assert s["evasion_rate"] == 0.25  # only #1 is successful and unflagged
    assert s["mean_l2"] == pytest.approx(2.0) and s["mean_linf"] == pytest.approx(0.2)
    assert s["robust_accuracy_purify"] == 0.5
    assert s["mean_queries"] == 20 and s["median_queries"] == 20 and s["max_queries_used"] == 1000


def test_attack_summary_without_success():
    s = attack_summary(success=np.zeros(2, bool), scores=np.array([0.1, 0.9]),
                       flagged=np.array([False, True]), clean_scores=np.array([0.0]), threshold=0.5)
    assert s["successful"] == 0 and math.isnan(s["detection_rate"]) and math.isnan(s["roc_auc"])
    assert s["flagged_all"] == 0.5 and s["evasion_rate"] == 0.0
    assert detection_rate(np.array([]), 0.5) != detection_rate(np.array([]), 0.5)  # NaN


def test_demo_uses_the_same_success_rule():
    from pyguard import demo

    class Fake:
        class profile:  # noqa: N801 - mimics the session's attribute
            threshold = 0.5
            input = type("I", (), {"name": "image"})
            output_name = "logits"

        def run_with_report(self, names, feed):
            x = feed["image"]
            logits = np.zeros((len(x), 3), np.float32)
            logits[np.arange(len(x)), x[:, 0].astype(int)] = 1.0
            report = type("R", (), {"scores": {"squeeze": x[:, 1].astype(np.float64)},
                                    "flagged": x[:, 1] > 0.5, "__len__": lambda self: len(x)})()
            return [logits], report

    clean_x = np.array([[0, 0.1], [1, 0.2], [2, 0.9]], np.float32)
    attack = {"x": np.array([[1, 0.8], [1, 0.3], [2, 0.7]], np.float32), "y": np.array([0, 1, 1]),
              "source_correct": np.array([True, True, False])}
    clean, results = demo.evaluate(Fake(), clean_x, np.array([0, 1, 2]), {"a": attack}, None)
    expected = attack_success(attack["pred"], attack["y"], attack["source_correct"])
    assert attack["success"].tolist() == expected.tolist() == [True, False, False]
    assert results[0].detected == 1.0 and results[0].successful == 1
    assert clean["flagged"] == 1
