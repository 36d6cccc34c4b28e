"""Fault injection: single IEEE-754 float32 bit flips in activations and weights, and a campaign runner.

Activation faults are written into the ONNX graph: a ``ScatterND`` after the chosen tensor writes, at one
element of every sample, the exact bit-flipped value (the value is read in a fault-free run of the same
graph, flipped with an integer XOR on its bits, and fed as the ``updates`` input), so the result is exactly
the flipped float. Indices and updates are graph inputs, so one session per fault site serves every
injection there. Weight faults turn the chosen initializer into a graph input and feed a copy with one bit
flipped; again one session per weight tensor.

The campaign: N injections (site, element, bit drawn from a seeded generator) x M correctly classified
inputs, batched. SDC = the top-1 class of the faulty run differs from the fault-free (golden) run of the
same graph. It reports the SDC rate without protection, with restriction (:func:`pyguard.harden`), and with
detection (the share of SDCs flagged by the activation monitor or by non-finite outputs, and false flags on
fault-free runs), each with a Wilson 95% interval, plus clean accuracy with and without restriction.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .activations import (
    ActivationError,
    ActivationProfile,
    ModelLike,
    _expose,
    _input_name,
    _Names,
    _session,
    copy_model,
    fixed_batch,
    instrument,
    load_model,
)
from .harden import harden

BIT_RANGES = {"all": range(32), "sign": range(31, 32), "exponent": range(23, 31), "mantissa": range(23)}


def flip_bit(values: np.ndarray, bit: int) -> np.ndarray:
    """``values`` (float32) with IEEE-754 bit ``bit`` (0 = mantissa LSB, 31 = sign) flipped."""
    if not 0 <= int(bit) <= 31:
        raise ValueError(f"bit must be in 0..31, got {bit}")
    arr = np.ascontiguousarray(values, dtype=np.float32)
    return (arr.view(np.uint32) ^ np.uint32(1 << int(bit))).view(np.float32)


def bit_range(bits: str | Sequence[int]) -> list[int]:
    if isinstance(bits, str):
        if bits not in BIT_RANGES:
            raise ValueError(f"unknown bit range {bits!r}; choose one of {sorted(BIT_RANGES)} or a list of "
                             "bits")
        return list(BIT_RANGES[bits])
    out = [int(b) for b in bits]
    if not out or any(not 0 <= b <= 31 for b in out):
        raise ValueError(f"bits must be a non-empty list of integers in 0..31, got {bits}")
    return out


# --------------------------------------------------------------------------------------------- graph surgery

FAULT_INDICES = "pyguard_fault_indices"
FAULT_UPDATES = "pyguard_fault_updates"


def inject_activation_fault(model: onnx.ModelProto, tensor: str, expose: bool = True) -> onnx.ModelProto:
    """Copy of ``model`` where every consumer of ``tensor`` reads ``ScatterND(tensor, indices, updates)``.

    ``indices`` (int64, [K, rank]) and ``updates`` (float32, [K]) are new graph inputs; K = 0 is a no-op.
    With ``expose``, ``tensor`` itself is an extra output (the fault-free values the updates are made from).
    """
    produced = {o for node in model.graph.node for o in node.output}
    if tensor not in produced:
        raise ActivationError(f"cannot inject into {tensor!r}: no node of the model produces it")
    out = copy_model(model)
    names = _Names(out)
    faulty = names("faulty")
    for node in out.graph.node:
        for i, name in enumerate(node.input):
            if name == tensor:
                node.input[i] = faulty
    for output in out.graph.output:
        if output.name == tensor:
            raise ActivationError(f"cannot inject into {tensor!r}: it is a graph output")
    out.graph.node.append(helper.make_node("ScatterND", [tensor, FAULT_INDICES, FAULT_UPDATES], [faulty],
                                           name=names("fault")))
    out.graph.input.extend([helper.make_tensor_value_info(FAULT_INDICES, TensorProto.INT64, [None, None]),
                            helper.make_tensor_value_info(FAULT_UPDATES, TensorProto.FLOAT, [None])])
    if expose:
        out.graph.output.append(helper.make_tensor_value_info(tensor, TensorProto.FLOAT, None))
    return _toposort(out)


def weight_as_input(model: onnx.ModelProto, weight: str) -> onnx.ModelProto:
    """Copy of ``model`` where initializer ``weight`` is a graph input (fed per run)."""
    out = copy_model(model)
    for i, init in enumerate(out.graph.initializer):
        if init.name == weight:
            del out.graph.initializer[i]
            out.graph.input.append(helper.make_tensor_value_info(weight, init.data_type, list(init.dims)))
            return out
    raise ActivationError(f"unknown weight {weight!r}: not an initializer of the model")


def _toposort(model: onnx.ModelProto) -> onnx.ModelProto:
    """Order nodes so every input is produced before use (ScatterND was appended at the end)."""
    available = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer} | {""}
    pending = list(model.graph.node)
    ordered = []
    while pending:
        progressed = False
        rest = []
        for node in pending:
            if all(i in available for i in node.input):
                ordered.append(node)
                available.update(node.output)
                progressed = True
            else:
                rest.append(node)
        if not progressed:
            raise ActivationError("graph has a cycle or an undefined input after fault insertion")
        pending = rest
    del model.graph.node[:]
    model.graph.node.extend(ordered)
    return model


# ------------------------------------------------------------------------------------------------ statistics


def top1(scores: np.ndarray) -> np.ndarray:
    """Top-1 class per sample of a (N, classes...) score array (NaN ranks like NumPy's argmax)."""
    return scores.reshape(len(scores), -1).argmax(axis=1)


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k/n (95% by default)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Rate:
    k: int
    n: int

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else float("nan")

    def __str__(self) -> str:
        lo, hi = wilson(self.k, self.n)
        return f"{self.k}/{self.n} = {100 * self.value:.2f}% [{100 * lo:.2f}, {100 * hi:.2f}]"


@dataclass
class KindResult:
    """Results for one fault kind (activation or weight).

    ``*_silent`` counts SDCs whose faulty outputs are all finite: a NaN/Inf output is an error a guarded
    session reports (reason "non_finite"), while a finite wrong answer is silent. A constant-bound ``Clip``
    cannot remove NaN (onnxruntime's Clip and fused activations propagate it), so restriction mainly turns
    silent SDCs into finite-bounded values and leaves NaN-driven ones to detection, unless the restriction
    scrubs NaN (``harden(mode="zero")`` or ``scrub_nan=True``).
    """

    kind: str
    injections: int
    sdc_plain: Rate
    sdc_restricted: Rate
    silent_plain: Rate
    silent_restricted: Rate
    sdc_flagged: Rate  # SDCs of the unprotected model that detection flagged
    faulty_flagged: Rate  # all faulty runs that were flagged

    @staticmethod
    def _ratio(a: Rate, b: Rate) -> float:
        if b.k == 0:
            return math.inf if a.k else float("nan")
        return a.value / b.value

    @property
    def reduction(self) -> float:
        return self._ratio(self.sdc_plain, self.sdc_restricted)

    @property
    def silent_reduction(self) -> float:
        return self._ratio(self.silent_plain, self.silent_restricted)


@dataclass
class CampaignResult:
    kinds: list[KindResult]
    false_flags_golden: Rate  # fault-free runs of the campaign inputs flagged
    false_flags_clean: Rate | None  # held-out clean data flagged
    accuracy_plain: Rate | None
    accuracy_restricted: Rate | None
    inputs: int
    seed: int
    bits: str
    details: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        head = "| metric | " + " | ".join(f"{r.kind} faults" for r in self.kinds) + " |"
        rows = [
            ("injections x inputs", lambda r: f"{r.injections} x {self.inputs}"),
            ("SDC unprotected", lambda r: str(r.sdc_plain)),
            ("SDC restricted (harden)", lambda r: str(r.sdc_restricted)),
            ("SDC reduction", lambda r: _reduction(r.sdc_plain, r.sdc_restricted)),
            ("silent SDC (finite outputs) unprotected", lambda r: str(r.silent_plain)),
            ("silent SDC (finite outputs) restricted", lambda r: str(r.silent_restricted)),
            ("silent SDC reduction", lambda r: _reduction(r.silent_plain, r.silent_restricted)),
            ("SDCs flagged by detection", lambda r: str(r.sdc_flagged)),
            ("faulty runs flagged", lambda r: str(r.faulty_flagged)),
        ]
        lines = [f"fault campaign: seed {self.seed}, bits {self.bits}, {self.inputs} correctly classified "
                 "inputs per injection; k/n = rate [95% Wilson interval]", head,
                 "|---|" + "---|" * len(self.kinds)]
        lines += ["| " + name + " | " + " | ".join(f(r) for r in self.kinds) + " |" for name, f in rows]
        lines.append("")
        lines.append(f"false flags, fault-free campaign runs: {self.false_flags_golden}")
        if self.false_flags_clean is not None:
            lines.append(f"false flags, held-out clean data:      {self.false_flags_clean}")
        if self.accuracy_plain is not None and self.accuracy_restricted is not None:
            lines.append(f"clean accuracy plain:                  {self.accuracy_plain}")
            lines.append(f"clean accuracy restricted:             {self.accuracy_restricted}")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ the runner


def _reduction(plain: Rate, restricted: Rate) -> str:
    """The ratio, or with no SDC left a lower bound from the restricted rate's upper Wilson limit."""
    if restricted.k or not plain.k:
        return f"{KindResult._ratio(plain, restricted):.1f}x"
    return f"none left (>= {plain.value / wilson(0, restricted.n)[1]:.0f}x at 95%)"


def _activation_profile(profile: Any) -> ActivationProfile:
    acts = getattr(profile, "activations", profile)
    if not isinstance(acts, ActivationProfile):
        raise TypeError("the campaign needs an ActivationProfile or a GuardProfile with activation ranges")
    return acts


class _Runner:
    """Runs a graph on the campaign inputs, batched when the batch axis is dynamic."""

    def __init__(self, model: onnx.ModelProto, input_name: str, logits: str, monitor: str | None):
        self.sess = _session(model)
        self.input_name = input_name
        self.logits = logits
        self.monitor = monitor
        self.fixed = fixed_batch(model)
        self.batched = self.fixed is None

    def run(self, x: np.ndarray, extra_outputs: Sequence[str] = (), feeds: dict | None = None,
            per_sample: Any = None) -> list[np.ndarray]:
        names = [self.logits] + ([self.monitor] if self.monitor else []) + list(extra_outputs)
        if self.batched:
            feed = {self.input_name: x, **(feeds or {})}
            if per_sample is not None:
                feed.update(per_sample(None))
            return self.sess.run(names, feed)
        if self.fixed != 1:
            raise ActivationError(f"the campaign needs a dynamic batch axis or batch 1; the model fixes the "
                                  f"batch to {self.fixed}")
        parts = []
        for s in range(len(x)):
            feed = {self.input_name: x[s:s + 1], **(feeds or {})}
            if per_sample is not None:
                feed.update(per_sample(s))
            parts.append(self.sess.run(names, feed))
        return [np.concatenate([p[i] for p in parts]) for i in range(len(names))]


def _flags(acts: ActivationProfile, logits: np.ndarray, monitor_out: np.ndarray | None) -> np.ndarray:
    bad = ~np.all(np.isfinite(logits.reshape(len(logits), -1)), axis=1)
    if monitor_out is not None and acts.monitor is not None:
        bad |= acts.monitor.check(monitor_out)[0]
    return bad


def _pre_activation_sites(model: onnx.ModelProto, acts: ActivationProfile) -> list[str]:
    producer = {o: node for node in model.graph.node for o in node.output}
    graph_inputs = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    sites = []
    for name in acts.tensors:
        node = producer[name]
        src = node.input[0]
        if src not in graph_inputs and src not in outputs and src not in sites:
            sites.append(src)
    return sites


def _weight_sites(model: onnx.ModelProto) -> list[str]:
    return [i.name for i in model.graph.initializer
            if i.data_type == TensorProto.FLOAT and int(np.prod(i.dims)) >= 2]


def run_campaign(model: ModelLike, profile: Any, data: np.ndarray, labels: np.ndarray | None = None, *,
                 injections: int = 500, inputs: int = 64, kinds: Sequence[str] = ("activation", "weight"),
                 bits: str | Sequence[int] = "all", sites: Sequence[str] | None = None, seed: int = 0,
                 clean_data: np.ndarray | None = None, clean_labels: np.ndarray | None = None,
                 input_name: str | None = None, output_name: str | None = None,
                 placement: str = "every", mode: str = "clamp", per_channel: bool = False,
                 scrub_nan: bool = False) -> CampaignResult:
    """Run a seeded fault campaign; see the module docstring for what is measured.

    ``data``/``labels``: inputs to choose the M campaign inputs from (the first ``inputs`` correctly
    classified ones; all of them are eligible when ``labels`` is None). ``sites``: activation tensors to
    inject into (default: the inputs of the profiled activations, i.e. the pre-activation values Ranger
    protects). ``clean_data``/``clean_labels``: held-out data for false flags and clean accuracy.
    ``placement``, ``mode``, ``per_channel``, ``scrub_nan``: the restriction, as in :func:`pyguard.harden`.
    """
    acts = _activation_profile(profile)
    proto = load_model(model)
    in_name = _input_name(proto, input_name)
    logits = output_name or proto.graph.output[0].name
    bit_list = bit_range(bits)
    rng = np.random.default_rng(seed)
    monitored = _with_monitor(proto, acts)
    hardened = harden(proto, acts, placement=placement, mode=mode, per_channel=per_channel,
                      scrub_nan=scrub_nan)
    plain = _Runner(monitored, in_name, logits, acts.monitor.output_name if acts.monitor else None)
    x = _campaign_inputs(plain, data, labels, inputs)
    golden_logits, *rest = plain.run(x)
    golden = top1(golden_logits)
    golden_flags = _flags(acts, golden_logits, rest[0] if rest else None)
    kinds_out = []
    for kind in kinds:
        if kind == "activation":
            site_list = list(sites) if sites is not None else _pre_activation_sites(proto, acts)
            kinds_out.append(_activation_campaign(monitored, hardened, acts, site_list, x, in_name, logits,
                                                  injections, bit_list, rng))
        elif kind == "weight":
            kinds_out.append(_weight_campaign(monitored, hardened, acts, x, in_name, logits, injections,
                                              bit_list, rng))
        else:
            raise ValueError(f"unknown fault kind {kind!r}; choose 'activation' or 'weight'")
    result = CampaignResult(kinds=kinds_out, false_flags_golden=Rate(int(golden_flags.sum()), len(x)),
                            false_flags_clean=None, accuracy_plain=None, accuracy_restricted=None,
                            inputs=len(x), seed=seed, bits=bits if isinstance(bits, str) else str(list(bits)))
    if clean_data is not None:
        restricted = _Runner(hardened, in_name, logits, None)
        _clean_metrics(result, plain, restricted, acts, clean_data, clean_labels)
    result.details["golden_top1"] = golden
    return result


def _with_monitor(model: onnx.ModelProto, acts: ActivationProfile) -> onnx.ModelProto:
    if acts.monitor is None:
        return model
    return instrument(model, acts)


def _campaign_inputs(runner: _Runner, data: np.ndarray, labels: np.ndarray | None, m: int) -> np.ndarray:
    if labels is None:
        return np.ascontiguousarray(data[:m])
    pred = top1(runner.run(np.ascontiguousarray(data))[0])
    correct = np.flatnonzero(pred == np.asarray(labels))
    if len(correct) == 0:
        raise ValueError("no input is classified correctly by the model; check the labels")
    return np.ascontiguousarray(data[correct[:m]])


def _activation_campaign(monitored, hardened, acts, site_list, x, in_name, logits, injections, bits, rng
                         ) -> KindResult:
    if not site_list:
        raise ActivationError("no activation fault sites")
    runners = {}
    sizes = []
    golden_values = {}
    site_ranks = _site_ranks(monitored, site_list, x[:1], in_name)
    for site in site_list:
        no_fault = _no_fault(site_ranks[site])
        pair = (_Runner(inject_activation_fault(monitored, site), in_name, logits, plain_monitor(acts)),
                _Runner(inject_activation_fault(hardened, site), in_name, logits, None))
        runners[site] = pair
        per_graph = []
        for runner in pair:
            outs = runner.run(x, [site], per_sample=no_fault)
            per_graph.append((top1(outs[0]), outs[-1]))
        golden_values[site] = per_graph
        sizes.append(per_graph[0][1][0].size)
    weights = np.asarray(sizes, np.float64) / np.sum(sizes)
    picks = [(int(rng.choice(len(site_list), p=weights)), int(rng.integers(0, 2**62)), int(rng.choice(bits)))
             for _ in range(injections)]
    tally = _Tally()
    by_site = defaultdict(list)
    for site_idx, raw_element, bit in picks:
        by_site[site_idx].append((raw_element % sizes[site_idx], bit))
    for site_idx, faults in by_site.items():
        site = site_list[site_idx]
        for element, bit in faults:
            results = []
            for runner, (golden, values) in zip(runners[site], golden_values[site]):
                shape = values.shape[1:]
                index = np.unravel_index(element, shape)
                flipped = flip_bit(values.reshape(len(values), -1)[:, element], bit)
                feeds = _fault_feeds(runner.batched, index, flipped)
                outs = runner.run(x, per_sample=feeds)
                results.append((golden, outs))
            tally.add(acts, results)
    return tally.result("activation", injections)


def plain_monitor(acts: ActivationProfile) -> str | None:
    return acts.monitor.output_name if acts.monitor else None


def _no_fault(rank: int):
    feeds = {FAULT_INDICES: np.zeros((0, rank), np.int64), FAULT_UPDATES: np.zeros((0,), np.float32)}
    return lambda _sample: feeds


def _site_ranks(model: onnx.ModelProto, sites: Sequence[str], x1: np.ndarray, in_name: str) -> dict[str, int]:
    sess = _session(_expose(model, sites))
    return {s: v.ndim for s, v in zip(sites, sess.run(list(sites), {in_name: x1}))}


def _fault_feeds(batched: bool, index: tuple, flipped: np.ndarray):
    def feeds(sample):
        if sample is None:  # the whole batch: one element per sample
            m = len(flipped)
            idx = np.column_stack([np.arange(m, dtype=np.int64)] + [np.full(m, i, np.int64) for i in index])
            return {FAULT_INDICES: idx, FAULT_UPDATES: flipped}
        idx = np.asarray([[0, *index]], np.int64)
        return {FAULT_INDICES: idx, FAULT_UPDATES: flipped[sample:sample + 1]}
    return feeds


def _weight_campaign(monitored, hardened, acts, x, in_name, logits, injections, bits, rng) -> KindResult:
    weights = {i.name: numpy_helper.to_array(i) for i in monitored.graph.initializer
               if i.name in set(_weight_sites(monitored))}
    hardened_names = {i.name for i in hardened.graph.initializer}
    names = [n for n in weights if n in hardened_names]
    if not names:
        raise ActivationError("the model has no float32 weights to inject into")
    sizes = np.asarray([weights[n].size for n in names], np.float64)
    picks = [(int(rng.choice(len(names), p=sizes / sizes.sum())), int(rng.integers(0, 2**62)),
              int(rng.choice(bits))) for _ in range(injections)]
    by_weight = defaultdict(list)
    for w_idx, raw_element, bit in picks:
        by_weight[w_idx].append((raw_element % weights[names[w_idx]].size, bit))
    tally = _Tally()
    for w_idx, faults in by_weight.items():
        name = names[w_idx]
        w = weights[name]
        pair = (_Runner(weight_as_input(monitored, name), in_name, logits, plain_monitor(acts)),
                _Runner(weight_as_input(hardened, name), in_name, logits, None))
        goldens = [top1(r.run(x, feeds={name: w})[0]) for r in pair]
        for element, bit in faults:
            faulty = w.copy().reshape(-1)
            faulty[element] = flip_bit(faulty[element:element + 1], bit)[0]
            faulty = faulty.reshape(w.shape)
            results = [(g, r.run(x, feeds={name: faulty})) for g, r in zip(goldens, pair)]
            tally.add(acts, results)
    return tally.result("weight", injections)


class _Tally:
    def __init__(self):
        self.trials = self.flagged = self.sdc_flagged = 0
        self.sdc = {"plain": 0, "restricted": 0}
        self.silent = {"plain": 0, "restricted": 0}

    def add(self, acts: ActivationProfile, results) -> None:
        for key, (golden_top1, outs) in zip(("plain", "restricted"), results):
            logits = outs[0]
            sdc = top1(logits) != golden_top1
            finite = np.all(np.isfinite(logits.reshape(len(logits), -1)), axis=1)
            self.sdc[key] += int(sdc.sum())
            self.silent[key] += int((sdc & finite).sum())
            if key == "plain":
                flags = _flags(acts, logits, outs[1] if acts.monitor is not None else None)
                self.trials += len(sdc)
                self.sdc_flagged += int((sdc & flags).sum())
                self.flagged += int(flags.sum())

    def result(self, kind: str, injections: int) -> KindResult:
        n = self.trials
        return KindResult(kind=kind, injections=injections, sdc_plain=Rate(self.sdc["plain"], n),
                          sdc_restricted=Rate(self.sdc["restricted"], n),
                          silent_plain=Rate(self.silent["plain"], n),
                          silent_restricted=Rate(self.silent["restricted"], n),
                          sdc_flagged=Rate(self.sdc_flagged, self.sdc["plain"]),
                          faulty_flagged=Rate(self.flagged, n))


def _clean_metrics(result: CampaignResult, plain: _Runner, hardened: _Runner, acts: ActivationProfile,
                   clean: np.ndarray, labels: np.ndarray | None) -> None:
    outs = plain.run(np.ascontiguousarray(clean))
    flags = _flags(acts, outs[0], outs[1] if acts.monitor is not None else None)
    result.false_flags_clean = Rate(int(flags.sum()), len(clean))
    if labels is not None:
        labels = np.asarray(labels)
        hard = hardened.run(np.ascontiguousarray(clean))[0]
        result.accuracy_plain = Rate(int((top1(outs[0]) == labels).sum()), len(labels))
        result.accuracy_restricted = Rate(int((top1(hard) == labels).sum()), len(labels))


# ------------------------------------------------------------------------------------------------------ CLI


def _load_npy(path: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ActivationError(f"cannot read {path!r} as a .npy array: {e}") from e


def load_activation_profile(path: str) -> ActivationProfile:
    """An ActivationProfile from a GuardProfile file with activation ranges, or an activation profile file."""
    import json

    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise ActivationError(f"cannot read profile {path!r}: {e}") from e
    if isinstance(doc, dict) and "activation_profile" in doc:
        return ActivationProfile.from_dict(doc["activation_profile"])
    if isinstance(doc, dict) and isinstance(doc.get("activations"), dict):
        return ActivationProfile.from_dict(doc["activations"])
    raise ActivationError(f"{path} has no activation ranges: calibrate with activations=True "
                          "(pyguard calibrate ... --activations)")


def add_cli_parser(subparsers) -> None:
    """Register ``pyguard faults``."""
    p = subparsers.add_parser(
        "faults", help="fault-injection campaign: SDC rate unprotected, restricted and detected",
        description="Inject single float32 bit flips into activations and weights of MODEL and print the SDC "
                    "rates without protection, with restriction (harden) and with detection.")
    p.add_argument("model", help="ONNX model")
    p.add_argument("--profile", required=True, help="profile with activation ranges (JSON)")
    p.add_argument("--data", required=True, help="inputs (.npy, first axis = samples)")
    p.add_argument("--labels", help="labels (.npy): only correctly classified inputs are used")
    p.add_argument("--clean", help="held-out clean inputs (.npy) for false flags and clean accuracy "
                                   "(default: --data)")
    p.add_argument("--clean-labels", help="labels of --clean (.npy; default: --labels when --clean is unset)")
    p.add_argument("--injections", type=int, default=500, help="injections per fault kind (default 500)")
    p.add_argument("--inputs", type=int, default=64, help="inputs per injection (default 64)")
    p.add_argument("--kinds", default="activation,weight", help="activation,weight (default both)")
    p.add_argument("--bits", default="all", choices=sorted(BIT_RANGES), help="bits to flip (default all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mode", default="clamp", choices=("clamp", "zero"),
                   help="restriction: saturate at the bound (clamp, Ranger; default) or replace out-of-range "
                        "values and NaN with 0 (zero, FT-ClipAct)")
    p.add_argument("--placement", default="every", choices=("every", "fused"),
                   help="restrict every profiled tensor (default) or only where the clamp fuses into a Conv")
    p.add_argument("--per-channel", action="store_true", help="use each channel's own range as well")
    p.add_argument("--scrub-nan", action="store_true", help="clamp mode: map NaN to 0 after each clamp")
    p.set_defaults(fn=cli_main)


def cli_main(args) -> int:
    profile = load_activation_profile(args.profile)
    data = _load_npy(args.data)
    labels = _load_npy(args.labels) if args.labels else None
    clean = _load_npy(args.clean) if args.clean else data
    clean_labels = _load_npy(args.clean_labels) if args.clean_labels else (labels if not args.clean else None)
    result = run_campaign(args.model, profile, data.astype(np.float32, copy=False), labels,
                          injections=args.injections, inputs=args.inputs,
                          kinds=[k.strip() for k in args.kinds.split(",") if k.strip()], bits=args.bits,
                          seed=args.seed, clean_data=clean.astype(np.float32, copy=False),
                          clean_labels=clean_labels, placement=args.placement, mode=args.mode,
                          per_channel=args.per_channel, scrub_nan=args.scrub_nan)
    print(result.table())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pyguard.faults")
    add_cli_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["faults", *(argv if argv is not None else __import__("sys").argv[1:])])
    return args.fn(args)


if __name__ == "__main__":
    raise SystemExit(main())
