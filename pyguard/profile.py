"""GuardProfile: what calibration learned about one model, saved as a small versioned JSON file."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import ProfileError
from .squeezers import MODEL_LAYOUTS, parse_all

FORMAT = "pyguard-profile"
FORMAT_VERSION = 1


_REQUIRED = ("model_sha256", "output_name", "output_kind", "squeezers", "threshold", "fpr")
_OPTIONAL = ("purifier", "n_calibration", "score_quantiles", "versions", "created",
             "activations",  # activations: pyguard.activations.ActivationProfile (issue 4)
             "fused",  # fused: pyguard.fusion.FusedDetector (issue 5)
             "fleet")  # fleet: set by GuardProfile.merge (federated calibration)


def model_sha256(model: str | os.PathLike | bytes) -> str:
    """sha256 of the model's bytes (a path is read in chunks)."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        return hashlib.sha256(model).hexdigest()
    h = hashlib.sha256()
    with open(model, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class InputSpec:
    """How the guarded image input is encoded.

    Pixel values lie in ``range`` = (lo, hi); when ``mean``/``std`` are set the model is fed
    ``(pixel - mean) / std`` per channel, and pyguard undoes that before squeezing.
    """

    name: str
    layout: str
    dtype: str
    range: tuple[float, float]
    mean: list[float] | None = None
    std: list[float] | None = None

    @property
    def normalized(self) -> bool:
        return self.mean is not None


@dataclass
class GuardProfile:
    """Calibration result for one model: squeezers, threshold and the input convention.

    Create it with :func:`pyguard.calibrate`, store it with :meth:`save`, read it with :meth:`load`.
    """

    model_sha256: str
    input: InputSpec
    output_name: str
    output_kind: str  # "probabilities" or "logits"
    squeezers: list[str]
    threshold: float
    fpr: float
    purifier: str | None = None
    n_calibration: int = 0
    score_quantiles: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    activations: Any = None  # ActivationProfile: activation ranges and monitor plan (pyguard.activations)
    fused: Any = None  # FusedDetector: per-signal p-value models and threshold (pyguard.fusion, issue 5)
    fleet: dict[str, Any] = field(default_factory=dict)  # set by merge: sites, sketch error bound, extremes

    def __post_init__(self) -> None:
        self._activations_from_dict()
        self._fused_from_dict()
        self.validate()

    def _fused_from_dict(self) -> None:
        # ---- fused detector (issue 5) ----
        from .fusion import FusedDetector

        if isinstance(self.fused, dict):
            try:
                self.fused = FusedDetector.from_dict(self.fused)
            except (KeyError, TypeError, ValueError) as e:
                raise ProfileError(f"malformed fused detector in profile: {type(e).__name__}: {e}") from e
        elif self.fused is not None and not isinstance(self.fused, FusedDetector):
            raise ProfileError(f"fused must be a FusedDetector, got {type(self.fused).__name__}")

    def _activations_from_dict(self) -> None:
        # ---- activations (issue 4) ----
        from .activations import ActivationProfile

        if isinstance(self.activations, dict):
            try:
                self.activations = ActivationProfile.from_dict(self.activations)
            except (KeyError, TypeError, ValueError) as e:
                raise ProfileError(f"malformed activation ranges in profile: {type(e).__name__}: {e}") from e
        elif self.activations is not None and not isinstance(self.activations, ActivationProfile):
            raise ProfileError("activations must be an ActivationProfile, got "
                               f"{type(self.activations).__name__}")

    # ---- validation -------------------------------------------------------------------------------
    def validate(self) -> None:
        if not (isinstance(self.model_sha256, str) and len(self.model_sha256) == 64):
            raise ProfileError(f"model_sha256 must be a 64-character hex digest, got {self.model_sha256!r}")
        if self.input.layout not in MODEL_LAYOUTS:
            raise ProfileError(f"input layout {self.input.layout!r} is not one of {MODEL_LAYOUTS}")
        if self.input.dtype not in ("float32", "uint8"):
            raise ProfileError(f"input dtype {self.input.dtype!r} is not float32 or uint8")
        lo, hi = self.input.range
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ProfileError(f"input range {self.input.range!r} must be finite with lo < hi")
        if (self.input.mean is None) != (self.input.std is None):
            raise ProfileError("input normalization needs both mean and std")
        if self.input.std is not None and (len(self.input.std) != len(self.input.mean)
                                           or any(not s > 0 for s in self.input.std)):
            raise ProfileError("normalization std must be positive, one per mean")
        if self.output_kind not in ("probabilities", "logits"):
            raise ProfileError(f"output_kind must be 'probabilities' or 'logits', got {self.output_kind!r}")
        try:
            specs = [s.spec for s in parse_all(self.squeezers)]
        except Exception as e:
            raise ProfileError(f"bad squeezers in profile: {e}") from e
        self.squeezers = specs
        if self.purifier is not None and self.purifier not in specs:
            raise ProfileError(f"purifier {self.purifier!r} is not one of the squeezers {specs}")
        if not isinstance(self.threshold, (int, float)) or math.isnan(self.threshold):
            raise ProfileError(f"threshold must be a number, got {self.threshold!r}")
        if not 0.0 < self.fpr < 1.0:
            raise ProfileError(f"fpr must be in (0, 1), got {self.fpr!r}")

    def check_model(self, sha256: str) -> None:
        """Raise ProfileError unless this profile was calibrated for the model with this sha256."""
        if sha256 != self.model_sha256:
            raise ProfileError(
                f"profile was calibrated for model sha256 {self.model_sha256[:16]}..., but this model is "
                f"{sha256[:16]}...; calibrate a profile for this model"
            )

    # ---- federated calibration (pyguard.federated) ----
    def merge(self, summaries, *, fpr: float | None = None) -> GuardProfile:
        """The fleet profile from sites' :class:`pyguard.federated.CalibrationSummary` objects computed with
        this profile's configuration: threshold within the KLL sketch's rank error of calibrating on the
        union of their data (see :func:`pyguard.federated.merge_profiles`)."""
        from .federated import merge_profiles

        return merge_profiles(self, summaries, fpr=fpr)

    # ---- JSON ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input"]["range"] = list(self.input.range)
        d["activations"] = None if self.activations is None else self.activations.to_dict()
        d["fused"] = None if self.fused is None else self.fused.to_dict()
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **d}

    @classmethod
    def from_dict(cls, d: Any) -> GuardProfile:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ProfileError("not a pyguard profile (missing \"format\": \"pyguard-profile\")")
        version = d.get("format_version")
        if not isinstance(version, int):
            raise ProfileError("malformed profile: format_version must be an integer")
        if version > FORMAT_VERSION:
            raise ProfileError(
                f"profile format version {version} is newer than this pyguard supports ({FORMAT_VERSION}); "
                "upgrade pyguard"
            )
        try:
            inp = dict(d["input"])
            inp["range"] = tuple(float(v) for v in inp["range"])
            if len(inp["range"]) != 2:
                raise ValueError("input range needs two values")
            spec = InputSpec(**inp)
            fields = {k: d[k] for k in _REQUIRED}
            optional = {k: d[k] for k in _OPTIONAL if k in d}
            if not isinstance(fields["squeezers"], list):
                raise TypeError("squeezers must be a list")
            return cls(input=spec, **fields, **optional)
        except ProfileError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise ProfileError(f"malformed profile: {type(e).__name__}: {e}") from e

    def save(self, path: str | os.PathLike) -> None:
        """Write the profile as JSON (atomically: a temporary file renamed over ``path``)."""
        tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> GuardProfile:
        """Read a profile; raises ProfileError for a malformed file or a newer format."""
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except json.JSONDecodeError as e:
            raise ProfileError(f"malformed profile {os.fspath(path)!r}: not valid JSON ({e})") from e
        except UnicodeDecodeError as e:
            raise ProfileError(f"malformed profile {os.fspath(path)!r}: not UTF-8 text") from e
        except RecursionError as e:  # found by the property tests: deep JSON nesting exhausts the parser
            raise ProfileError(f"malformed profile {os.fspath(path)!r}: JSON nested too deeply") from e
        try:
            return cls.from_dict(d)
        except ProfileError as e:
            raise ProfileError(f"{os.fspath(path)}: {e}") from e


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


__all__ = ["GuardProfile", "InputSpec", "model_sha256", "FORMAT_VERSION"]
