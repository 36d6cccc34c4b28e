"""pyguard.InferenceSession: onnxruntime's InferenceSession with input checks and a squeeze detector.

The class subclasses ``onnxruntime.InferenceSession`` (captured at import, before any :func:`pyguard.patch`),
so it takes the same arguments, passes through the rest of the interface (``get_inputs``, ``io_binding``,
``run_with_iobinding``, ``end_profiling``...) and is accepted wherever an onnxruntime session is.
Only ``run`` is guarded (and ``run_with_report``, which also returns the report); ``io_binding`` /
``run_with_ort_values`` runs go straight to onnxruntime, except in graph mode (``guard_mode``, see
:mod:`pyguard.guard_mode`), where they also fill the report.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import numpy as np
import onnxruntime as _ort

from . import _core, ops, production
from . import activations as _activations
from . import fused as _fused
from . import guard_mode as _guard_mode
from .errors import AdversarialInputError, ConfigError, InputError, ModelError, ProfileError
from .ops.checks import _float_bounds, _uint8_bounds
from .profile import GuardProfile, model_sha256
from .report import GuardReport
from .squeezers import parse_all

_OrtSession = _ort.InferenceSession
_EPFail = _ort.capi.onnxruntime_pybind11_state.EPFail  # a provider failure; onnxruntime's run() may retry
choose_guard_mode = _guard_mode.choose_guard_mode  # ---- guard mode (issue 7) ----

ACTIONS = ("monitor", "reject", "purify")

# onnxruntime tensor type strings -> numpy dtypes (the ones a feed can be checked against).
_ORT_DTYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(uint16)": np.uint16,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_,
}

# Tolerance of the [0, 1] range check after undoing a mean/std normalization (float rounding).
_UNIT_TOLERANCE = 1e-4
_MAX_WORKSPACES = 4  # distinct input shapes whose buffers a thread keeps


def _is_dynamic(dim: Any) -> bool:
    return not isinstance(dim, int)


class _InputMeta:
    __slots__ = ("name", "dtype", "shape")

    def __init__(self, node_arg) -> None:
        self.name = node_arg.name
        self.dtype = _ORT_DTYPES.get(node_arg.type)
        self.shape = list(node_arg.shape) if node_arg.shape is not None else None

    def check(self, value: np.ndarray) -> None:
        if self.dtype is not None and value.dtype != self.dtype:
            raise InputError(f"input {self.name!r} has dtype {value.dtype}; the model expects "
                             f"{np.dtype(self.dtype)}")
        if self.shape is None:
            return
        if value.ndim != len(self.shape):
            raise InputError(f"input {self.name!r} has {value.ndim} dimensions (shape {value.shape}); "
                             f"the model expects {len(self.shape)} ({self._shape_text()})")
        for axis, (want, got) in enumerate(zip(self.shape, value.shape)):
            if isinstance(want, int) and want >= 0 and want != got:
                raise InputError(f"input {self.name!r} has shape {value.shape}; the model expects "
                                 f"{self._shape_text()} (axis {axis} must be {want})")

    def _shape_text(self) -> str:
        return "[" + ", ".join(str(d) if isinstance(d, int) else "?" for d in self.shape) + "]"


class _Workspace:
    """Buffers of one thread for one input shape, reused on every call with that shape."""

    def __init__(self, x: np.ndarray, slots: int, need_unit: bool) -> None:
        n = x.shape[0]
        self.stack = np.empty((slots * n, *x.shape[1:]), dtype=x.dtype)
        self.slots = self.stack.reshape(slots, *x.shape)
        self.unit = np.empty(x.shape, dtype=np.float32) if need_unit else None
        self.tmp = np.empty(x.shape, dtype=np.float32) if need_unit else None
        self.tiled: dict[str, np.ndarray] = {}


class _FastPath:
    """What a session without a squeeze detector needs per call, resolved once at construction.

    The common call (one numpy input, the model's only one, of the expected dtype and shape, C-contiguous)
    takes this path: the feed check is a few comparisons, the input checks one native call, the model runs
    through onnxruntime's C session, and the report of :meth:`InferenceSession.run` is assembled when it
    is read (:class:`_PendingReport`). Each step computes what the general path computes.
    Why: at batch 1 the general path's Python and NumPy calls cost 0.2-0.3 ms per run on a MobileNetV2-sized
    model (they run with caches cold after the model's own pass), 3-4% of the inference.
    """

    __slots__ = ("name", "dtype", "shape", "tail", "check", "lo", "hi", "profile", "acts", "run_names")

    def __init__(self, sess: InferenceSession, meta: _InputMeta) -> None:
        self.name, self.dtype = meta.name, np.dtype(meta.dtype)
        self.shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in meta.shape)
        # the usual model: only the batch axis is dynamic, so one tuple comparison checks the rest
        self.tail = self.shape[1:] if self.shape[0] is None and None not in self.shape[1:] else None
        spec = sess.profile.input if sess.profile is not None else None
        ranged = spec is not None and not spec.normalized
        self.lo = self.hi = None
        if self.dtype == np.float32:  # like _sanity: the range when known, else only the non-finite count
            self.check = "f32_range" if ranged else "f32_nonfinite"
            self.lo, self.hi, _ = _float_bounds(*(spec.range if ranged else (None, None)), None)
        elif ranged:  # uint8 with a range
            self.check = "u8_range"
            self.lo, self.hi = _uint8_bounds(*spec.range)
        else:  # uint8 without a range: no value can be wrong
            self.check = None
        self.profile, self.acts = sess.profile, sess._activations
        extra = [self.acts.output_name] if self.acts is not None else []
        self.run_names = [*sess._output_names, *extra]

    @classmethod
    def create(cls, sess: InferenceSession) -> _FastPath | None:
        """The fast path of a native-mode session without detector or cascade, or None (general path)."""
        if getattr(sess, "_graph", None) is not None or sess._detector is not None \
                or getattr(sess, "_cascade", None) is not None \
                or len(sess._inputs) != 1 or sess._sess.is_webgpu_graph_capture_enabled():
            return None
        meta = sess._inputs.get(sess._primary)
        if meta is None or meta.dtype not in (np.float32, np.uint8) or not meta.shape:
            return None
        try:
            fast = cls(sess, meta)
        except (TypeError, ValueError):  # bounds the native check cannot take: the general path says so
            return None
        if fast.check == "u8_range" and fast.lo > fast.hi:  # no uint8 value is in range: general path
            return None
        return fast

    def takes(self, sess: InferenceSession, feed: Any) -> bool:
        """Whether this call can take the fast path (any other goes the general way, errors included)."""
        if type(feed) is not dict or len(feed) != 1 or sess._detector is not None \
                or sess._activations is not self.acts or sess.profile is not self.profile:
            return False  # (fused calibration swaps the detector and the activation check in)
        x = feed.get(self.name)
        if type(x) is not np.ndarray or x.dtype is not self.dtype or not x.flags.c_contiguous or not x.size:
            return False
        shape = x.shape
        if len(shape) != len(self.shape):
            return False
        if self.tail is not None:
            return shape[1:] == self.tail
        return all(want is None or want == got for want, got in zip(self.shape, shape))

    def checks(self, x: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        """Per-sample non-finite and out-of-range counts, as :meth:`InferenceSession._sanity` gives them."""
        n = x.shape[0]
        check = self.check
        if check == "f32_range":
            return n, *_core.session_counts_f32(x, n, self.lo, self.hi, True, "auto")
        if check == "f32_nonfinite":  # the input's range is unknown: its out-of-range count stays 0
            return n, *_core.session_counts_f32(x, n, self.lo, self.hi, False, "auto")
        if check == "u8_range":
            return n, *_core.session_counts_u8(x, n, self.lo, self.hi, "auto")
        return n, np.zeros(n, np.int64), np.zeros(n, np.int64)


_NO_EXCESS = np.zeros(0, np.float32)


class _PendingReport:
    """A fast-path run's check results; :meth:`build` turns them into its :class:`GuardReport`, when
    :attr:`InferenceSession.last_report` is first read (or at once when the run returns or acts on it)."""

    # No reference to the session: kept in its thread-local storage, that would be a reference cycle.
    __slots__ = ("action", "n", "nonfinite", "out_of_range", "acts", "monitor", "t0", "t1", "t2")

    def __init__(self, action, n, nonfinite, out_of_range, acts, monitor, t0, t1, t2) -> None:
        self.action, self.n, self.nonfinite, self.out_of_range = action, n, nonfinite, out_of_range
        self.acts, self.monitor, self.t0, self.t1, self.t2 = acts, monitor, t0, t1, t2

    def build(self) -> GuardReport:
        """The report the general path builds (``_report`` + the activation check), with one native call
        when no sample is flagged; flagged samples (rare) take the general code, which names the reasons."""
        timings = {"checks": (self.t1 - self.t0) * 1e3, "inference": (self.t2 - self.t1) * 1e3}
        acts, n = self.acts, self.n
        verdict = self._verdict()
        if verdict is None or verdict[2]:
            report = _make_report(n, self.nonfinite, self.out_of_range, None, {}, timings, self.action)
            if acts is not None:
                acts.apply(report, self.monitor)
        else:
            flagged, act_scores, _ = verdict
            scores = {"non_finite": self.nonfinite, "out_of_range": self.out_of_range}
            if acts is not None:
                scores["activation_range"] = act_scores
            report = GuardReport(flagged=flagged, scores=scores, reasons=[[] for _ in range(n)],
                                 threshold=None, timings=timings, action=self.action)
        timings["total"] = (self.t2 - self.t0) * 1e3  # the run's own time (the report is built later)
        return report

    def _verdict(self):
        """(flagged, activation scores, flagged count) from the native core, or None when the monitor output
        is not the (N, K) float32 array the core takes (then ``SessionActivations.apply`` handles it)."""
        if self.acts is None:
            return _core.session_verdict(self.nonfinite, self.out_of_range, _NO_EXCESS, 0, 0.0, "auto")
        monitor, excess = self.acts.monitor, self.monitor
        channels = monitor.score_hi.size
        if type(excess) is not np.ndarray or excess.dtype != np.float32 or excess.shape != (self.n, channels):
            return None
        try:
            return _core.session_verdict(self.nonfinite, self.out_of_range, excess, channels,
                                         monitor.tolerance, "auto")
        except TypeError:  # not C-contiguous (onnxruntime's outputs are): the general code copes
            return None


class _Detector:
    """The squeeze detector of one session: profile constants resolved once, applied per call."""

    def __init__(self, profile: GuardProfile, meta: _InputMeta, batch_dynamic: bool) -> None:
        spec = profile.input
        self.name = spec.name
        self.layout = spec.layout
        self.lo, self.hi = spec.range
        self.squeezers = parse_all(profile.squeezers)
        self.keys = [f"squeeze[{s.spec}]" for s in self.squeezers]
        self.purifier = self.squeezers.index(next(s for s in self.squeezers if s.spec == profile.purifier)) \
            if profile.purifier else 0
        self.output_name = profile.output_name
        self.logits = profile.output_kind == "logits"
        self.threshold = float(profile.threshold)
        self.batch_dynamic = batch_dynamic
        self.dtype = np.dtype(spec.dtype)
        if meta.dtype is not None and np.dtype(meta.dtype) != self.dtype:
            raise ProfileError(f"profile input {spec.name!r} is {self.dtype} but the model expects "
                               f"{np.dtype(meta.dtype)}")
        # Pixel space <-> model space. unit = x * a + b maps the model's input to [0, 1] pixels.
        self.affine = None
        needs_unit = any(s.needs_unit_range for s in self.squeezers)
        if spec.normalized or (self.dtype == np.float32 and needs_unit and (self.lo, self.hi) != (0.0, 1.0)):
            mean = np.asarray(spec.mean if spec.normalized else [0.0], dtype=np.float64)
            std = np.asarray(spec.std if spec.normalized else [1.0], dtype=np.float64)
            span = self.hi - self.lo
            a, b = std / span, (mean - self.lo) / span
            shape = (1, -1, 1, 1) if self.layout == "NCHW" else (-1,)
            self.affine = (a.astype(np.float32).reshape(shape), b.astype(np.float32).reshape(shape))
        # shape -> True when a batched run gives bit-identical outputs for the original slot.
        self.joint_ok: dict[tuple, bool] = {}

    def slots(self, joint: bool) -> int:
        return len(self.squeezers) + (1 if joint else 0)


class InferenceSession(_OrtSession):
    """A drop-in ``onnxruntime.InferenceSession`` that guards every ``run``.

    Args (after onnxruntime's own ``path_or_bytes, sess_options, providers, provider_options``):
        profile: a :class:`GuardProfile` or a path to one; ``None`` runs input sanity checks only.
        action: ``"monitor"`` (report only; outputs bit-identical to onnxruntime), ``"reject"`` (raise
            :class:`AdversarialInputError` when a sample is flagged) or ``"purify"`` (flagged samples get the
            outputs of their squeezed input, the profile's purifier).
        restrict_activations: clamp every profiled activation to its clean range (Ranger, see
            :func:`pyguard.harden`); ``"fused"`` clamps only where onnxruntime fuses the clamp into the
            convolution (no extra cost); ``"zero"`` uses harden's zero mode (NaN, +-Inf and far-out values
            become 0: contains far more faults, costs extra passes). Needs a profile calibrated with
            ``activations``. Outputs then differ
            from onnxruntime's wherever an activation left its range, which is the point.
        guard_mode: ``"auto"`` (default: ``"graph"`` when the first provider is not the CPU provider and the
            profile's squeezers have a standard-operator form), ``"native"`` (pyguard's kernels on the host)
            or ``"graph"`` (the session runs :func:`pyguard.compile_guard`'s model; inputs may stay on the
            device with ``io_binding``). See :attr:`guard_mode` for the mode in use.
        telemetry: a :class:`pyguard.telemetry.Telemetry` counting every run.
        audit: a :class:`pyguard.audit.AuditLog` recording each flagged sample (fsync-ed before ``run``
            returns).
        signature / public_key: a model-signing signature file and the PEM public key it must verify
            against before the model is loaded (:mod:`pyguard.integrity`).

    A profile with activation ranges also checks the monitored activations on every run (one small extra
    model output, hidden from ``get_outputs`` and ``run``): reason ``"activation_range"``.

    Every ``run`` first checks the feed against the model (unknown or missing input names, dtype, rank,
    fixed dimensions: :class:`InputError`). Samples with NaN/Inf are flagged ``"non_finite"`` and values
    outside the profile's input range ``"input_range"``; like a squeeze detection, these raise
    :class:`AdversarialInputError` under ``action="reject"``. The report of the calling thread's last run
    is :attr:`last_report` (in monitor mode without telemetry or audit, a plain ``run`` leaves it to be
    assembled when first read; its ``timings["total"]`` is then the run's own time).
    """

    def __init__(self, path_or_bytes, sess_options=None, providers=None, provider_options=None, *,
                 profile: GuardProfile | str | os.PathLike | None = None, action: str = "monitor",
                 restrict_activations: bool | str = False, cascade: bool = False, guard_mode: str = "auto",
                 telemetry=None, audit=None, signature=None, public_key=None, **kwargs) -> None:
        if action not in ACTIONS:
            raise ConfigError(f"action must be one of {ACTIONS}, got {action!r}")
        if isinstance(profile, (str, os.PathLike)):
            profile = GuardProfile.load(profile)
        elif profile is not None and not isinstance(profile, GuardProfile):
            raise ConfigError(f"profile must be a GuardProfile, a path or None, got {type(profile).__name__}")
        # ---- hardening: signature check, telemetry and audit hooks (pyguard.integrity/telemetry/audit) --
        self._production = production.Hooks.create(path_or_bytes, profile, telemetry=telemetry, audit=audit,
                                                   signature=signature, public_key=public_key)
        # ---- hardening (end) ----
        if profile is not None:
            try:
                profile.check_model(model_sha256(path_or_bytes))
            except OSError as e:
                raise ModelError(f"cannot read model {path_or_bytes!r}: {e}") from e
        # ---- guard mode (issue 7): graph mode runs the in-graph guard of compile_guard ----
        self._guard_mode = _guard_mode.choose_guard_mode(providers, profile, guard_mode)
        self._graph = None
        if self._guard_mode == "graph":
            if action == "purify" or restrict_activations or cascade:
                raise ConfigError("guard_mode='graph' supports action='monitor'/'reject' without "
                                  "restrict_activations or cascade; use guard_mode='native'")
            path_or_bytes = _guard_mode.compiled_model(path_or_bytes, profile)
        try:  # ---- activations (issue 4): the hardened and/or instrumented model ----
            if self._guard_mode == "native":
                path_or_bytes = _activations.session_model(path_or_bytes, profile, restrict_activations)
        except _activations.ActivationError as e:
            raise ConfigError(str(e)) from e
        try:
            super().__init__(path_or_bytes, sess_options, providers, provider_options, **kwargs)
        except Exception as e:
            # UnicodeDecodeError: invalid UTF-8 in a model's string fields (found by fuzz/fuzz_pyguard.py)
            if type(e).__module__.startswith("onnxruntime") or isinstance(e, UnicodeDecodeError):
                raise ModelError(f"onnxruntime cannot load the model: {e}") from e
            raise
        if self._guard_mode == "graph":  # ---- guard mode (issue 7) ----
            monitor = _activations.SessionActivations.create(profile)
            self._graph = _guard_mode.GraphGuard([o.name for o in _OrtSession.get_outputs(self)], profile,
                                                 monitor.output_name if monitor is not None else None)
        try:
            self._guard_init(profile, action)
        except UnicodeDecodeError as e:  # an input/output name that is not UTF-8 (found by fuzzing)
            raise ModelError(f"the model's input/output names are not valid UTF-8: {e}") from e
        self._cascade = _fused.cascade_for(self, cascade)  # ---- fused detector (issue 5) ----
        if self._graph is not None:  # the guard model computes the checks: no native detector
            self._detector = self._fused = None
        self._fast = _FastPath.create(self)

    # ---- setup ------------------------------------------------------------------------------------------
    def _guard_init(self, profile: GuardProfile | None, action: str) -> None:
        """(Re)configure the guard; calibration calls this again with draft profiles."""
        self._fast = None
        self._guard_setup(profile, action)
        self._fast = _FastPath.create(self)

    def _guard_setup(self, profile: GuardProfile | None, action: str) -> None:
        self.action = action
        self.profile = profile
        self._local = threading.local()
        self._inputs = {a.name: _InputMeta(a) for a in self.get_inputs()}
        self._optional = {a.name for a in self.get_overridable_initializers()}
        self._activations = _activations.SessionActivations.create(profile)
        self._output_names = [o.name for o in self.get_outputs()]
        self._output_set = frozenset(self._output_names)
        self._detector = None
        self._cascade = None
        self._fused = _fused.runtime_for(profile)  # ---- fused detector (issue 5) ----
        if action == "purify" and not (profile is not None and profile.squeezers):
            raise ConfigError("action='purify' needs a profile with at least one squeezer")
        if profile is None:
            self._primary = next((m.name for m in self._inputs.values() if m.dtype in (np.float32, np.uint8)
                                  and m.shape), next(iter(self._inputs), None))
            return
        meta = self._inputs.get(profile.input.name)
        if meta is None:
            raise ProfileError(f"profile input {profile.input.name!r} is not an input of this model "
                               f"(inputs: {list(self._inputs)})")
        if profile.output_name not in self._output_names:
            raise ProfileError(f"profile output {profile.output_name!r} is not an output of this model "
                               f"(outputs: {self._output_names})")
        self._primary = meta.name
        if profile.squeezers or self._fused is not None:
            outputs_dynamic = all(o.shape and _is_dynamic(o.shape[0]) for o in self.get_outputs())
            dynamic = bool(meta.shape) and _is_dynamic(meta.shape[0]) and outputs_dynamic
            self._detector = _Detector(profile, meta, dynamic)

    def get_outputs(self):
        """The model's outputs, as onnxruntime lists them (the activation monitor's output is hidden)."""
        outputs = _OrtSession.get_outputs(self)
        if getattr(self, "_graph", None) is not None:  # ---- guard mode (issue 7): hide pyguard_* ----
            return [o for o in outputs if o.name not in self._graph.extra]
        acts = getattr(self, "_activations", None)
        return outputs if acts is None else [o for o in outputs if o.name != acts.output_name]

    @property
    def guard_mode(self) -> str:
        """"native" (squeezers run by pyguard's kernels) or "graph" (the guard model of compile_guard)."""
        return self._guard_mode

    @property
    def last_report(self) -> GuardReport | None:
        """The report of the last ``run`` made by the calling thread (None before the first)."""
        report = getattr(self._local, "report", None)
        if type(report) is _PendingReport:  # a fast-path run: assembled on first read, then kept
            report = self._local.report = report.build()
        return report

    # ---- public run API -------------------------------------------------------------------------------
    def run(self, output_names, input_feed, run_options=None):
        """Same as ``onnxruntime.InferenceSession.run``; the report goes to :attr:`last_report`."""
        fast = self._fast
        if fast is not None and fast.takes(self, input_feed):
            return self._run_fast(fast, output_names, input_feed, run_options, False)[0]
        return self.run_with_report(output_names, input_feed, run_options)[0]

    def run_with_report(self, output_names, input_feed, run_options=None) -> tuple[list, GuardReport]:
        fast = self._fast
        if fast is not None and fast.takes(self, input_feed):
            return self._run_fast(fast, output_names, input_feed, run_options, True)
        t0 = time.perf_counter()
        if not isinstance(input_feed, dict):
            raise InputError("input_feed must be a dict of input name -> array, "
                             f"got {type(input_feed).__name__}")
        names = self._requested_outputs(output_names)
        self._check_feed(input_feed)
        if self._graph is not None:  # ---- guard mode (issue 7) ----
            values = _OrtSession.run(self, [*names, *self._graph.extra], input_feed, run_options)
            return self._finish_graph_run(values, len(names), {}, t0)
        if self._activations is not None:  # a new list: names may be self._output_names
            names = [*names, self._activations.output_name]
        x = input_feed.get(self._primary)
        timings: dict[str, float] = {}
        if self._detector is None:
            n, nonfinite, out_of_range = self._sanity(input_feed, x)
            timings["checks"] = _ms(t0)
            t1 = time.perf_counter()
            outputs = _OrtSession.run(self, names, input_feed, run_options)
            timings["inference"] = _ms(t1)
            report = self._report(n, nonfinite, out_of_range, None, {}, timings)
        elif self._cascade is not None:  # ---- fused detector (issue 5): screening cascade ----
            outputs, report = self._cascade.run(names, input_feed, x, run_options, timings)
        else:
            outputs, report = self._detect(names, input_feed, x, run_options, timings)
        if self._activations is not None and self._cascade is None:
            self._activations.apply(report, outputs.pop())
        if self._fused is not None and self._cascade is None:  # ---- fused detector (issue 5) ----
            self._fused.apply(report, *self._local.fused_inputs)
            self._local.fused_inputs = None  # do not keep the caller's batch alive
        timings["total"] = _ms(t0)
        self._publish(report, x)
        return outputs, report

    def _requested_outputs(self, output_names) -> list[str]:
        """The output names asked for (all of the model's when none are), each checked to exist."""
        if not output_names:
            return self._output_names
        names = list(output_names)
        unknown = [n for n in names if n not in self._output_set]
        if unknown:
            raise InputError(f"unknown output name(s) {unknown}; model outputs: {self._output_names}")
        return names

    def _publish(self, report: GuardReport, x: np.ndarray) -> None:
        """Make ``report`` this thread's last one, record it (audit is fsync-ed and telemetry counted before
        the caller sees the outputs) and, with ``action="reject"``, raise for a flagged sample."""
        self._local.report = report
        if self._production is not None:
            self._production.observe(report, x)
        if self.action == "reject" and report.any_flagged:
            raise AdversarialInputError(report)

    def _run_fast(self, fast: _FastPath, output_names, feed: dict, run_options, want_report: bool):
        """The common call (see :class:`_FastPath`): the same checks, outputs and report as the general path.
        The report is built now when it is returned or acted on (reject, audit, telemetry), else on the
        first read of :attr:`last_report`."""
        t0 = time.perf_counter()
        if output_names:
            names = self._requested_outputs(output_names)
            run_names = names if fast.acts is None else [*names, fast.acts.output_name]
        else:
            run_names = fast.run_names
        x = feed[fast.name]
        n, nonfinite, out_of_range = fast.checks(x)
        t1 = time.perf_counter()
        try:  # onnxruntime's own run() adds only checks this path has made, for numpy feeds
            outputs = self._sess.run(run_names, feed, run_options)
        except _EPFail:  # the provider fallback lives in onnxruntime's run()
            outputs = _OrtSession.run(self, run_names, feed, run_options)
        t2 = time.perf_counter()
        monitor = outputs.pop() if fast.acts is not None else None
        pending = _PendingReport(self.action, n, nonfinite, out_of_range, fast.acts, monitor, t0, t1, t2)
        if not (want_report or self.action == "reject" or self._production is not None):
            self._local.report = pending
            return outputs, None
        report = pending.build()
        report.timings["total"] = _ms(t0)
        self._publish(report, x)
        return outputs, report

    # ---- guard mode (issue 7): graph-mode runs, IOBinding and OrtValues ---------------------------------
    def _finish_graph_run(self, values: list, n_user: int, timings: dict, t0: float, to_host=np.asarray):
        """The caller's outputs and the report, from a graph-mode run's outputs (the caller's, then the
        guard's ``pyguard_*`` ones); ``to_host`` turns a guard output into a numpy array."""
        timings["inference"] = _ms(t0)
        guard = {name: to_host(v) for name, v in zip(self._graph.extra, values[n_user:])}
        n, flagged, nonfinite, out_of_range, extra, reasons = self._graph.report_parts(guard)
        report = self._report(n, nonfinite, out_of_range, self._graph.threshold, extra, timings)
        report.flagged, report.reasons = flagged, reasons
        if self._graph.monitor_output is not None:
            self._activations.apply(report, guard[self._graph.monitor_output])
        timings["total"] = _ms(t0)
        self._local.report = report
        if self.action == "reject" and report.any_flagged:
            raise AdversarialInputError(report)
        return values[:n_user], report

    def io_binding(self):
        """onnxruntime's IOBinding; in graph mode one that remembers the bound output names, so that
        :meth:`run_with_iobinding` can find the guard's outputs and fill :attr:`last_report`."""
        if self._graph is None:
            return _OrtSession.io_binding(self)
        return _guard_mode.GuardIOBinding(self)

    def run_with_iobinding(self, iobinding, run_options=None):
        """onnxruntime's ``run_with_iobinding``. In graph mode, the ``pyguard_*`` outputs not bound by the
        caller are bound to CPU memory (small [N] / [N, k] arrays; they then follow the caller's outputs in
        ``iobinding.get_outputs()``), and the report is built from them (:attr:`last_report`); inputs and
        the model's outputs stay where they are bound (the device)."""
        if self._graph is None:
            return _OrtSession.run_with_iobinding(self, iobinding, run_options)
        if not isinstance(iobinding, _guard_mode.GuardIOBinding):
            raise InputError("in graph mode, bind with this session's io_binding() so the guard outputs can "
                             "be found")
        for name in self._graph.extra:
            if name not in iobinding.output_names:
                iobinding.bind_output(name, "cpu")
        t0 = time.perf_counter()
        _OrtSession.run_with_iobinding(self, iobinding, run_options)
        outputs = iobinding.get_outputs()
        index = {name: i for i, name in enumerate(iobinding.output_names)}
        values = [outputs[index[name]] for name in self._graph.extra]
        self._finish_graph_run(values, 0, {}, t0, to_host=lambda v: v.numpy())

    def run_with_ort_values(self, output_names, input_dict_ort_values, run_options=None):
        """onnxruntime's ``run_with_ort_values``; in graph mode the guard outputs are added to the run, copied
        to the host for the report (:attr:`last_report`) and left out of the returned OrtValues."""
        if self._graph is None:
            return _OrtSession.run_with_ort_values(self, output_names, input_dict_ort_values, run_options)
        names = self._requested_outputs(output_names)
        t0 = time.perf_counter()
        values = _OrtSession.run_with_ort_values(self, [*names, *self._graph.extra], input_dict_ort_values,
                                                 run_options)
        return self._finish_graph_run(list(values), len(names), {}, t0, to_host=lambda v: v.numpy())[0]

    # ---- checks -----------------------------------------------------------------------------------------
    def _check_feed(self, feed: dict) -> None:
        for name, value in feed.items():
            meta = self._inputs.get(name)
            if meta is None:
                if name in self._optional:
                    continue
                raise InputError(f"unknown input name {name!r}; model inputs: {list(self._inputs)}")
            if isinstance(value, np.ndarray):
                meta.check(value)
            elif name == self._primary and (self._detector or not isinstance(value, _ort.OrtValue)):
                raise InputError(f"input {name!r} must be a numpy array, got {type(value).__name__}")
        missing = [n for n in self._inputs if n not in feed]
        if missing:
            raise InputError(f"missing input(s) {missing}; model inputs: {list(self._inputs)}")

    def _sanity(self, feed: dict, x) -> tuple[int, np.ndarray, np.ndarray]:
        """Per-sample non-finite counts over every float input; out-of-range counts when a profile
        (without squeezers) gives the range of an unnormalized input."""
        n = x.shape[0] if isinstance(x, np.ndarray) and x.ndim else 1
        nonfinite = np.zeros(n, dtype=np.int64)
        out_of_range = np.zeros(n, dtype=np.int64)
        spec = self.profile.input if self.profile is not None else None
        ranged = (spec is not None and not spec.normalized and isinstance(x, np.ndarray) and x.ndim > 0
                  and x.size > 0 and x.dtype in (np.float32, np.uint8))
        if ranged:  # a profile without squeezers still knows the input's range: one pass counts both
            lo, hi = spec.range
            checks = ops.sample_checks(x, lo=lo, hi=hi, grid=None)
            nonfinite += checks.nonfinite
            out_of_range = checks.out_of_range
        for value in feed.values():
            if (ranged and value is x) or not isinstance(value, np.ndarray) or value.dtype.kind != "f" \
                    or value.size == 0:
                continue
            per_sample = value.ndim >= 1 and value.shape[0] == n
            counts = _nonfinite_counts(value if per_sample else value.reshape(1, -1))
            nonfinite += counts if per_sample else counts.sum()
        return n, nonfinite, out_of_range

    # ---- detector ---------------------------------------------------------------------------------------
    def _workspace(self, x: np.ndarray, joint: bool) -> _Workspace:
        cache = getattr(self._local, "workspaces", None)
        if cache is None:
            cache = self._local.workspaces = {}
        key = (x.shape, joint)
        ws = cache.get(key)
        if ws is None:
            if len(cache) >= _MAX_WORKSPACES:
                cache.clear()
            ws = cache[key] = _Workspace(x, self._detector.slots(joint), self._detector.affine is not None)
        return ws

    def _detect(self, names, feed, x, run_options, timings):
        det = self._detector
        t0 = time.perf_counter()
        if x.ndim < 2:
            raise InputError(f"input {det.name!r} must have a batch axis and image axes, got shape {x.shape}")
        if x.size == 0:  # found by fuzz/fuzz_pyguard.py: reached the ops as a bare ValueError
            raise InputError(f"input {det.name!r} is empty (shape {x.shape}): nothing to guard")
        n = x.shape[0]
        joint = det.batch_dynamic and det.joint_ok.get(x.shape, True)
        ws = self._workspace(x, joint)
        nonfinite, out_of_range, src = self._checks_and_source(x, ws)
        timings["checks"] = _ms(t0)

        t1 = time.perf_counter()
        first = 1 if joint else 0
        lo, hi = (0.0, 1.0) if det.affine is not None else (det.lo, det.hi)
        for i, sq in enumerate(det.squeezers):
            slot = ws.slots[first + i]
            if det.affine is None:
                sq.apply(src, slot, layout=det.layout, lo=lo, hi=hi)
            else:
                sq.apply(src, ws.tmp, layout=det.layout, lo=lo, hi=hi)
                a, b = det.affine
                np.subtract(ws.tmp, b, out=slot)
                np.divide(slot, a, out=slot)
        if joint:
            np.copyto(ws.slots[0], x)
        timings["squeeze"] = _ms(t1)

        t2 = time.perf_counter()
        run_names = names if det.output_name in names else [*names, det.output_name]
        prob_index = run_names.index(det.output_name)
        per_slot = joint_outputs = None
        if joint:
            joint_outputs, per_slot = self._run_joint(run_names, feed, ws, n, run_options)
            outputs = per_slot[0]
            if x.shape not in det.joint_ok:  # first call with this shape: is the batched run exact?
                alone = _OrtSession.run(self, run_names, feed, run_options)
                det.joint_ok[x.shape] = _same_bits(alone, outputs)
                if not det.joint_ok[x.shape]:  # batching changed the numbers: run the original alone
                    outputs, per_slot, joint_outputs = alone, None, None
        if per_slot is None:
            if not joint:
                outputs = _OrtSession.run(self, run_names, feed, run_options)
            per_slot = [outputs] + [self._run_slot(run_names, feed, ws.slots[first + i], run_options)
                                    for i in range(len(det.squeezers))]
        timings["inference"] = _ms(t2)

        t3 = time.perf_counter()
        if joint_outputs is not None:  # one array holds every copy: no stacking needed
            probs = joint_outputs[prob_index].reshape(len(per_slot), n, -1)
        else:
            probs = np.stack([slot_outputs[prob_index].reshape(n, -1) for slot_outputs in per_slot])
        # ---- fused detector (issue 5): pixels and outputs of this call (also read by calibrate) ----
        self._local.fused_inputs = (src, lo, hi, probs[0])
        self._local.fused_probs = probs
        scores, per_squeezer = _squeeze_scores(probs, det.logits)
        if nonfinite.any():
            scores[nonfinite > 0] = np.inf  # NaN/Inf samples were squeezed from a cleaned copy
        extra = {"squeeze": scores, **dict(zip(det.keys, per_squeezer))}
        report = self._report(n, nonfinite, out_of_range, det.threshold, extra, timings)
        user = [outputs[run_names.index(name)] for name in names]
        if self.action == "purify" and report.any_flagged:
            user = self._purify(user, [per_slot[1 + det.purifier][run_names.index(m)] for m in names],
                                report.flagged, n)
            report.purified = report.flagged.copy()
        timings["score"] = _ms(t3)
        return user, report

    def _checks_and_source(self, x: np.ndarray, ws: _Workspace):
        """Input checks, and the array to squeeze: x itself, or its [0, 1] pixel form in ws.unit."""
        det = self._detector
        n = x.shape[0]
        if x.dtype == np.uint8 and (det.lo, det.hi) == (0.0, 255.0) and det.affine is None:
            zeros = np.zeros(n, dtype=np.int64)
            return zeros, zeros.copy(), x
        if det.affine is None:
            checks = ops.sample_checks(x, lo=det.lo, hi=det.hi, grid=None)
            nonfinite, out_of_range = checks.nonfinite, checks.out_of_range
            src = _finite_copy(x, nonfinite, det.lo) if nonfinite.any() else x
            return nonfinite, out_of_range, src
        nonfinite = ops.sample_checks(x, grid=None).nonfinite
        a, b = det.affine
        np.multiply(x, a, out=ws.unit)
        np.add(ws.unit, b, out=ws.unit)
        if nonfinite.any():
            ws.unit[~np.isfinite(ws.unit)] = 0.0
        out_of_range = ops.sample_checks(ws.unit, lo=-_UNIT_TOLERANCE, hi=1.0 + _UNIT_TOLERANCE,
                                          grid=None).out_of_range
        return nonfinite, out_of_range, ws.unit

    def _other_feed(self, feed: dict, n: int, copies: int, ws: _Workspace | None) -> dict:
        """The feed for a batched run: the other per-sample inputs tiled ``copies`` times."""
        out = {}
        for name, value in feed.items():
            if name == self._primary:
                continue
            meta = self._inputs.get(name)
            batched = (isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == n and meta
                       and meta.shape and _is_dynamic(meta.shape[0]))
            if batched and copies > 1:
                buf = ws.tiled.get(name)
                if buf is None or buf.shape != (copies * n, *value.shape[1:]) or buf.dtype != value.dtype:
                    buf = ws.tiled[name] = np.empty((copies * n, *value.shape[1:]), dtype=value.dtype)
                buf.reshape(copies, *value.shape)[...] = value
                value = buf
            out[name] = value
        return out

    def _run_joint(self, run_names, feed, ws, n, run_options):
        copies = ws.slots.shape[0]
        batched_feed = self._other_feed(feed, n, copies, ws)
        batched_feed[self._primary] = ws.stack
        outputs = _OrtSession.run(self, run_names, batched_feed, run_options)
        for o in outputs:
            if not isinstance(o, np.ndarray) or o.ndim == 0 or o.shape[0] != copies * n:
                raise InputError("a batched run returned an output without the batch axis; this model "
                                 "cannot be run jointly")
        per_slot = [[o[i * n:(i + 1) * n] for o in outputs] for i in range(copies)]
        return outputs, per_slot

    def _run_slot(self, run_names, feed, slot, run_options):
        slot_feed = dict(feed)
        slot_feed[self._primary] = slot
        return _OrtSession.run(self, run_names, slot_feed, run_options)

    @staticmethod
    def _purify(user, purified, flagged, n):
        result = []
        for original, clean in zip(user, purified):
            if isinstance(original, np.ndarray) and original.ndim and original.shape[0] == n:
                original = np.array(original, copy=True)
                original[flagged] = clean[flagged]
            result.append(original)
        return result

    def _report(self, n, nonfinite, out_of_range, threshold, extra, timings) -> GuardReport:
        return _make_report(n, nonfinite, out_of_range, threshold, extra, timings, self.action)


def _make_report(n, nonfinite, out_of_range, threshold, extra, timings, action: str) -> GuardReport:
    """The report of a native-mode run: input flags (non-finite, out of range) and the squeeze test's."""
    squeeze = extra.get("squeeze")
    above = squeeze > threshold if squeeze is not None else None
    if nonfinite.any() or out_of_range.any():
        bad_values, bad_range = nonfinite > 0, out_of_range > 0
        flagged = bad_values | bad_range
        if above is not None:
            flagged |= above
    else:  # the common case: only the squeeze test can flag
        bad_values = bad_range = None
        flagged = above if above is not None else np.zeros(n, dtype=bool)
    reasons: list[list[str]] = [[] for _ in range(n)]
    if flagged.any():  # rare: name the reasons of each flagged sample
        for i in np.flatnonzero(flagged).tolist():
            reasons[i] = [name for name, hit in (("non_finite", bad_values), ("input_range", bad_range),
                                                 ("squeeze", above)) if hit is not None and hit[i]]
    scores = {"non_finite": nonfinite, "out_of_range": out_of_range, **extra}
    return GuardReport(flagged=flagged, scores=scores, reasons=reasons, threshold=threshold,
                       timings=timings, action=action)


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


def _same_bits(a: list, b: list) -> bool:
    return all(isinstance(u, np.ndarray) and u.dtype == v.dtype and u.shape == v.shape
               and u.tobytes() == v.tobytes() for u, v in zip(a, b))


def _nonfinite_counts(value: np.ndarray) -> np.ndarray:
    if value.dtype == np.float32:
        return ops.sample_checks(value, grid=None).nonfinite
    flat = np.ascontiguousarray(value).reshape(value.shape[0], -1)
    return (~np.isfinite(flat)).sum(axis=1).astype(np.int64)


def _finite_copy(x: np.ndarray, nonfinite: np.ndarray, fill: float) -> np.ndarray:
    """A copy of x whose non-finite values are replaced, so the squeezers can run (rare path)."""
    clean = np.array(x, copy=True)
    clean[~np.isfinite(clean)] = fill
    return clean


def _squeeze_scores(probs: np.ndarray, logits: bool) -> tuple[np.ndarray, list[np.ndarray]]:
    """L1 distance between the original's probability vector (``probs[0]``, copies x samples x classes) and
    each squeezed copy's; max over copies. Computed in float64."""
    p = probs.astype(np.float64)
    if logits:
        p -= p.max(axis=-1, keepdims=True)
        np.exp(p, out=p)
        p /= p.sum(axis=-1, keepdims=True)
    distances = np.abs(p[1:] - p[0]).sum(axis=-1)
    if not len(distances):  # a fused profile without squeezers
        return np.zeros(p.shape[1]), []
    return distances.max(axis=0), list(distances)


__all__ = ["InferenceSession", "ACTIONS", "choose_guard_mode"]
