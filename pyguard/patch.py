"""pyguard.patch: make every ``onnxruntime.InferenceSession`` created afterwards a guarded one.

Code that builds sessions deep inside a third-party library is guarded without edits::

    with pyguard.patch(profiles="profiles/"):
        model = some_library.load("model.onnx")   # calls onnxruntime.InferenceSession inside

    pyguard.patch(profiles="profiles/")           # or patch for the rest of the process
    pyguard.unpatch()

Profiles (``*.json`` files in the directory) are matched to models by the model's sha256; a model without
a profile gets input sanity checks only. Code that imported the class itself before patching
(``from onnxruntime import InferenceSession``) keeps the original.
"""

from __future__ import annotations

import os
import threading
import warnings

import onnxruntime as _ort
from onnxruntime.capi import onnxruntime_inference_collection as _collection

from .errors import ConfigError, ProfileError
from .profile import GuardProfile, model_sha256
from .session import ACTIONS, InferenceSession, _OrtSession

_lock = threading.Lock()
_active: list[_Patch] = []


def _mentions_pyguard(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return b"pyguard-profile" in f.read(4096)
    except OSError:
        return False


class ProfileDirectory:
    """Profiles of a directory indexed by model sha256 (rescanned when the directory changes)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        if not os.path.isdir(self.path):
            raise ConfigError(f"profiles directory {self.path!r} does not exist")
        self._stamp = None
        self._index: dict[str, str] = {}

    def _scan(self) -> None:
        stamp = tuple(sorted((e.name, e.stat().st_mtime_ns) for e in os.scandir(self.path)
                             if e.name.endswith(".json")))
        if stamp == self._stamp:
            return
        index = {}
        for name, _ in stamp:
            path = os.path.join(self.path, name)
            try:
                profile = GuardProfile.load(path)
            except ProfileError as e:
                if _mentions_pyguard(path):  # a broken profile leaves its model unguarded: say so
                    warnings.warn(f"pyguard.patch: ignoring unusable profile {path}: {e}", stacklevel=4)
                continue
            index[profile.model_sha256] = path
        self._index, self._stamp = index, stamp

    def empty(self) -> bool:
        self._scan()
        return not self._index

    def find(self, sha256: str) -> GuardProfile | None:
        self._scan()
        path = self._index.get(sha256)
        return GuardProfile.load(path) if path else None


class _Patch:
    """The active patch; a context manager that also works as a plain call."""

    def __init__(self, profiles, action: str) -> None:
        if action not in ACTIONS:
            raise ConfigError(f"action must be one of {ACTIONS}, got {action!r}")
        self.profiles = ProfileDirectory(profiles) if profiles is not None else None
        self.action = action
        self.session_class = self._make_class()
        with _lock:
            _active.append(self)
            _install(self.session_class)

    def _make_class(self):
        patch = self

        class PatchedInferenceSession(InferenceSession):
            """An onnxruntime.InferenceSession built while pyguard.patch() is active."""

            def __init__(self, path_or_bytes, sess_options=None, providers=None, provider_options=None,
                         **kwargs):
                profile = None
                if patch.profiles is not None and not patch.profiles.empty():  # hash only when needed
                    profile = patch.profiles.find(model_sha256(path_or_bytes))
                action = patch.action if profile is not None or patch.action != "purify" else "monitor"
                super().__init__(path_or_bytes, sess_options, providers, provider_options,
                                 profile=profile, action=action, **kwargs)

        PatchedInferenceSession.__name__ = "InferenceSession"
        PatchedInferenceSession.__qualname__ = "InferenceSession"
        return PatchedInferenceSession

    def unpatch(self) -> None:
        with _lock:
            if self in _active:
                _active.remove(self)
            _install(_active[-1].session_class if _active else _OrtSession)

    def __enter__(self) -> _Patch:
        return self

    def __exit__(self, *exc) -> None:
        self.unpatch()


def _install(cls) -> None:
    _ort.InferenceSession = cls
    _collection.InferenceSession = cls


def patch(profiles: str | os.PathLike | None = None, *, action: str = "monitor") -> _Patch:
    """Make ``onnxruntime.InferenceSession`` build :class:`pyguard.InferenceSession` objects.

    ``profiles``: a directory of profiles (``*.json``), matched to each model by its sha256; models
    without one (or ``profiles=None``) get input sanity checks only. ``action`` applies to every patched
    session ("purify" falls back to "monitor" for models without a profile). Use as a context manager,
    or call it and later :func:`unpatch`.
    """
    return _Patch(profiles, action)


def unpatch() -> None:
    """Undo every active :func:`patch`: ``onnxruntime.InferenceSession`` is onnxruntime's again."""
    with _lock:
        _active.clear()
        _install(_OrtSession)


def is_patched() -> bool:
    return _ort.InferenceSession is not _OrtSession


__all__ = ["patch", "unpatch", "is_patched", "ProfileDirectory"]
