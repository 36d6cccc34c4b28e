"""Federated calibration: per-site KLL summaries merged into a fleet profile that matches calibrating on the
union of the sites' data within the sketch's stated rank error (exactly, while the sketch is exact)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from models import classifier, images

import pyguard
from pyguard.federated import CalibrationSummary, merge_profiles, summarize

pytest.importorskip("datasketches")

SQUEEZERS = ("bit_depth:3", "median:2")
FPR = 0.05


@pytest.fixture(scope="module")
def model():
    return classifier(size=16, outputs=("logits",), seed=3)


def _sites(sizes, seed=0):
    """Clean images of different sites: each its own seed and brightness (different distributions)."""
    out = []
    for i, n in enumerate(sizes):
        x = images(n, size=16, seed=seed + 10 * i)
        out.append(np.ascontiguousarray(x * (0.7 + 0.1 * i) + 0.05 * i, dtype=np.float32))
    return out


def _template(model, data):
    return pyguard.calibrate(model, data, squeezers=SQUEEZERS, fpr=FPR, input_range=(0.0, 1.0),
                             detector="squeeze")


def _union_scores(model, template, union):
    sess = pyguard.InferenceSession(model, profile=template)
    return np.sort(sess.run_with_report(None, {"image": union})[1].scores["squeeze"])


def test_small_fleet_is_exactly_calibration_on_the_union(model):
    sites = _sites([30, 41, 52])
    template = _template(model, sites[0])
    summaries = [summarize(model, x, template, site=f"site{i}") for i, x in enumerate(sites)]
    fleet = template.merge(summaries)
    union = pyguard.calibrate(model, np.concatenate(sites), squeezers=SQUEEZERS, fpr=FPR,
                              input_range=(0.0, 1.0), detector="squeeze")
    assert fleet.threshold == union.threshold  # n = 123 < k: the sketch holds every score
    assert fleet.n_calibration == union.n_calibration == 123
    assert fleet.purifier == union.purifier
    assert fleet.fleet["sites"] == ["site0", "site1", "site2"]
    union_x = np.concatenate(sites)
    assert fleet.fleet["input_range"] == [float(union_x.min()), float(union_x.max())]
    scores = _union_scores(model, template, np.concatenate(sites))
    assert fleet.fleet["score_range"] == [scores[0], scores[-1]]


@pytest.mark.parametrize("k", [32, 200])
def test_large_fleet_threshold_is_within_the_stated_rank_error(model, k):
    sites = _sites([700, 1100, 1500], seed=5)
    union_x = np.concatenate(sites)
    template = _template(model, sites[0])
    fleet = template.merge([summarize(model, x, template, k=k) for x in sites])
    n = len(union_x)
    exact = pyguard.calibrate(model, union_x, squeezers=SQUEEZERS, fpr=FPR, input_range=(0.0, 1.0),
                              detector="squeeze")
    scores = _union_scores(model, template, union_x)
    eps = fleet.fleet["rank_error"]
    assert 0 < eps < (0.2 if k == 32 else 0.02)
    target = np.ceil(n * (1 - FPR)) / n
    assert exact.threshold == scores[int(np.ceil(n * (1 - FPR))) - 1]  # the reference rule on the union
    rank = np.searchsorted(scores, fleet.threshold, side="right") / n  # fraction of union scores <= T
    assert abs(rank - target) <= eps, (rank, target, eps)
    lo = scores[max(int(np.floor((target - eps) * n)) - 1, 0)]
    hi = scores[min(int(np.ceil((target + eps) * n)), n) - 1]
    assert lo <= fleet.threshold <= hi and lo <= exact.threshold <= hi
    # The fleet profile flags about fpr of held-out clean data from every site.
    held_out = np.concatenate(_sites([400, 400, 400], seed=99))
    sess = pyguard.InferenceSession(model, profile=fleet)
    rate = sess.run_with_report(None, {"image": held_out})[1].flagged.mean()
    low, high = pyguard.metrics.binomial_interval(round(FPR * len(held_out)), len(held_out))
    assert low - eps <= rate <= high + eps


def test_summary_holds_sketches_not_data_and_round_trips(model, tmp_path):
    sites = _sites([1200])
    template = _template(model, sites[0][:100])
    summary = summarize(model, sites[0], template, site="a")
    summary.save(tmp_path / "a.json")
    text = (tmp_path / "a.json").read_text()
    assert len(text) < 20_000 < sites[0].nbytes // 100
    again = CalibrationSummary.load(tmp_path / "a.json")
    assert again == summary and again.kll().n == 1200
    fleet = template.merge([again])
    fleet.save(tmp_path / "fleet.json")
    assert pyguard.GuardProfile.load(tmp_path / "fleet.json").fleet == fleet.fleet


def test_merge_is_order_independent_in_count_and_extremes(model):
    sites = _sites([300, 200, 250], seed=2)
    template = _template(model, sites[0])
    summaries = [summarize(model, x, template) for x in sites]
    a, b = template.merge(summaries), template.merge(summaries[::-1])
    assert a.n_calibration == b.n_calibration == 750
    assert a.fleet["score_range"] == b.fleet["score_range"]
    assert a.fleet["input_range"] == b.fleet["input_range"]
    scores, n = _union_scores(model, template, np.concatenate(sites)), 750
    for fleet in (a, b):  # both orders give a threshold within the stated error of the target rank
        rank = np.searchsorted(scores, fleet.threshold, side="right") / n
        assert abs(rank - np.ceil(n * (1 - FPR)) / n) <= fleet.fleet["rank_error"]


def test_mismatched_or_malformed_summaries_are_refused(model, tmp_path):
    sites = _sites([60, 60])
    template = _template(model, sites[0])
    other = pyguard.calibrate(model, sites[0], squeezers=("bit_depth:1", "median:2"), fpr=FPR,
                              input_range=(0.0, 1.0), detector="squeeze")
    mine, theirs = summarize(model, sites[0], template), summarize(model, sites[1], other)
    with pytest.raises(pyguard.ProfileError, match="different"):
        template.merge([mine, theirs])
    with pytest.raises(pyguard.ProfileError, match="another model or guard configuration"):
        other.merge([mine])
    with pytest.raises(pyguard.ConfigError):
        merge_profiles(template, [])
    d = mine.to_dict()
    broken_dicts = ({**d, "format": "x"}, {**d, "format_version": 9}, {**d, "n": "many"},
                    {**d, "sketch": "!!!"}, {**d, "sketch": "AAAA"}, {**d, "n": 5},
                    {k: d[k] for k in list(d)[:4]})
    for broken in broken_dicts:
        with pytest.raises(pyguard.ProfileError):
            CalibrationSummary.from_dict(json.loads(json.dumps(broken)))
    with pytest.raises(pyguard.ProfileError):  # a model other than the profile's
        summarize(classifier(size=16, outputs=("logits",), seed=4), sites[0], template)
    dirty = sites[1].copy()
    dirty[3, 0, 0, 0] = np.nan
    with pytest.raises(pyguard.InputError):
        summarize(model, dirty, template)


def test_a_fused_template_is_refused_rather_than_half_merged(model):
    data = _sites([120])[0]
    fused = pyguard.calibrate(model, data, squeezers=SQUEEZERS, fpr=FPR, input_range=(0.0, 1.0))
    assert fused.fused is not None  # the default detector
    with pytest.raises(pyguard.ConfigError, match="detector='squeeze'"):
        summarize(model, data, fused)
    summary = summarize(model, data, _template(model, data))
    with pytest.raises(pyguard.ConfigError, match="detector='squeeze'"):
        merge_profiles(fused, [summary])
