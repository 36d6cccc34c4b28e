"""pyguard.patch: sessions created through onnxruntime.InferenceSession become guarded ones."""

from __future__ import annotations

import json

import models
import numpy as np
import onnxruntime
import pytest

import pyguard
from pyguard.session import _OrtSession


def third_party_load(path):
    """Stands for library code that builds its own session, unaware of pyguard."""
    import onnxruntime as ort

    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


@pytest.fixture
def setup(tmp_path):
    guarded_model, other_model = models.classifier(seed=0), models.classifier(seed=1)
    (tmp_path / "guarded.onnx").write_bytes(guarded_model)
    (tmp_path / "other.onnx").write_bytes(other_model)
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    profile = pyguard.calibrate(guarded_model, models.images(40), squeezers=("bit_depth:4", "median:2"),
                                fpr=0.1)
    profile.save(profiles / "any-name.json")
    (profiles / "unrelated.json").write_text(json.dumps({"some": "config"}))
    (profiles / "broken.json").write_text("{oops")
    yield tmp_path, profile
    pyguard.unpatch()


def test_context_manager_guards_and_restores(setup):
    tmp, profile = setup
    assert onnxruntime.InferenceSession is _OrtSession and not pyguard.is_patched()
    with pyguard.patch(profiles=tmp / "profiles") as active:
        assert pyguard.is_patched()
        sess = third_party_load(str(tmp / "guarded.onnx"))
        assert isinstance(sess, pyguard.InferenceSession) and isinstance(sess, _OrtSession)
        assert sess.profile == profile and active.action == "monitor"
        x = models.images(3, seed=5)
        out = sess.run(None, {"image": x})
        assert np.array_equal(out[0], _OrtSession(str(tmp / "guarded.onnx")).run(None, {"image": x})[0])
        assert "squeeze" in sess.last_report.scores
        other = third_party_load(str(tmp / "other.onnx"))
        assert isinstance(other, pyguard.InferenceSession) and other.profile is None
        other.run(None, {"image": x})
        assert "squeeze" not in other.last_report.scores  # sanity checks only
    assert onnxruntime.InferenceSession is _OrtSession
    assert type(third_party_load(str(tmp / "guarded.onnx"))) is _OrtSession


def test_plain_call_and_unpatch(setup):
    tmp, _ = setup
    pyguard.patch(profiles=tmp / "profiles")
    assert isinstance(third_party_load(str(tmp / "guarded.onnx")), pyguard.InferenceSession)
    from onnxruntime.capi import onnxruntime_inference_collection as collection

    assert collection.InferenceSession is onnxruntime.InferenceSession
    pyguard.unpatch()
    assert onnxruntime.InferenceSession is _OrtSession and collection.InferenceSession is _OrtSession


def test_bytes_models_are_matched_too(setup):
    tmp, profile = setup
    with pyguard.patch(profiles=tmp / "profiles"):
        sess = onnxruntime.InferenceSession((tmp / "guarded.onnx").read_bytes())
    assert sess.profile == profile


def test_reject_action_through_the_patch(setup):
    tmp, _ = setup
    x = models.images(2, seed=1)
    x[0, 0, 0, 0] = np.nan
    with pyguard.patch(profiles=tmp / "profiles", action="reject"):
        sess = third_party_load(str(tmp / "guarded.onnx"))
        with pytest.raises(pyguard.AdversarialInputError):
            sess.run(None, {"image": x})
        unprofiled = third_party_load(str(tmp / "other.onnx"))
        with pytest.raises(pyguard.AdversarialInputError, match="non_finite"):
            unprofiled.run(None, {"image": x})


def test_purify_falls_back_to_monitor_without_a_profile(setup):
    tmp, _ = setup
    with pyguard.patch(profiles=tmp / "profiles", action="purify"):
        assert third_party_load(str(tmp / "guarded.onnx")).action == "purify"
        assert third_party_load(str(tmp / "other.onnx")).action == "monitor"


def test_nested_patches_restore_in_order(setup):
    tmp, _ = setup
    with pyguard.patch(profiles=None) as outer:
        with pyguard.patch(profiles=tmp / "profiles", action="reject"):
            assert third_party_load(str(tmp / "guarded.onnx")).action == "reject"
        assert onnxruntime.InferenceSession is outer.session_class
        assert third_party_load(str(tmp / "guarded.onnx")).profile is None
    assert onnxruntime.InferenceSession is _OrtSession


def test_profiles_added_later_are_found(setup):
    tmp, profile = setup
    late = tmp / "late"
    late.mkdir()
    with pyguard.patch(profiles=late):
        assert third_party_load(str(tmp / "guarded.onnx")).profile is None
        profile.save(late / "guarded.json")
        assert third_party_load(str(tmp / "guarded.onnx")).profile == profile


def test_broken_profile_warns_and_leaves_sanity_checks(setup):
    tmp, profile = setup
    bad = tmp / "bad"
    bad.mkdir()
    d = profile.to_dict()
    d["format_version"] = 99
    (bad / "guarded.json").write_text(json.dumps(d))
    with pyguard.patch(profiles=bad), pytest.warns(UserWarning, match="newer than this pyguard"):
        assert third_party_load(str(tmp / "guarded.onnx")).profile is None


def test_patch_errors(tmp_path):
    with pytest.raises(pyguard.ConfigError, match="does not exist"):
        pyguard.patch(profiles=tmp_path / "nope")
    with pytest.raises(pyguard.ConfigError, match="action"):
        pyguard.patch(profiles=None, action="block")
    assert not pyguard.is_patched()
