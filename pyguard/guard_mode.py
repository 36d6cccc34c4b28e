"""Graph mode of :class:`pyguard.InferenceSession`: the session runs the in-graph guard of
:func:`pyguard.compile_guard` and builds its report from the guard's small ``pyguard_*`` outputs.

``guard_mode="auto"`` picks graph mode when the first execution provider is not the CPU provider (the input
may live on a device: squeezing it on the host would cost a copy each way) and every squeezer of the
profile has a standard-operator form; native mode otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnxruntime as _ort

from .errors import ConfigError

GUARD_MODES = ("auto", "native", "graph")
CPU_PROVIDER = "CPUExecutionProvider"

# The guard outputs the report reads (names as in pyguard.graph, kept here so that native sessions do
# not import onnx). Activation ranges are not compiled as bounds: graph mode adds the same activation
# monitor as native mode (pyguard.activations.instrument), so both modes flag the same samples.
SCORES = "pyguard_scores"
FLAGS = "pyguard_flags"
NAN_COUNT = "pyguard_nan_count"
INF_COUNT = "pyguard_inf_count"
OUT_OF_RANGE_COUNT = "pyguard_out_of_range_count"
GUARD_OUTPUTS = (SCORES, FLAGS, NAN_COUNT, INF_COUNT, OUT_OF_RANGE_COUNT)


def first_provider(providers: Sequence | None) -> str:
    """The provider onnxruntime tries first: the first of ``providers`` (a name or a (name, options) pair).
    Without providers a session runs on the CPU provider (onnxruntime refuses to pick a GPU provider
    implicitly; ``get_available_providers()`` may list e.g. AzureExecutionProvider first, which is not
    where the model runs)."""
    if not providers:
        return CPU_PROVIDER
    first = providers[0]
    return first[0] if isinstance(first, (tuple, list)) else str(first)


def graph_unsupported(profile: Any) -> str | None:
    """Why ``profile`` cannot run as an in-graph guard (None when it can)."""
    if profile is None:
        return "no profile (input checks only run natively)"
    if getattr(profile, "fused", None) is not None:
        return "the profile carries a fused detector, which exists in native mode only"
    if not profile.squeezers:
        return "the profile has no squeezer"
    from .graph import parse_squeezer  # imports onnx: only when a profile is there to check

    for spec in profile.squeezers:
        try:
            parse_squeezer(spec)
        except ValueError as e:
            return str(e)
    return None


def choose_guard_mode(providers: Sequence | None, profile: Any, requested: str = "auto") -> str:
    """"native" or "graph" for a session with these providers and this profile.

    "auto": graph when the first provider is not the CPU provider and the profile can be compiled into the
    graph; "native" otherwise. "native" and "graph" are returned as given (graph mode without a profile
    runs natively: there is nothing to compile).
    """
    if requested not in GUARD_MODES:
        raise ConfigError(f"guard_mode must be one of {GUARD_MODES}, got {requested!r}")
    if requested == "graph" and profile is None:
        return "native"
    if requested != "auto":
        return requested
    if first_provider(providers) == CPU_PROVIDER:
        return "native"
    return "graph" if graph_unsupported(profile) is None else "native"


def compiled_model(model: Any, profile: Any) -> bytes:
    """The serialized in-graph guard; ConfigError with compile_guard's message when it cannot be built."""
    from .graph import compile_guard

    reason = graph_unsupported(profile)
    if reason is not None and getattr(profile, "fused", None) is not None:
        raise ConfigError(f"guard_mode='graph': {reason}; use guard_mode='native'")
    if isinstance(model, (bytearray, memoryview)):
        model = bytes(model)
    try:  # activation ranges: the same monitor as native mode (one small reduction output), not bounds
        guard = compile_guard(model, profile, activation_bounds={})
    except ValueError as e:
        raise ConfigError(f"guard_mode='graph': {e}") from e
    acts = getattr(profile, "activations", None)
    if acts is not None and acts.monitor is not None:
        from .activations import instrument

        guard = instrument(guard, acts)
    return guard.SerializeToString()


class GuardIOBinding(_ort.IOBinding):
    """onnxruntime's IOBinding that remembers the order outputs were bound in, so the session can find
    the ``pyguard_*`` outputs among them after ``run_with_iobinding``."""

    def __init__(self, session) -> None:
        super().__init__(session)
        self.output_names: list[str] = []

    def _remember(self, name: str) -> None:
        if name not in self.output_names:  # onnxruntime rebinds a bound name in place
            self.output_names.append(name)

    def bind_output(self, name, *args, **kwargs):
        super().bind_output(name, *args, **kwargs)
        self._remember(name)

    def bind_ortvalue_output(self, name, *args, **kwargs):
        super().bind_ortvalue_output(name, *args, **kwargs)
        self._remember(name)

    def clear_binding_outputs(self):
        super().clear_binding_outputs()
        self.output_names = []


class GraphGuard:
    """What a graph-mode session knows about its guard model's extra outputs and the profile."""

    def __init__(self, all_outputs: Sequence[str], profile: Any, monitor_output: str | None) -> None:
        """``monitor_output``: the activation monitor's output (read by SessionActivations), if any."""
        self.extra = [name for name in GUARD_OUTPUTS if name in set(all_outputs)]
        self.monitor_output = monitor_output
        if monitor_output is not None:
            self.extra.append(monitor_output)
        self.keys = [f"squeeze[{spec}]" for spec in profile.squeezers]
        self.threshold = float(profile.threshold)

    def report_parts(self, values: dict[str, np.ndarray]):
        """(n, flagged, nonfinite, out_of_range, extra scores, reasons) from the guard outputs."""
        scores = np.asarray(values[SCORES], dtype=np.float32)
        flagged = np.asarray(values[FLAGS], dtype=bool).reshape(-1)
        n = flagged.shape[0]
        zeros = np.zeros(n, dtype=np.int64)
        nonfinite = zeros.copy()
        for name in (NAN_COUNT, INF_COUNT):
            if name in values:
                nonfinite += np.asarray(values[name], dtype=np.int64)
        out_of_range = np.asarray(values.get(OUT_OF_RANGE_COUNT, zeros), dtype=np.int64)
        squeeze = scores[:, -1].astype(np.float64)
        extra = {"squeeze": squeeze, **{k: scores[:, j].astype(np.float64) for j, k in enumerate(self.keys)}}
        above = scores[:, -1] > np.float32(self.threshold)  # the graph compares in float32
        reasons: list[list[str]] = [[] for _ in range(n)]
        checks = (("non_finite", nonfinite > 0), ("input_range", out_of_range > 0), ("squeeze", above))
        for i in np.flatnonzero(flagged).tolist():
            reasons[i] = [name for name, hit in checks if hit[i]]
        return n, flagged, nonfinite, out_of_range, extra, reasons


__all__ = ["choose_guard_mode", "GUARD_MODES", "GUARD_OUTPUTS", "GuardIOBinding"]
