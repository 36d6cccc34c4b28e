"""pyguard.calibrate: learn a squeeze threshold from clean data and record the model's input convention."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import onnxruntime as _ort

from . import __version__
from . import activations as _activations
from . import fused as _fused
from .errors import ConfigError, InputError, ModelError
from .fusion import check_confidence, check_groups
from .metrics import check_fpr, threshold_at_fpr
from .profile import GuardProfile, InputSpec, model_sha256, now_iso
from .session import InferenceSession, _is_dynamic
from .squeezers import MODEL_LAYOUTS, Squeezer, parse_all

QUANTILES = (0.5, 0.9, 0.95, 0.99, 1.0)
_CHANNEL_SIZES = (1, 3, 4)


def calibrate(model: str | os.PathLike | bytes, data: np.ndarray | Iterable[dict[str, np.ndarray]], *,
              squeezers: Sequence[Any] | None = None, fpr: float = 0.05,
              input_name: str | None = None, output_name: str | None = None, batch_size: int = 64,
              providers: Sequence[Any] | None = None, input_range: tuple[float, float] | None = None,
              normalization: tuple[Any, Any] | None = None, layout: str | None = None,
              sess_options: _ort.SessionOptions | None = None,
              progress: Callable[[int, int | None], None] | None = None,
              activations: bool | Sequence[str] | None = None, activation_preset: str = "ranger",
              activation_fpr: float = 0.01, activation_budget: float | None = 0.01,
              detector: str | None = None, combine: str = "fisher", screen: float = 0.2,
              groups: Sequence[Any] | np.ndarray | str | None = None,
              fpr_confidence: float | None = None) -> GuardProfile:
    """Run the model on clean data and return a :class:`GuardProfile` whose threshold flags a fraction
    ``fpr`` of it.

    Args:
        model: path or bytes of an ONNX model.
        data: clean samples of the image input (float32 or uint8 array, first axis = samples) or an
            iterable of input feeds (dicts of input name -> batch).
        squeezers: strings such as ``"bit_depth:5"``, ``"median:2"``, ``"nl_means:11-3-4"``, ``"jpeg:75"``
            or :mod:`pyguard.squeezers` objects. An empty tuple gives a sanity-check-only profile.
        fpr: target false-positive rate on clean data; threshold = ``sorted(scores)[ceil(N(1-fpr)) - 1]``.
        input_name / output_name: the image input and the class-score output (inferred when unambiguous).
        input_range: (lo, hi) of pixel values; inferred from the data ((0, 1) or (0, 255)) when omitted.
        normalization: (mean, std), per channel or scalar, when the model is fed ``(pixel - mean) / std``;
            squeezing then happens on the pixels, not on the normalized values.
        layout: ``"NCHW"``, ``"NHWC"`` or ``"NHW"``; inferred from the input's shape when omitted.
        progress: called as ``progress(samples_done, samples_total_or_None)`` after each batch.
        activations: profile intermediate activations (see :mod:`pyguard.activations`): None (default) = the
            outputs of activation operators when the model has any, True = required, False = skip, or a
            list of tensor names. ``activation_preset``: ``"ranger"`` (observed max), ``"p99.9"``, ``"p90"``;
            ``activation_fpr``: target false-flag rate of the activation check; ``activation_budget``: the
            allowed overhead of the check as a fraction of plain inference time (default 0.01; None =
            check every profiled tensor).
        detector: ``"fused"`` (the default: every signal calibrated to a p-value and combined, see
            :mod:`pyguard.fused`; the profile also keeps Xu's threshold; native guard mode only) or
            ``"squeeze"`` (Xu et al.'s feature squeezing: max squeeze distance over a threshold; also runs
            in graph mode, on the device). With ``squeezers=()`` the default is a sanity-check-only profile.
            ``combine``: ``"fisher"`` or ``"min_p"``; ``screen``: share
            of clean traffic the cascade (``InferenceSession(..., cascade=True)``) forwards to the squeezed
            passes.
        squeezers: None = ``("bit_depth:1", "median:2")`` for ``"squeeze"``; for ``"fused"``, chosen per
            model from clean data (the most aggressive bit depth and median that keep clean predictions).
            An explicit choice is always used as given.
        groups: fused detector only: one label per calibration sample (source, site, capture session,
            image region...). The threshold is then cross-fitted over whole groups (like scikit-learn's
            ``GroupKFold``), so it absorbs the variability between groups that a deployment shift brings.
            None (default): the samples are clustered by content (k-means on colour, contrast and gradient
            energy) and the threshold is fitted on random folds and folds of whole content clusters pooled,
            so it holds under a moderate content shift and stays conservative (about half the target) on
            exchangeable data. ``"random"``: random folds only (exchangeable data; the FPR drifts up under
            shift).
        fpr_confidence: fused detector only: None = the reference rule (FPR at the target on average over
            calibration draws); a number such as 0.9 = the smallest threshold whose FPR on fresh
            exchangeable data is at most ``fpr`` with that probability (finite-sample conformal bound).
    """
    fpr = check_fpr(fpr)
    if isinstance(squeezers, (str, Squeezer)):
        squeezers = [squeezers]
    elif squeezers is not None:
        squeezers = list(squeezers)
    if detector is None:  # an explicit empty squeezer list asks for sanity checks only, as it always did
        detector = "fused" if squeezers is None or squeezers else "squeeze"
    detector = _fused.check_detector(detector)
    if detector != "fused" and (groups is not None or fpr_confidence is not None):
        raise ConfigError("groups and fpr_confidence apply to detector='fused' only")
    if isinstance(groups, str) and groups != "random":
        raise ConfigError(f"groups must be None, 'random' or one label per sample, got {groups!r}")
    labels = groups is not None and not isinstance(groups, str)
    if labels:
        groups = np.asarray(groups)
        if isinstance(data, np.ndarray):  # known length: say so before the passes over the data
            check_groups(groups, len(data))
    if fpr_confidence is not None:
        fpr_confidence = check_confidence(fpr_confidence)
    auto_squeezers = squeezers is None and detector == "fused"
    if squeezers is None:
        squeezers = _fused.CANDIDATES if auto_squeezers else ("bit_depth:1", "median:2")
    specs = [s.spec for s in parse_all(squeezers)]
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    model_bytes = _read_model(model)
    if (activations is not False or detector == "fused") and not isinstance(data, np.ndarray):
        data = list(data)  # read twice: squeeze calibration, then activation profiling
    sess = InferenceSession(model_bytes, sess_options, providers)
    image = _image_input(sess, input_name, data)
    out_name = _class_output(sess, output_name)
    batches = _batches(data, image, batch_size, _fixed_batch(image))
    first_feed, first_valid = next(batches, (None, 0))
    if first_feed is None:
        raise InputError("calibration data is empty")
    x0 = first_feed[image.name]
    if not isinstance(x0, np.ndarray) or x0.dtype not in (np.float32, np.uint8):
        got = getattr(x0, "dtype", type(x0).__name__)
        raise InputError(f"calibration data for {image.name!r} has dtype {got}; "
                         "it must be a float32 or uint8 array")
    lay = _layout(layout, x0, image)
    rng, mean, std = _input_convention(x0, lay, input_range, normalization)
    first_out = sess.run([out_name], first_feed)[0]
    kind = _output_kind(first_out)

    spec = InputSpec(name=image.name, layout=lay, dtype=str(x0.dtype), range=rng, mean=mean, std=std)
    if auto_squeezers:  # ---- fused detector (issue 5): squeezers chosen from clean data ----
        specs = _choose_squeezers(sess, model_bytes, spec, out_name, kind, specs, fpr,
                                  _batches(data, image, batch_size, _fixed_batch(image)))
    draft = GuardProfile(model_sha256=model_sha256(model_bytes), input=spec, output_name=out_name,
                         output_kind=kind, squeezers=specs, threshold=float("inf"), fpr=fpr)
    sess._guard_init(draft, "monitor")

    scores, per_squeezer, done = [], [], 0
    total = len(data) if isinstance(data, np.ndarray) else None
    for feed, valid in _chain_first((first_feed, first_valid), batches):
        _, report = sess.run_with_report([out_name], feed)
        _check_clean(report, valid, rng)
        if specs:
            scores.append(report.scores["squeeze"][:valid])
            per_squeezer.append([report.scores[f"squeeze[{s}]"][:valid] for s in specs])
        done += valid
        if progress is not None:
            progress(done, total)

    if done * fpr < 1:
        warnings.warn(f"{done} calibration samples are too few for fpr={fpr}: the threshold is their maximum",
                      stacklevel=2)
    threshold, quantiles, purifier = float("inf"), {}, None
    if specs:
        all_scores = np.concatenate(scores)
        threshold = threshold_at_fpr(all_scores, fpr)
        quantiles = {f"{q:g}": float(np.quantile(all_scores, q)) for q in QUANTILES}
        mean_distance = [float(np.mean(np.concatenate([b[i] for b in per_squeezer])))
                         for i in range(len(specs))]
        purifier = specs[int(np.argmin(mean_distance))]  # the squeezer that disturbs clean inputs least
    try:  # ---- activations (issue 4) ----
        acts = _activations.calibrate_hook(model_bytes, data, activations, preset=activation_preset,
                                           fpr=activation_fpr, budget=activation_budget,
                                           input_name=image.name, batch_size=batch_size)
    except _activations.ActivationError as e:
        raise ConfigError(str(e)) from e
    profile = GuardProfile(
        model_sha256=draft.model_sha256, input=spec, output_name=out_name, output_kind=kind, squeezers=specs,
        threshold=threshold if specs else 0.0, fpr=fpr, purifier=purifier, n_calibration=done,
        score_quantiles=quantiles, versions=_versions(), created=now_iso(), activations=acts)
    if detector == "fused":  # ---- fused detector (issue 5): a second pass collects every signal ----
        if labels and not isinstance(data, np.ndarray):  # feeds: the sample count is known now
            check_groups(groups, done)
        profile.fused = _fused_detector(model_bytes, profile, data, image, batch_size, sess_options,
                                        providers, lay, x0, combine, screen, groups, fpr_confidence)
    return profile


def _choose_squeezers(sess, model_bytes, spec, out_name, kind, candidates, fpr, batches) -> list[str]:
    """Clean top-1 agreement of every candidate squeezer on the first CHOICE_SAMPLES samples, then
    :func:`pyguard.fused.choose_squeezers`."""
    draft = GuardProfile(model_sha256=model_sha256(model_bytes), input=spec, output_name=out_name,
                         output_kind=kind, squeezers=list(candidates), threshold=float("inf"), fpr=fpr)
    sess._guard_init(draft, "monitor")
    agree, done = [], 0
    for feed, valid in batches:
        sess.run_with_report([out_name], feed)
        top = sess._local.fused_probs.argmax(axis=-1)[:, :valid]
        agree.append(top[1:] == top[0])
        done += valid
        if done >= _fused.CHOICE_SAMPLES:
            break
    agreement = dict(zip(candidates, np.concatenate(agree, axis=1).mean(axis=1).tolist()))
    return _fused.choose_squeezers(agreement)


def _fused_detector(model_bytes, profile, data, image, batch_size, sess_options, providers, layout, x0,
                    combine, screen, groups=None, confidence=None):
    acts = profile.activations if profile.activations is not None and profile.activations.monitor else None
    names = _fused.signal_names(profile.squeezers, acts is not None, _channels(x0, layout))
    sess = InferenceSession(model_bytes, sess_options, providers, profile=profile)
    batches = _batches(data, image, batch_size, _fixed_batch(image))
    clean = _fused.calibration_pass(sess, batches, names, acts, None if isinstance(groups, str) else groups)
    return _fused.fit(clean, profile.fpr, combine=combine, screen=screen, groups=groups,
                      confidence=confidence)


# ---- helpers -------------------------------------------------------------------------------------------
def _read_model(model) -> bytes:
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    if not isinstance(model, (str, os.PathLike)):
        raise ConfigError(f"model must be a path or bytes, got {type(model).__name__}")
    try:
        with open(model, "rb") as f:
            return f.read()
    except OSError as e:
        raise ModelError(f"cannot read model {os.fspath(model)!r}: {e}") from e


def _image_input(sess: InferenceSession, input_name: str | None, data):
    inputs = sess.get_inputs()
    if input_name is not None:
        for i in inputs:
            if i.name == input_name:
                return i
        raise InputError(f"model has no input {input_name!r}; inputs: {[i.name for i in inputs]}")
    images = [i for i in inputs
              if i.type in ("tensor(float)", "tensor(uint8)") and len(i.shape or []) in (3, 4)]
    if len(images) == 1:
        return images[0]
    if len(inputs) == 1:
        return inputs[0]
    raise ConfigError(f"cannot tell which input is the image among {[i.name for i in inputs]}; "
                      "pass input_name=")


def _class_output(sess: InferenceSession, output_name: str | None) -> str:
    outputs = sess.get_outputs()
    if output_name is not None:
        if output_name not in [o.name for o in outputs]:
            raise InputError(f"model has no output {output_name!r}; outputs: {[o.name for o in outputs]}")
        return output_name
    for o in outputs:
        if o.shape and len(o.shape) >= 2 and not (isinstance(o.shape[-1], int) and o.shape[-1] < 2):
            return o.name
    names = [o.name for o in outputs]
    raise ConfigError(f"no output looks like class scores among {names}; pass output_name=")


def _fixed_batch(image) -> int | None:
    dim0 = image.shape[0] if image.shape else None
    return None if dim0 is None or _is_dynamic(dim0) else int(dim0)


def _batches(data, image, batch_size: int, fixed: int | None):
    """Yield (feed, number of real samples); a fixed-batch model gets its last batch padded."""
    if isinstance(data, np.ndarray):
        if data.ndim == 0 or len(data) == 0:
            return
        step = fixed or batch_size
        for start in range(0, len(data), step):
            chunk = data[start:start + step]
            valid = len(chunk)
            if fixed and valid < fixed:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed - valid, axis=0)])
            yield {image.name: np.ascontiguousarray(chunk)}, valid
        return
    if isinstance(data, dict):
        raise ConfigError("data must be an array or an iterable of feeds; wrap a single feed in a list")
    for feed in data:
        if not isinstance(feed, dict) or image.name not in feed:
            raise InputError(f"each calibration feed must be a dict containing {image.name!r}")
        yield feed, int(np.shape(feed[image.name])[0])


def _chain_first(first, rest):
    yield first
    yield from rest


def _layout(layout: str | None, x: np.ndarray, image) -> str:
    if layout is not None:
        if layout not in MODEL_LAYOUTS:
            raise ConfigError(f"layout must be one of {MODEL_LAYOUTS}, got {layout!r}")
        if len(layout) != x.ndim:
            raise ConfigError(f"layout {layout} needs {len(layout)}-D input, the data is {x.ndim}-D")
        return layout
    if x.ndim == 3:
        return "NHW"
    if x.ndim != 4:
        raise ConfigError(f"the image input must be 3-D (NHW) or 4-D (NCHW/NHWC), got shape {x.shape}")
    first, last = x.shape[1] in _CHANNEL_SIZES, x.shape[3] in _CHANNEL_SIZES
    if first and not last:
        return "NCHW"
    if last and not first:
        return "NHWC"
    if first and last:
        return "NCHW"
    raise ConfigError(f"cannot infer the layout of shape {x.shape}; pass layout='NCHW' or 'NHWC'")


def _channels(x: np.ndarray, layout: str) -> int:
    return 1 if layout == "NHW" else x.shape[layout.index("C")]


def _per_channel(values, c: int, what: str) -> list[float]:
    arr = np.atleast_1d(np.asarray(values, dtype=np.float64)).ravel()
    if arr.size == 1:
        arr = np.repeat(arr, c)
    if arr.size != c:
        raise ConfigError(f"normalization {what} has {arr.size} values; the input has {c} channels")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"normalization {what} must be finite")
    return [float(v) for v in arr]


def _input_convention(x: np.ndarray, layout: str, input_range, normalization):
    mean = std = None
    if normalization is not None:
        if x.dtype == np.uint8:
            raise ConfigError("normalization applies to float inputs; a uint8 input is fed raw pixels")
        if len(normalization) != 2:
            raise ConfigError("normalization must be (mean, std)")
        c = _channels(x, layout)
        mean, std = _per_channel(normalization[0], c, "mean"), _per_channel(normalization[1], c, "std")
        if any(s <= 0 for s in std):
            raise ConfigError("normalization std must be positive")
    if input_range is not None:
        if len(input_range) != 2 or not float(input_range[0]) < float(input_range[1]):
            raise ConfigError(f"input_range must be (lo, hi) with lo < hi, got {input_range!r}")
        return (float(input_range[0]), float(input_range[1])), mean, std
    if x.dtype == np.uint8:
        return (0.0, 255.0), mean, std
    if mean is not None:
        return ((0.0, 255.0) if max(mean) > 1.0 else (0.0, 1.0)), mean, std
    finite = x[np.isfinite(x)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if lo >= 0.0 and hi <= 1.0:
        return (0.0, 1.0), mean, std
    if lo >= 0.0 and hi <= 255.0:
        return (0.0, 255.0), mean, std
    raise ConfigError(f"calibration values span [{lo:g}, {hi:g}], neither [0, 1] nor [0, 255]: pass "
                      "input_range=(lo, hi) and, for normalized inputs, normalization=(mean, std)")


def _output_kind(y: np.ndarray) -> str:
    p = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    if p.shape[1] >= 2 and p.min() >= 0.0 and p.max() <= 1.0 and np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        return "probabilities"
    return "logits"


def _check_clean(report, valid: int, rng) -> None:
    if report.scores["non_finite"][:valid].any():
        raise InputError("calibration data contains NaN or Inf values; calibrate on clean data")
    if report.scores["out_of_range"][:valid].any():
        raise ConfigError(f"calibration data has values outside input_range {rng}")


def _versions() -> dict[str, str]:
    import onnx

    return {"pyguard": __version__, "onnxruntime": _ort.__version__, "onnx": onnx.__version__,
            "numpy": np.__version__}


__all__ = ["calibrate"]
