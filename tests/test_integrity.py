"""Model integrity: the profile's sha256 pin, and key-based model-signing signatures (no network)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hardening_helpers import model_and_profile
from models import classifier

import pyguard
from pyguard.integrity import IntegrityError, sign_model, verify_model
from pyguard.profile import model_sha256


@pytest.fixture
def model_file(tmp_path):
    model, profile = model_and_profile()
    path = tmp_path / "model.onnx"
    path.write_bytes(model)
    return path, profile


def _flip_one_byte(path, offset=-7):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_profile_pins_the_model_sha256(model_file):
    path, profile = model_file
    assert profile.model_sha256 == model_sha256(path) == model_sha256(path.read_bytes())
    pyguard.InferenceSession(str(path), profile=profile)  # the pinned model loads
    _flip_one_byte(path)  # one bit of a weight changed: still a valid ONNX model
    plain = pyguard.InferenceSession(str(path))  # without a profile nothing is pinned
    assert plain.get_inputs()[0].name == "image"
    for model in (str(path), path.read_bytes()):
        with pytest.raises(pyguard.ProfileError, match="calibrated for model sha256"):
            pyguard.InferenceSession(model, profile=profile)


def test_another_model_and_a_profile_file_with_another_pin_are_refused(model_file, tmp_path):
    path, profile = model_file
    other = classifier(size=16, outputs=("probs",), seed=7)
    with pytest.raises(pyguard.ProfileError):
        pyguard.InferenceSession(other, profile=profile)
    d = profile.to_dict()
    d["model_sha256"] = model_sha256(other)
    (tmp_path / "p.json").write_text(json.dumps(d))
    with pytest.raises(pyguard.ProfileError):
        pyguard.InferenceSession(str(path), profile=str(tmp_path / "p.json"))


def test_pin_is_checked_before_onnxruntime_parses_the_bytes(model_file):
    _, profile = model_file
    with pytest.raises(pyguard.ProfileError):  # garbage is refused by hash, never handed to the parser
        pyguard.InferenceSession(b"\x08\x07not an onnx model", profile=profile)
    with pytest.raises(pyguard.ModelError):
        pyguard.InferenceSession("/nonexistent/model.onnx", profile=profile)


def test_patched_sessions_are_matched_by_sha256(model_file, tmp_path):
    path, profile = model_file
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    profile.save(profiles / "digits.guard.json")
    import onnxruntime as ort

    with pyguard.patch(profiles):
        guarded = ort.InferenceSession(str(path))
        _flip_one_byte(path)
        unknown = ort.InferenceSession(str(path))  # another sha256: sanity checks only
    assert guarded.profile is not None and guarded.profile.model_sha256 == profile.model_sha256
    assert unknown.profile is None


# ---- model-signing --------------------------------------------------------------------------------------
def _key_pair(directory, name="key"):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private, public = directory / f"{name}.pem", directory / f"{name}.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@pytest.fixture
def signed(model_file, tmp_path):
    pytest.importorskip("model_signing", reason="model-signing is not installed")
    path, profile = model_file
    private, public = _key_pair(tmp_path)
    signature = tmp_path / "model.sig"
    sign_model(path, signature, private)
    return path, profile, signature, public


def test_signed_model_verifies_and_runs(signed):
    path, profile, signature, public = signed
    verify_model(path, signature, public)
    sess = pyguard.InferenceSession(str(path), profile=profile, signature=signature, public_key=public)
    x = np.full((2, 3, 16, 16), 0.5, np.float32)
    assert sess.run(None, {"image": x})[0].shape == (2, 10)


def test_tampered_model_fails_verification(signed):
    path, profile, signature, public = signed
    _flip_one_byte(path)
    with pytest.raises(IntegrityError, match="signature verification"):
        verify_model(path, signature, public)
    with pytest.raises(pyguard.ModelError):  # IntegrityError is a ModelError
        pyguard.InferenceSession(str(path), signature=signature, public_key=public)


def test_wrong_key_or_broken_signature_fails(signed, tmp_path):
    path, _, signature, _ = signed
    _, other_public = _key_pair(tmp_path, "other")
    with pytest.raises(IntegrityError):
        verify_model(path, signature, other_public)
    bundle = json.loads(signature.read_text())
    sig = bundle["dsseEnvelope"]["signatures"][0]
    sig["sig"] = "AAAA" + sig["sig"][4:]
    signature.write_text(json.dumps(bundle))
    with pytest.raises(IntegrityError):
        verify_model(path, signature, signed[3])
    signature.write_text("not json")
    with pytest.raises(IntegrityError):
        verify_model(path, signature, signed[3])
    with pytest.raises(IntegrityError, match="does not exist"):
        verify_model(path, tmp_path / "missing.sig", signed[3])


def test_signature_arguments(signed):
    path, _, signature, public = signed
    with pytest.raises(pyguard.ConfigError, match="go together"):
        pyguard.InferenceSession(str(path), signature=signature)
    with pytest.raises(pyguard.ConfigError, match="file path"):
        pyguard.InferenceSession(path.read_bytes(), signature=signature, public_key=public)
