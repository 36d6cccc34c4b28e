"""Exceptions raised by pyguard. Every one derives from :class:`GuardError`.

Errors about the caller's arguments also derive from the matching built-in (``ValueError``), so code that
already catches ``ValueError`` around inference keeps working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .report import GuardReport


class GuardError(Exception):
    """Base class of every pyguard error."""


class InputError(GuardError, ValueError):
    """An input feed does not match the model: unknown or missing name, dtype, rank, shape, or layout."""


class ConfigError(GuardError, ValueError):
    """A bad argument to pyguard itself: unknown squeezer, bad action, bad fpr, bad input_range..."""


class ProfileError(GuardError):
    """A guard profile cannot be used: malformed file, newer format, or calibrated for another model."""


class ModelError(GuardError):
    """The ONNX model cannot be read or loaded by onnxruntime."""


class AdversarialInputError(GuardError):
    """Raised by ``action="reject"`` when at least one sample is flagged; carries the full report."""

    def __init__(self, report: GuardReport) -> None:
        self.report = report
        flagged = [int(i) for i in report.flagged.nonzero()[0]]
        reasons = sorted({r for i in flagged for r in report.reasons[i]})
        super().__init__(
            f"{len(flagged)} of {len(report.flagged)} samples flagged (samples {flagged[:10]}"
            f"{'...' if len(flagged) > 10 else ''}; reasons: {', '.join(reasons)})"
        )


__all__ = ["GuardError", "InputError", "ConfigError", "ProfileError", "ModelError", "AdversarialInputError"]
