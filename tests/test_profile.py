"""GuardProfile: JSON round trip, format version, model binding, and every malformed-file error."""

from __future__ import annotations

import dataclasses
import json

import models
import numpy as np
import pytest

import pyguard
from pyguard.profile import FORMAT_VERSION, GuardProfile, InputSpec, model_sha256


@pytest.fixture(scope="module")
def model():
    return models.classifier()


@pytest.fixture(scope="module")
def profile(model):
    return pyguard.calibrate(model, models.images(40), squeezers=("bit_depth:5", "median:2"), fpr=0.05,
                             detector="squeeze")


def test_round_trip(profile, tmp_path):
    path = tmp_path / "m.guard.json"
    profile.save(path)
    loaded = GuardProfile.load(path)
    assert loaded == profile
    d = json.loads(path.read_text())
    assert d["format"] == "pyguard-profile" and d["format_version"] == FORMAT_VERSION
    assert d["versions"]["pyguard"] == pyguard.__version__ and "onnxruntime" in d["versions"]
    assert d["input"] == {"name": "image", "layout": "NCHW", "dtype": "float32", "range": [0.0, 1.0],
                          "mean": None, "std": None}
    assert set(d["score_quantiles"]) == {"0.5", "0.9", "0.95", "0.99", "1"}
    assert d["squeezers"] == ["bit_depth:5", "median:2"]


def test_records_the_model_hash(profile, model, tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(model)
    assert profile.model_sha256 == model_sha256(model) == model_sha256(path) == model_sha256(str(path))
    profile.check_model(model_sha256(model))
    with pytest.raises(pyguard.ProfileError, match="calibrated for model sha256"):
        profile.check_model("0" * 64)


def test_loaded_profile_guards_the_session(profile, model, tmp_path):
    path = tmp_path / "m.guard.json"
    profile.save(path)
    sess = pyguard.InferenceSession(model, profile=str(path))
    _, report = sess.run_with_report(None, {"image": models.images(2, seed=9)})
    assert report.threshold == profile.threshold


def _write(tmp_path, content) -> str:
    path = tmp_path / "p.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def _mutated(profile, **changes):
    d = profile.to_dict()
    for key, value in changes.items():
        if value is None:
            d.pop(key)
        else:
            d[key] = value
    return d


@pytest.mark.parametrize("content, match", [
    ("{not json", "not valid JSON"),
    ("[1, 2, 3]", "not a pyguard profile"),
    ({"format": "something-else"}, "not a pyguard profile"),
])
def test_malformed_files(tmp_path, content, match):
    with pytest.raises(pyguard.ProfileError, match=match):
        GuardProfile.load(_write(tmp_path, content))


def test_binary_file(tmp_path):
    path = tmp_path / "p.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(pyguard.ProfileError, match="malformed"):
        GuardProfile.load(path)


@pytest.mark.parametrize("changes, match", [
    ({"format_version": FORMAT_VERSION + 1}, "newer than this pyguard"),
    ({"format_version": "1"}, "format_version must be an integer"),
    ({"threshold": None}, "KeyError"),
    ({"threshold": "high"}, "threshold must be a number"),
    ({"squeezers": ["median:4"]}, "median size must be 2, 3 or 5"),
    ({"squeezers": "median:2"}, "squeezers must be a list"),
    ({"model_sha256": "abc"}, "64-character"),
    ({"output_kind": "scores"}, "output_kind"),
    ({"fpr": 1.5}, "fpr must be in"),
    ({"purifier": "jpeg:75"}, "purifier"),
    ({"input": {"name": "image", "layout": "CHWN", "dtype": "float32", "range": [0, 1]}}, "layout"),
    ({"input": {"name": "image", "layout": "NCHW", "dtype": "float32", "range": [1, 0]}}, "lo < hi"),
    ({"input": {"name": "image", "layout": "NCHW", "dtype": "float32", "range": [0]}}, "two values"),
    ({"input": {"name": "image", "layout": "NCHW", "dtype": "int8", "range": [0, 1]}}, "dtype"),
    ({"input": {"name": "image", "layout": "NCHW", "dtype": "float32", "range": [0, 1], "mean": [0.5]}},
     "both mean and std"),
    ({"input": {"name": "image", "layout": "NCHW", "dtype": "float32", "range": [0, 1], "colour": 1}},
     "unexpected keyword"),
])
def test_invalid_fields(profile, tmp_path, changes, match):
    with pytest.raises(pyguard.ProfileError, match=match):
        GuardProfile.load(_write(tmp_path, _mutated(profile, **changes)))


def test_corrupt_profile_refused_by_the_session(model, tmp_path):
    path = _write(tmp_path, "{\"format\": \"pyguard-profile\", \"format_version\": 1}")
    with pytest.raises(pyguard.ProfileError):
        pyguard.InferenceSession(model, profile=path)


def test_validation_in_the_constructor():
    spec = InputSpec(name="x", layout="NCHW", dtype="float32", range=(0.0, 1.0))
    ok = GuardProfile(model_sha256="a" * 64, input=spec, output_name="y", output_kind="logits",
                      squeezers=["median:2"], threshold=0.5, fpr=0.05)
    assert ok.squeezers == ["median:2"]
    with pytest.raises(pyguard.ProfileError, match="threshold"):
        dataclasses.replace(ok, threshold=float("nan"))
    with pytest.raises(pyguard.ProfileError, match="std must be positive"):
        dataclasses.replace(ok, input=dataclasses.replace(spec, mean=[0.5], std=[0.0]))
    assert np.isinf(dataclasses.replace(ok, threshold=float("inf")).threshold)
