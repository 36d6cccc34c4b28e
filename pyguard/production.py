"""The hardening hooks an :class:`~pyguard.InferenceSession` calls: signature check at construction, then
audit log and telemetry after each run (see :mod:`pyguard.integrity`, :mod:`pyguard.audit`,
:mod:`pyguard.telemetry`). Kept here so the session itself only holds two calls."""

from __future__ import annotations

import numpy as np

from .audit import AuditLog
from .errors import ConfigError, ModelError
from .integrity import verify_model
from .profile import model_sha256
from .telemetry import Telemetry


class Hooks:
    __slots__ = ("telemetry", "audit", "model_sha256")

    def __init__(self, telemetry: Telemetry | None, audit: AuditLog | None, sha256: str | None) -> None:
        self.telemetry = telemetry
        self.audit = audit
        self.model_sha256 = sha256

    @classmethod
    def create(cls, model, profile, *, telemetry=None, audit=None, signature=None,
               public_key=None) -> Hooks | None:
        """Verify the signature (if any) and return the run hooks, or None when there are none."""
        if telemetry is not None and not isinstance(telemetry, Telemetry):
            raise ConfigError("telemetry must be a pyguard.telemetry.Telemetry, "
                              f"got {type(telemetry).__name__}")
        if audit is not None and not isinstance(audit, AuditLog):
            raise ConfigError(f"audit must be a pyguard.audit.AuditLog, got {type(audit).__name__}")
        if (signature is None) != (public_key is None):
            raise ConfigError("signature and public_key go together")
        if signature is not None:
            verify_model(model, signature, public_key)
        if telemetry is None and audit is None:
            return None
        sha = None
        if audit is not None:  # every audit record names the model
            try:
                sha = profile.model_sha256 if profile is not None else model_sha256(model)
            except OSError as e:
                raise ModelError(f"cannot read model {model!r}: {e}") from e
        return cls(telemetry, audit, sha)

    def observe(self, report, x) -> None:
        """After a run: audit records first (durable before run returns), then telemetry."""
        if self.audit is not None:
            session = self.telemetry.name if self.telemetry is not None else None
            self.audit.record(report, x if isinstance(x, np.ndarray) else None,
                              model_sha256=self.model_sha256, session=session)
        if self.telemetry is not None:
            self.telemetry.observe(report)
