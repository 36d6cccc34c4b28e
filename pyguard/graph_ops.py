"""Op-level builders: the guard's squeezers and checks as standard ONNX operators.

Each builder appends nodes to an ``onnx.GraphProto`` through a :class:`Builder` (which hands out unique
tensor/node names under a prefix and de-duplicates constants) and returns the name of its result tensor.
Everything is float32, works for opsets 13 and newer, for NCHW, NHWC and NHW layouts, and keeps the
batch, height and width dynamic (slices use negative ends, never sizes read from the shape).

Bit-exactness: the bit-depth builder emits exactly the NumPy float32 expression; the median builders only
select (Min/Max), so they return the exact element SciPy returns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: int64 "to the end" for Slice ends.
SLICE_END = np.iinfo(np.int64).max
#: Largest finite float32: |x| > FLT_MAX holds exactly for +-inf (and never for NaN).
FLT_MAX = float(np.finfo(np.float32).max)
#: (height axis, width axis, channel axis or None) per layout.
LAYOUT_AXES = {"NCHW": (2, 3, 1), "NHWC": (1, 2, 3), "NHW": (1, 2, None)}
MIN_OPSET = 13


class Builder:
    """Appends nodes and initializers to ``graph`` with names ``<prefix><hint>_<n>`` that are unique."""

    def __init__(self, graph: onnx.GraphProto, prefix: str = "pyguard/", opset: int = 17,
                 taken: set[str] | None = None) -> None:
        if opset < MIN_OPSET:
            raise ValueError(f"opset {opset} is too old for the guard builders (need >= {MIN_OPSET})")
        self.graph = graph
        self.prefix = prefix
        self.opset = opset
        self.taken = set(taken) if taken is not None else names_in_graph(graph)
        self._consts: dict[tuple, str] = {}
        self._count = 0

    def fresh(self, hint: str) -> str:
        while True:
            self._count += 1
            name = f"{self.prefix}{hint}_{self._count}"
            if name not in self.taken:
                self.taken.add(name)
                return name

    def node(self, op: str, inputs: Sequence[str], hint: str | None = None, n_out: int = 1, **attrs):
        """Add one node; returns its output name (or the list of names when ``n_out > 1``)."""
        hint = hint or op.lower()
        outputs = [self.fresh(hint) for _ in range(n_out)]
        self.graph.node.append(helper.make_node(op, list(inputs), outputs, name=self.fresh(f"{op}_node"),
                                                **attrs))
        return outputs[0] if n_out == 1 else outputs

    def const(self, value, dtype=np.float32, hint: str = "const") -> str:
        """An initializer holding ``value`` (shared between identical constants)."""
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            name = self.fresh(hint)
            self.graph.initializer.append(numpy_helper.from_array(arr, name))
            self._consts[key] = name
        return self._consts[key]

    def ints(self, values: Sequence[int]) -> str:
        return self.const(list(values), np.int64, "ints")


def names_in_graph(graph: onnx.GraphProto) -> set[str]:
    """Every tensor and node name used in ``graph`` and its subgraphs."""
    names: set[str] = set()
    for vi in (*graph.input, *graph.output, *graph.value_info):
        names.add(vi.name)
    for init in graph.initializer:
        names.add(init.name)
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
        names.add(node.name)
        for attr in node.attribute:
            for sub in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
                names |= names_in_graph(sub)
    names.discard("")
    return names


# ---- small helpers ------------------------------------------------------------------------------------

def reduce(b: Builder, op: str, x: str, axes: Sequence[int], keepdims: int = 0) -> str:
    """ReduceSum/Max/Min over ``axes``: axes are an input from opset 13 (Sum) / 18 (Max, Min) on."""
    axes_as_input = op == "ReduceSum" or b.opset >= 18
    if axes_as_input:
        return b.node(op, [x, b.ints(axes)], keepdims=keepdims)
    return b.node(op, [x], axes=list(axes), keepdims=keepdims)


def slice_axis(b: Builder, x: str, axis: int, start: int, end: int) -> str:
    """x[start:end] along ``axis``; ``end`` may be negative or SLICE_END, so sizes can stay dynamic."""
    return b.node("Slice", [x, b.ints([start]), b.ints([end]), b.ints([axis])], hint="slice")


def shift_window(b: Builder, x: str, axis: int, offset: int, extra: int) -> str:
    """x[offset : len - (extra - offset)] along ``axis``: the window tap ``offset`` of a padded axis."""
    tail = extra - offset
    return slice_axis(b, x, axis, offset, -tail if tail else SLICE_END)


def layout_axes(layout: str) -> tuple[int, int, int | None]:
    if layout not in LAYOUT_AXES:
        raise ValueError(f"unknown layout {layout!r}; expected one of {sorted(LAYOUT_AXES)}")
    return LAYOUT_AXES[layout]


def layout_rank(layout: str) -> int:
    return len(layout)


def channel_shape(layout: str, values) -> np.ndarray:
    """Per-channel values shaped to broadcast against a batch in ``layout`` (a scalar stays a scalar)."""
    arr = np.asarray(values, dtype=np.float32)
    if arr.ndim == 0:
        return arr
    if arr.ndim != 1:
        raise ValueError(f"per-channel values must be a scalar or 1-D, got shape {arr.shape}")
    if layout == "NCHW":
        return arr.reshape(-1, 1, 1)
    if layout == "NHWC":
        return arr
    if arr.size != 1:
        raise ValueError(f"layout NHW has one channel, got {arr.size} per-channel values")
    return arr.reshape(())


# ---- bit depth ----------------------------------------------------------------------------------------

def bit_depth(b: Builder, x: str, bits: int, lo: float = 0.0, hi: float = 1.0) -> str:
    """``rint((x - lo) / (hi - lo) * m) / m * (hi - lo) + lo`` with m = 2^bits - 1, in float32.

    Emitted as Sub, Div, Mul, Round, Div, Mul, Add in exactly NumPy's evaluation order; ONNX Round is
    half-to-even like ``np.rint``, so the result is bit-identical to the NumPy float32 expression.
    """
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 24:
        raise ValueError(f"bit_depth bits must be an integer in 1..24, got {bits!r}")
    lo32, hi32 = np.float32(lo), np.float32(hi)
    if not (np.isfinite(lo32) and np.isfinite(hi32) and lo32 < hi32):
        raise ValueError(f"bit_depth needs finite lo < hi, got ({lo}, {hi})")
    span = hi32 - lo32
    m = np.float32(2**bits - 1)
    t = b.node("Sub", [x, b.const(lo32)], hint="bd_sub")
    t = b.node("Div", [t, b.const(span)], hint="bd_unit")
    t = b.node("Mul", [t, b.const(m)], hint="bd_scaled")
    t = b.node("Round", [t], hint="bd_round")
    t = b.node("Div", [t, b.const(m)], hint="bd_levels")
    t = b.node("Mul", [t, b.const(span)], hint="bd_span")
    return b.node("Add", [t, b.const(lo32)], hint="bit_depth")


def bit_depth_numpy(x: np.ndarray, bits: int, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    """The NumPy float32 expression :func:`bit_depth` reproduces bit for bit."""
    lo32, hi32 = np.float32(lo), np.float32(hi)
    span, m = hi32 - lo32, np.float32(2**bits - 1)
    return np.rint((x - lo32) / span * m) / m * span + lo32


# ---- median -------------------------------------------------------------------------------------------

def pad_symmetric(b: Builder, x: str, axis: int, before: int, after: int, rank: int,
                  portable: bool = False) -> str:
    """Half-sample symmetric padding (SciPy ``reflect``: d c b a | a b c d | d c b a) along ``axis``.

    Widths up to 2 are supported for any axis length >= 1: width 1 is edge replication (ONNX Pad "edge");
    width 2 takes the sample next to the edge from the edge-padded tensor ``e`` (``e[2]`` is x[1], or x[0]
    when the axis has length 1, which is what SciPy's reflection gives too). ``portable`` builds the edge
    padding from Slice + Concat instead of Pad (for runtimes without Pad's "edge" mode).
    """
    if before == after == 0:
        return x
    if max(before, after) > 2:
        raise ValueError("symmetric padding wider than 2 is not supported")
    if portable:
        edges = ([slice_axis(b, x, axis, 0, 1)] if before else []) + [x] + \
            ([slice_axis(b, x, axis, -1, SLICE_END)] if after else [])
        e = b.node("Concat", edges, hint="pad_edge", axis=axis)
    else:
        pads = [0] * (2 * rank)
        pads[axis] = 1 if before else 0
        pads[rank + axis] = 1 if after else 0
        e = b.node("Pad", [x, b.ints(pads)], hint="pad_edge", mode="edge")
    parts = []
    if before == 2:
        parts.append(slice_axis(b, e, axis, 2, 3))
    parts.append(e)
    if after == 2:
        parts.append(slice_axis(b, e, axis, -3, -2))
    return e if len(parts) == 1 else b.node("Concat", parts, hint="pad_reflect", axis=axis)


INF = -1  # symbolic +inf wire (padding of a sorting network)


class MinMaxNet:
    """A symbolic compare-exchange network: wires hold value ids (or INF); nodes are emitted lazily.

    Nodes are ("in", tensor) leaves, ("slice", id, offset, extra) window taps (x[offset : len - extra +
    offset] along the tapped axis; extra None = the emit default), and ("min"|"max", a, b). Padding
    wires hold +inf, for which compare-exchanges are no-ops, and nothing is emitted for a value the
    requested output does not depend on, so a full sorting network prunes down to a selection network.
    """

    def __init__(self) -> None:
        self.nodes: list[tuple] = []
        self._index: dict[tuple, int] = {}

    def add(self, key: tuple) -> int:
        if key not in self._index:
            self._index[key] = len(self.nodes)
            self.nodes.append(key)
        return self._index[key]

    def leaf(self, tensor: str) -> int:
        return self.add(("in", tensor))

    def tap(self, value: int, offset: int, extra: int | None = None) -> int:
        return self.add(("slice", value, offset, extra))

    def ce(self, a: int, b: int) -> tuple[int, int]:
        """Compare-exchange: (min, max)."""
        if a == INF:
            return b, INF
        if b == INF:
            return a, INF
        lo_, hi_ = sorted((a, b))
        return self.add(("min", lo_, hi_)), self.add(("max", lo_, hi_))

    def max3(self, v: Sequence[int]) -> int:
        return self.ce(self.ce(v[0], v[1])[1], v[2])[1]

    def min3(self, v: Sequence[int]) -> int:
        return self.ce(self.ce(v[0], v[1])[0], v[2])[0]

    def med3(self, v: Sequence[int]) -> int:
        lo_, hi_ = self.ce(v[0], v[1])
        return self.ce(lo_, self.ce(hi_, v[2])[0])[1]

    def sort(self, wires: list[int]) -> list[int]:
        """Batcher's odd-even merge sort, on wires padded with INF to a power of two."""
        n = 1 << max(0, (len(wires) - 1).bit_length())
        w = list(wires) + [INF] * (n - len(wires))
        self._sort_range(w, 0, n)
        return w[: len(wires)]

    def merge_sorted(self, groups: list[list[int]]) -> list[int]:
        """Merge sorted groups (each padded to a common power-of-two length) by pairwise odd-even merges."""
        size = 1 << max(0, (max(len(g) for g in groups) - 1).bit_length())
        total = sum(len(g) for g in groups)
        runs = [list(g) + [INF] * (size - len(g)) for g in groups]
        while len(runs) & (len(runs) - 1):
            runs.append([INF] * size)
        while len(runs) > 1:
            merged = []
            for a, c in zip(runs[0::2], runs[1::2]):
                w = a + c
                self._merge(w, 0, len(w) - 1, 1)
                merged.append(w)
            runs = merged
        return runs[0][:total]

    def _sort_range(self, w: list[int], lo: int, n: int) -> None:
        if n > 1:
            half = n // 2
            self._sort_range(w, lo, half)
            self._sort_range(w, lo + half, half)
            self._merge(w, lo, lo + n - 1, 1)

    def _merge(self, w: list[int], lo: int, hi: int, r: int) -> None:
        """Odd-even merge of w[lo..hi] (inclusive, stride r) whose two halves are sorted."""
        step = 2 * r
        if step < hi - lo:
            self._merge(w, lo, hi, step)
            self._merge(w, lo + r, hi, step)
            for i in range(lo + r, hi - r, step):
                w[i], w[i + r] = self.ce(w[i], w[i + r])
        else:
            w[lo], w[lo + r] = self.ce(w[lo], w[lo + r])

    def emit(self, b: Builder, out: int, tap_axis: int, tap_extra: int) -> str:
        """Emit the nodes ``out`` depends on; returns its tensor name."""
        names: dict[int, str] = {}
        stack = [out]
        while stack:  # iterative post-order, the networks are deep
            v = stack[-1]
            if v in names:
                stack.pop()
                continue
            kind, *args = self.nodes[v]
            deps = [] if kind == "in" else ([args[0]] if kind == "slice" else args)
            missing = [d for d in deps if d not in names]
            if missing:
                stack.extend(missing)
                continue
            stack.pop()
            if kind == "in":
                names[v] = args[0]
            elif kind == "slice":
                extra = tap_extra if args[2] is None else args[2]
                names[v] = shift_window(b, names[args[0]], tap_axis, args[1], extra)
            else:
                names[v] = b.node("Min" if kind == "min" else "Max", [names[d] for d in deps], hint=kind)
        return names[out]

    def evaluate(self, out: int, leaves: dict[str, np.ndarray], tap_extra: int) -> np.ndarray:
        """Evaluate ``out`` with NumPy, taps slicing the last axis (for tests of the network itself)."""
        memo: dict[int, np.ndarray] = {}
        for v, (kind, *args) in enumerate(self.nodes[: out + 1]):
            if kind == "in":
                memo[v] = leaves[args[0]]
            elif kind == "slice":
                arr, offset = memo[args[0]], args[1]
                extra = tap_extra if args[2] is None else args[2]
                memo[v] = arr[..., offset: arr.shape[-1] - extra + offset]
            else:
                memo[v] = (np.minimum if kind == "min" else np.maximum)(memo[args[0]], memo[args[1]])
        return memo[out]


MEDIAN_SIZES = (2, 3, 5)


def median(b: Builder, x: str, size: int, layout: str = "NCHW", portable: bool = False) -> str:
    """Median over a ``size`` x ``size`` window per channel, equal to
    ``scipy.ndimage.median_filter(x, size=(1, k, k, 1) or (1, 1, k, k), mode="reflect")``.

    The window covers offsets [-size//2, size-1-size//2] (a 2x2 window: rows i-1..i, cols j-1..j) and the
    result is the element of ascending rank size*size//2 (the upper middle for 2x2). Built as: symmetric
    padding; a sorting network down each padded column (shared by all windows that contain it); the
    sorted column taps of each window merged by odd-even merges, pruned to the one rank needed.
    ``portable`` avoids Pad (see :func:`pad_symmetric`).
    """
    if size not in MEDIAN_SIZES or isinstance(size, bool):
        raise ValueError(f"median size must be one of {MEDIAN_SIZES}, got {size!r}")
    h_axis, w_axis, _ = layout_axes(layout)
    rank = layout_rank(layout)
    before, after = size // 2, size - 1 - size // 2
    p = pad_symmetric(b, x, h_axis, before, after, rank, portable)
    p = pad_symmetric(b, p, w_axis, before, after, rank, portable)
    extra = size - 1
    rows = [shift_window(b, p, h_axis, r, extra) for r in range(size)]
    net = MinMaxNet()
    out = median_network(net, [net.leaf(t) for t in rows])
    return net.emit(b, out, w_axis, extra)


def median_network(net: MinMaxNet, rows: list[int]) -> int:
    """The rank-k*k//2 element of a k x k window whose k row taps are ``rows`` (columns are tapped
    horizontally). Columns are sorted once; 3x3 then uses the classic identity median = med3(max of the
    column minima, med3 of the column medians, min of the column maxima); other sizes merge the sorted
    columns with odd-even merges, pruned to the one output (for 5x5, adjacent column pairs are merged
    once and shared by the windows that contain them)."""
    size = len(rows)
    columns = net.sort(rows)
    if size == 5:
        pairs = net.merge_sorted([[net.tap(v, 0, 1) for v in columns], [net.tap(v, 1, 1) for v in columns]])
        groups = [[net.tap(v, 0, 3) for v in pairs], [net.tap(v, 2, 3) for v in pairs],
                  [net.tap(v, 4, 4) for v in columns]]
        return net.merge_sorted(groups)[12]
    groups = [[net.tap(v, c) for v in columns] for c in range(size)]
    if size != 3:
        return net.merge_sorted(groups)[size * size // 2]
    lows, mids, highs = zip(*groups)
    return net.med3([net.max3(lows), net.med3(mids), net.min3(highs)])


def median_network_size(size: int) -> dict[str, int]:
    """Node counts of the median builder (for documentation and benchmarks)."""
    g = onnx.GraphProto()
    median(Builder(g, taken=set()), "x", size)
    counts: dict[str, int] = {}
    for n in g.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return counts


# ---- input checks and activation ranges ----------------------------------------------------------------

def count_per_sample(b: Builder, mask: str) -> str:
    """Number of true elements per sample (int32 [N]) of a bool tensor (rank >= 2, batch first).

    Two stages, for speed and exactness: a float32 sum along the last axis (vectorized in onnxruntime,
    where int32 sums are not; exact while that axis has fewer than 2^24 elements), then an int32 sum of
    those row counts."""
    rows = reduce(b, "ReduceSum", b.node("Cast", [mask], hint="as_float", to=TensorProto.FLOAT), [-1])
    rows = b.node("Flatten", [b.node("Cast", [rows], hint="as_int", to=TensorProto.INT32)], axis=1)
    return reduce(b, "ReduceSum", rows, [1])


def nan_mask(b: Builder, x: str, tensorrt_safe: bool = False) -> str:
    """NaN elements: IsNaN, or, TensorRT-safe (older TensorRT has neither IsNaN nor IsInf), the elements
    that are neither finite (|x| < inf) nor infinite (|x| > FLT_MAX): comparisons with NaN are false."""
    if not tensorrt_safe:
        return b.node("IsNaN", [x], hint="isnan")
    magnitude = b.node("Abs", [x], hint="abs")
    finite = b.node("Less", [magnitude, b.const(np.inf)], hint="finite")
    infinite = b.node("Greater", [magnitude, b.const(FLT_MAX)], hint="infinite")
    return b.node("Not", [b.node("Or", [finite, infinite])], hint="isnan_trt")


def inf_mask(b: Builder, x: str, tensorrt_safe: bool = False) -> str:
    """+-inf elements: IsInf, or |x| > FLT_MAX (exact for +-inf, false for NaN) when TensorRT-safe."""
    if tensorrt_safe:
        return b.node("Greater", [b.node("Abs", [x], hint="abs"), b.const(FLT_MAX)], hint="isinf_trt")
    return b.node("IsInf", [x], hint="isinf")


def out_of_range_mask(b: Builder, x: str, lo, hi) -> str:
    """x < lo or x > hi (NaN is in neither; bounds broadcast, e.g. per channel)."""
    below = b.node("Less", [x, b.const(lo)], hint="below")
    above = b.node("Greater", [x, b.const(hi)], hint="above")
    return b.node("Or", [below, above], hint="out_of_range")


def input_checks(b: Builder, x: str, lo, hi, tensorrt_safe: bool = False) -> dict[str, str]:
    """Per-sample int32 counts of NaN, +-inf and finite values outside [lo, hi] (the bounds are finite, so
    every infinity is outside them: subtracting the inf count leaves the finite ones)."""
    infs = count_per_sample(b, inf_mask(b, x, tensorrt_safe))
    outside = count_per_sample(b, out_of_range_mask(b, x, lo, hi))
    return {
        "nan_count": count_per_sample(b, nan_mask(b, x, tensorrt_safe)),
        "inf_count": infs,
        "out_of_range_count": b.node("Sub", [outside, infs], hint="finite_out_of_range"),
    }


def range_violations(b: Builder, x: str, lo, hi) -> tuple[str, str]:
    """Activation-range check: per sample, the count of elements outside [lo, hi] (int32 [N]) and the
    largest excess max(0, x - hi, lo - x) (float32 [N]). Bounds broadcast (shape them per channel)."""
    count = count_per_sample(b, out_of_range_mask(b, x, lo, hi))
    excess = b.node("Max", [b.node("Sub", [x, b.const(hi)]), b.node("Sub", [b.const(lo), x])], hint="excess")
    flat = b.node("Flatten", [excess], axis=1)
    worst = reduce(b, "ReduceMax", flat, [1])
    return count, b.node("Max", [worst, b.const(0.0)], hint="max_excess")


# ---- detector -----------------------------------------------------------------------------------------

def probabilities(b: Builder, y: str, logits: bool) -> str:
    """[N, K] probability vectors from a model output with the batch first (softmax if logits)."""
    flat = b.node("Flatten", [y], axis=1)
    return b.node("Softmax", [flat], hint="softmax", axis=1) if logits else flat


def l1_distance(b: Builder, p: str, q: str) -> str:
    """sum |p - q| per sample (float32 [N])."""
    diff = b.node("Abs", [b.node("Sub", [p, q])], hint="abs_diff")
    return reduce(b, "ReduceSum", diff, [1])


def stack_columns(b: Builder, vectors: Sequence[str]) -> str:
    """[N] vectors -> [N, len(vectors)]."""
    cols = [b.node("Unsqueeze", [v, b.ints([1])]) for v in vectors]
    return cols[0] if len(cols) == 1 else b.node("Concat", cols, axis=1)


def max_columns(b: Builder, matrix: str) -> str:
    return reduce(b, "ReduceMax", matrix, [1])


def single_op_model(build, layout: str = "NCHW", opset: int = 17, channels: int = 3) -> onnx.ModelProto:
    """A model with one float32 input "x" (batch, height and width dynamic) whose outputs y0, y1, ... are
    ``build(builder, "x")`` (a name or a list of names): for tests and benchmarks of the builders."""
    dims = {"N": "N", "C": channels, "H": "H", "W": "W"}
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [dims[a] for a in layout])
    graph = helper.make_graph([], "pyguard_op", [x], [])
    result = build(Builder(graph, opset=opset, taken={"x"}), "x")
    for i, name in enumerate([result] if isinstance(result, str) else list(result)):
        graph.node.append(helper.make_node("Identity", [name], [f"y{i}"]))
        graph.output.append(helper.make_empty_tensor_value_info(f"y{i}"))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model
