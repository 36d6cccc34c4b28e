"""Model integrity: the profile's sha256 pin, and optional signatures with sigstore's ``model-signing``.

:class:`pyguard.InferenceSession` always refuses a model whose sha256 differs from the one its profile was
calibrated for (:class:`~pyguard.ProfileError`). On top of that, ``InferenceSession(model_path,
signature="model.sig", public_key="key.pub")`` verifies a key-based `model-signing
<https://pypi.org/project/model-signing/>`_ signature (an elliptic-curve key, no network, no transparency
log) before the model is loaded and raises :class:`IntegrityError` when it does not verify. The package is
an optional extra (``pip install 'pyguard-ort[signing]'``).
"""

from __future__ import annotations

import os

from .errors import ConfigError, ModelError


class IntegrityError(ModelError):
    """The model's signature does not verify against the trusted key (tampered model or wrong key)."""


def _model_signing():
    try:
        from model_signing import signing, verifying
    except ImportError as e:
        raise ConfigError("model signatures need the model-signing package: "
                          "pip install 'pyguard-ort[signing]'") from e
    return signing, verifying


def _path(model, what: str) -> str:
    if not isinstance(model, (str, os.PathLike)):
        raise ConfigError(f"{what} needs the model as a file path (model-signing signs files), "
                          f"got {type(model).__name__}")
    return os.fspath(model)


def sign_model(model: str | os.PathLike, signature: str | os.PathLike, private_key: str | os.PathLike,
               *, password: str | None = None) -> None:
    """Sign a model file with a PEM elliptic-curve private key; writes a sigstore bundle to ``signature``."""
    signing, _ = _model_signing()
    signing.Config().use_elliptic_key_signer(private_key=os.fspath(private_key), password=password).sign(
        _path(model, "sign_model"), os.fspath(signature))


def verify_model(model: str | os.PathLike, signature: str | os.PathLike,
                 public_key: str | os.PathLike) -> None:
    """Raise :class:`IntegrityError` unless ``signature`` is a valid signature of the model's bytes by the
    holder of ``public_key`` (PEM)."""
    _, verifying = _model_signing()
    path = _path(model, "signature verification")
    for what, p in (("model", path), ("signature", signature), ("public key", public_key)):
        if not os.path.isfile(p):
            raise IntegrityError(f"{what} file {os.fspath(p)!r} does not exist")
    try:
        verifying.Config().use_elliptic_key_verifier(public_key=os.fspath(public_key)).verify(
            path, os.fspath(signature))
    except Exception as e:  # model-signing raises ValueError and parser errors of several kinds
        raise IntegrityError(f"model {path!r} failed signature verification with {os.fspath(signature)!r}: "
                             f"{type(e).__name__}: {e}") from e


__all__ = ["IntegrityError", "sign_model", "verify_model"]
