"""GuardReport: what the guard found for one ``run`` call."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class GuardReport:
    """Per-sample verdicts of one guarded run.

    Attributes:
        flagged: numpy bool array, one entry per sample (first axis of the guarded input).
        scores: name -> per-sample numpy array. ``"squeeze"`` is the detector score (max over squeezers of
            the L1 distance between probability vectors), ``"squeeze[<spec>]"`` the per-squeezer distance,
            ``"non_finite"`` / ``"out_of_range"`` the per-sample counts of offending values. With a fused
            profile: one entry per fused signal (see :mod:`pyguard.fused`) and ``"fused"``, the combined
            statistic, compared with ``threshold``.
        reasons: per sample, a list of strings: ``"squeeze"``, ``"input_range"``, ``"non_finite"``.
        threshold: the squeeze threshold from the profile (None without one).
        timings: milliseconds spent in ``checks``, ``squeeze``, ``inference``, ``score`` and ``total``.
        action: the session's action; ``purified``: per-sample bool, True where purify replaced outputs.
    """

    flagged: np.ndarray
    scores: dict[str, np.ndarray]
    reasons: list[list[str]]
    threshold: float | None
    timings: dict[str, float] = field(default_factory=dict)
    action: str = "monitor"
    purified: np.ndarray | None = None

    @property
    def any_flagged(self) -> bool:
        return bool(self.flagged.any())

    def __len__(self) -> int:
        return int(self.flagged.shape[0])

    def sample_lines(self, offset: int = 0) -> list[str]:
        """One human-readable line per sample, numbered from ``offset`` (used by ``pyguard check``)."""
        lines = []
        squeeze = self.scores.get("squeeze")
        for i in range(len(self)):
            verdict = "FLAGGED" if self.flagged[i] else "ok"
            parts = [f"sample {offset + i}: {verdict}"]
            if squeeze is not None:
                parts.append(f"squeeze={squeeze[i]:.4f}")
            if "fused" in self.scores:  # the fused detector's statistic (issue 5)
                parts.append(f"fused={self.scores['fused'][i]:.2f}")
            if self.reasons[i]:
                parts.append("reasons=" + ",".join(self.reasons[i]))
            lines.append("  ".join(parts))
        return lines

    def __str__(self) -> str:
        t = "" if self.threshold is None else f", threshold {self.threshold:.4f}"
        return (f"GuardReport({int(self.flagged.sum())}/{len(self)} flagged{t}, "
                f"{self.timings.get('total', float('nan')):.3f} ms)")
