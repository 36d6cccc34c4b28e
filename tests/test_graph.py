"""In-graph guard: op builders bit-exact against NumPy/SciPy, and the whole guard model run by onnxruntime."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import scipy.ndimage as ndi
from graph_models import conv_classifier
from onnx import TensorProto, helper, numpy_helper

from pyguard import graph, graph_ops
from pyguard.graph import build_guard_graph, compile_guard

LEVELS = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
          "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
ODD_SIZES = [(1, 1), (2, 3), (7, 5), (223, 225)]
HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu and a CUDA device")


def session(model: onnx.ModelProto, level: str = "all", provider: str = "CPUExecutionProvider"):
    so = ort.SessionOptions()
    so.graph_optimization_level = LEVELS[level]
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=[provider])


def run_op(build, x: np.ndarray, layout: str = "NCHW", level: str = "all", opset: int = 17,
           provider: str = "CPUExecutionProvider"):
    channels = x.shape[layout.index("C")] if "C" in layout else 1
    model = graph_ops.single_op_model(build, layout, opset=opset, channels=channels)
    outs = session(model, level, provider).run(None, {"x": x})
    return outs[0] if len(outs) == 1 else outs


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def to_layout(batch_nchw: np.ndarray, layout: str) -> np.ndarray:
    if layout == "NHWC":
        return np.ascontiguousarray(batch_nchw.transpose(0, 2, 3, 1))
    if layout == "NHW":
        return np.ascontiguousarray(batch_nchw[:, 0])
    return batch_nchw


def scipy_median(x: np.ndarray, k: int, layout: str) -> np.ndarray:
    size = {"NCHW": (1, 1, k, k), "NHWC": (1, k, k, 1), "NHW": (1, k, k)}[layout]
    return ndi.median_filter(x, size=size, mode="reflect")


@pytest.fixture(scope="module")
def photo_crops(photos) -> dict[str, np.ndarray]:
    """Float32 NCHW crops of real photos in [0, 1], odd sizes included."""
    img = photos["astronaut"].astype(np.float32) / 255.0
    coffee = photos["coffee"].astype(np.float32) / 255.0
    crops = {f"{h}x{w}": img[100:100 + h, 150:150 + w].transpose(2, 0, 1)[None] for h, w in ODD_SIZES}
    crops["batch2_31x47"] = np.stack([img[:31, :47], coffee[200:231, 300:347]]).transpose(0, 3, 1, 2)
    return {k: np.ascontiguousarray(v) for k, v in crops.items()}


# ---- bit depth ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("level", ["all", "none"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_bit_depth_bit_exact_on_photos(photo_crops, layout, level):
    for name, crop in photo_crops.items():
        x = to_layout(crop, layout)
        for bits in (1, 3, 5, 8):
            got = run_op(lambda b, t, bits=bits: graph_ops.bit_depth(b, t, bits), x, layout, level)
            assert same_bits(got, graph_ops.bit_depth_numpy(x, bits)), (name, bits)


@pytest.mark.parametrize("lo, hi", [(0.0, 1.0), (0.0, 255.0), (-1.0, 1.0), (-2.1179, 2.64)])
def test_bit_depth_ranges_ties_and_edges(lo, hi):
    rng = np.random.default_rng(1)
    m = 31
    ties = (np.arange(m, dtype=np.float32) + np.float32(0.5)) / np.float32(m)  # exact .5 steps in unit space
    edge = np.array([0.0, -0.0, 1.0, 1e-30, 0.99999994, -0.5, 1.5, np.inf, -np.inf, np.nan], np.float32)
    unit = np.concatenate([ties, edge, rng.random(3 * 7 * 11 - len(ties) - len(edge), dtype=np.float32)])
    x = (unit * np.float32(hi - lo) + np.float32(lo)).astype(np.float32).reshape(1, 3, 7, 11)
    got = run_op(lambda b, t: graph_ops.bit_depth(b, t, 5, lo, hi), x)
    ref = graph_ops.bit_depth_numpy(x, 5, lo, hi)
    assert np.array_equal(got, ref, equal_nan=True)
    finite = np.isfinite(ref)
    assert same_bits(got[finite], ref[finite])


def test_bit_depth_rejects_bad_parameters():
    b = graph_ops.Builder(onnx.GraphProto(), taken=set())
    for bits in (0, 25, 2.5, True):
        with pytest.raises(ValueError, match="bits"):
            graph_ops.bit_depth(b, "x", bits)
    with pytest.raises(ValueError, match="lo < hi"):
        graph_ops.bit_depth(b, "x", 5, 1.0, 1.0)


# ---- median -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", graph_ops.MEDIAN_SIZES)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC", "NHW"])
def test_median_bit_exact_with_scipy_on_photos(photo_crops, layout, k):
    for name, crop in photo_crops.items():
        x = to_layout(crop, layout)
        want = scipy_median(x, k, layout)
        got = run_op(lambda b, t: graph_ops.median(b, t, k, layout), x, layout)
        assert same_bits(got, want), name
        got = run_op(lambda b, t: graph_ops.median(b, t, k, layout, portable=True), x, layout)
        assert same_bits(got, want), name


@pytest.mark.parametrize("k", graph_ops.MEDIAN_SIZES)
def test_median_ties_and_random_values_unoptimized(k):
    rng = np.random.default_rng(k)
    for shape in [(2, 3, 9, 8), (1, 3, 1, 6), (1, 3, 5, 1), (1, 3, 3, 3)]:
        x = rng.integers(0, 4, shape).astype(np.float32)  # many ties
        got = run_op(lambda b, t: graph_ops.median(b, t, k), x, level="none")
        assert same_bits(got, scipy_median(x, k, "NCHW")), shape
    x = rng.normal(size=(1, 3, 17, 19)).astype(np.float32)
    x[0, 0, 3, 4], x[0, 1, 0, 0] = np.inf, -np.inf
    got = run_op(lambda b, t: graph_ops.median(b, t, k), x)
    assert same_bits(got, scipy_median(x, k, "NCHW"))


def test_selection_networks_zero_one_principle():
    """A compare-exchange network selects rank r for all inputs iff it does for all 0/1 inputs."""
    for k in (2, 3):
        net = graph_ops.MinMaxNet()
        out = graph_ops.median_network(net, [net.leaf(f"r{r}") for r in range(k)])
        bits = np.array(list(itertools.product([0, 1], repeat=k * k)), dtype=np.int8)  # [2^(k*k), k*k]
        windows = bits.reshape(-1, k, k)  # [case, row, col]
        leaves = {f"r{r}": windows[:, r, :] for r in range(k)}
        got = net.evaluate(out, leaves, k - 1)[:, 0]
        assert np.array_equal(got, np.sort(bits, axis=1)[:, k * k // 2])


def test_selection_network_5x5_on_random_windows_with_ties():
    net = graph_ops.MinMaxNet()
    out = graph_ops.median_network(net, [net.leaf(f"r{r}") for r in range(5)])
    windows = np.random.default_rng(6).integers(0, 6, (20000, 5, 5)).astype(np.int8)
    got = net.evaluate(out, {f"r{r}": windows[:, r, :] for r in range(5)}, 4)[:, 0]
    assert np.array_equal(got, np.sort(windows.reshape(-1, 25), axis=1)[:, 12])


def test_median_node_counts_are_pruned():
    counts = {k: graph_ops.median_network_size(k) for k in graph_ops.MEDIAN_SIZES}
    assert counts[2]["Min"] + counts[2]["Max"] == 5
    assert counts[3]["Min"] + counts[3]["Max"] == 18
    assert counts[5]["Min"] + counts[5]["Max"] <= 140


def test_median_rejects_bad_size_and_layout():
    b = graph_ops.Builder(onnx.GraphProto(), taken=set())
    for k in (1, 4, 7, True):
        with pytest.raises(ValueError, match="median size"):
            graph_ops.median(b, "x", k)
    with pytest.raises(ValueError, match="layout"):
        graph_ops.median(b, "x", 3, layout="CHW")


# ---- input checks and activation ranges ----------------------------------------------------------------

def poisoned_batch() -> np.ndarray:
    x = np.random.default_rng(3).random((3, 3, 13, 11), dtype=np.float32)
    x[0, 0, 0, 0] = np.nan
    x[0, 1, 2, 3] = np.inf
    x[1, 2, 5, 5] = -np.inf
    x[1, 0, 1:4, 2] = np.nan
    x[2, 0, 0, :3] = [-0.25, 1.5, 1.0]
    return x


@pytest.mark.parametrize("tensorrt_safe", [False, True])
def test_input_checks_count_per_sample(tensorrt_safe):
    x = poisoned_batch()
    checks = lambda b, t: list(graph_ops.input_checks(b, t, 0.0, 1.0, tensorrt_safe).values())  # noqa: E731
    nan, inf, oor = run_op(checks, x)
    flat = x.reshape(3, -1)
    assert np.array_equal(nan, np.isnan(flat).sum(1))
    assert np.array_equal(inf, np.isinf(flat).sum(1))
    with np.errstate(invalid="ignore"):
        assert np.array_equal(oor, (np.isfinite(flat) & ((flat < 0) | (flat > 1))).sum(1))
    assert nan.dtype == inf.dtype == oor.dtype == np.int32


@pytest.mark.parametrize("mask, reference", [("inf_mask", np.isinf), ("nan_mask", np.isnan)])
def test_tensorrt_safe_masks_equal_isinf_isnan_on_special_values(mask, reference):
    special = np.array([0, -0.0, 1, -1, np.inf, -np.inf, np.nan, -np.nan, 3.4028235e38, -3.4028235e38, 1e-45],
                       np.float32)
    x = np.resize(special, (2, 3, 4, 5)).astype(np.float32)
    x.view(np.uint32)[0, 0, 0, :2] = [0x7FC00001, 0xFF800001]  # NaN payloads, signalling NaN
    build = getattr(graph_ops, mask)
    a = run_op(lambda b, t: build(b, t, False), x)
    c = run_op(lambda b, t: build(b, t, True), x)
    assert np.array_equal(a, c) and np.array_equal(a, reference(x))


def test_range_violations_per_channel_bounds():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4, 3, 6, 5)).astype(np.float32)
    lo = np.array([-1.0, -0.5, 0.0], np.float32).reshape(3, 1, 1)
    hi = np.array([1.0, 2.0, 0.5], np.float32).reshape(3, 1, 1)
    count, excess = run_op(lambda b, t: list(graph_ops.range_violations(b, t, lo, hi)), x)
    assert np.array_equal(count, ((x < lo) | (x > hi)).reshape(4, -1).sum(1))
    ref = np.maximum(np.maximum(x - hi, lo - x).reshape(4, -1).max(1), 0)
    assert np.array_equal(excess, ref)


# ---- the guard model ----------------------------------------------------------------------------------

def reference_scores(model, x, squeezers, logits=True, norm=None, layout="NCHW"):
    """The detector in NumPy/SciPy: squeeze in pixel space, run the plain model, softmax, L1, max."""
    sess = session(model)
    name = model.graph.input[0].name
    mean, std = (0, 1) if norm is None else (graph_ops.channel_shape(layout, norm[0]),
                                             graph_ops.channel_shape(layout, norm[1]))
    pixel = x * std + mean
    probs = []
    for spec in [None, *squeezers]:
        if spec is None:
            feed = x
        else:
            kind, value = graph.parse_squeezer(spec)
            sq = graph_ops.bit_depth_numpy(pixel, value) if kind == "bit_depth" else \
                scipy_median(pixel, value, layout)
            feed = ((sq - mean) / std).astype(np.float32)
        y = sess.run(None, {name: feed})[0].astype(np.float64).reshape(len(x), -1)
        if logits:
            y = np.exp(y - y.max(1, keepdims=True))
            y /= y.sum(1, keepdims=True)
        probs.append(y)
    d = np.stack([np.abs(p - probs[0]).sum(1) for p in probs[1:]], axis=1)
    return np.concatenate([d, d.max(1, keepdims=True)], axis=1)


def guard_outputs(guard: onnx.ModelProto, feed: dict, provider: str = "CPUExecutionProvider") -> dict:
    sess = session(guard, provider=provider)
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))


@pytest.fixture(scope="module")
def photo_batch(photos) -> np.ndarray:
    crops = [photos[k][50:90, 60:97] for k in ("astronaut", "coffee", "chelsea", "sklearn0")]
    return np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2).astype(np.float32) / 255.0)


def check_guard_matches_reference(model, x, squeezers, *, logits=True, layout="NCHW", norm=None,
                                  provider="CPUExecutionProvider", **options):
    ref = reference_scores(model, x, squeezers, logits, norm, layout)
    threshold = float(np.median(ref[:, -1]))
    guard = build_guard_graph(model, squeezers=squeezers, threshold=threshold, layout=layout,
                              normalization=norm, **options)
    out = guard_outputs(guard, {"image": x}, provider)
    plain = session(model, provider=provider).run(None, {"image": x})
    for o, y in zip(model.graph.output, plain):
        assert same_bits(out[o.name], y), "model outputs changed"
    np.testing.assert_allclose(out[graph.SCORES], ref, rtol=1e-4, atol=2e-6)
    decisive = np.abs(ref[:, -1] - threshold) > 1e-4
    assert np.array_equal(out[graph.FLAGS][decisive], (ref[:, -1] > threshold)[decisive])
    assert out[graph.FLAGS].dtype == np.bool_ and out[graph.SCORES].dtype == np.float32
    return out


@pytest.mark.parametrize("squeezers", [["bit_depth:5", "median:2"], ["bit_depth:1"],
                                       ["median:3", "median:5"]])
def test_guard_matches_numpy_detector(photo_batch, squeezers):
    check_guard_matches_reference(conv_classifier(), photo_batch, squeezers)


def test_guard_nhwc_model(photo_batch):
    x = np.ascontiguousarray(photo_batch.transpose(0, 2, 3, 1))
    model = conv_classifier(layout="NHWC")
    check_guard_matches_reference(model, x, ["bit_depth:4", "median:2"], layout="NHWC")


def test_guard_grayscale_nhw_model(photo_batch):
    x = np.ascontiguousarray(photo_batch[:, 1])
    check_guard_matches_reference(conv_classifier(layout="NHW", channels=1), x, ["bit_depth:3", "median:3"],
                                  layout="NHW")


def test_guard_softmax_output_is_not_softmaxed_again(photo_batch):
    model = conv_classifier(softmax=True)
    guard = build_guard_graph(model, squeezers=["bit_depth:3"], threshold=0.0)
    assert graph.guard_metadata(guard)["logits"] is False
    check_guard_matches_reference(model, photo_batch, ["bit_depth:3", "median:2"], logits=False)


def test_guard_fixed_batch_model_uses_one_copy_per_squeezer(photo_batch):
    model = conv_classifier(batch=4, hw=(40, 37))
    check_guard_matches_reference(model, photo_batch, ["bit_depth:5", "median:2"])
    guard = build_guard_graph(model, squeezers=["bit_depth:5", "median:2"], threshold=0.1)
    assert graph.guard_metadata(guard)["batched"] is False
    with pytest.raises(ValueError, match="fixed batch"):
        build_guard_graph(model, squeezers=["bit_depth:5"], threshold=0.1, batched=True)


def test_squeezed_runs_inside_the_guard_are_bit_exact(photo_batch):
    """With optimizations on, each squeezed copy's model output equals the plain model's on the
    NumPy/SciPy-squeezed input bit for bit: nothing was fused or reordered into the squeezers."""
    model = conv_classifier()
    guard = build_guard_graph(model, squeezers=["bit_depth:5", "median:2", "median:3"], threshold=0.1,
                              batched=False)
    copies = [f"pyguard/squeezed{i}/out" for i in range(3)]
    guard.graph.output.extend([helper.make_empty_tensor_value_info(n) for n in copies])
    got = session(guard).run(copies, {"image": photo_batch})
    plain = session(model)
    inputs = [graph_ops.bit_depth_numpy(photo_batch, 5), scipy_median(photo_batch, 2, "NCHW"),
              scipy_median(photo_batch, 3, "NCHW")]
    for y, squeezed in zip(got, inputs):
        assert same_bits(y, plain.run(None, {"image": squeezed})[0])
    batched = build_guard_graph(model, squeezers=["bit_depth:5", "median:2", "median:3"], threshold=0.1)
    batched.graph.output.append(helper.make_empty_tensor_value_info("pyguard/squeezed/out"))
    (y,) = session(batched).run(["pyguard/squeezed/out"], {"image": photo_batch})
    assert same_bits(y, plain.run(None, {"image": np.concatenate(inputs)})[0])


def test_guard_dynamic_batch_runs_unbatched_on_request(photo_batch):
    check_guard_matches_reference(conv_classifier(), photo_batch, ["bit_depth:5", "median:2"], batched=False)


@pytest.mark.parametrize("opset", [13, 18, 21])
def test_guard_other_opsets(photo_batch, opset):
    model = conv_classifier(opset=opset)
    check_guard_matches_reference(model, photo_batch, ["bit_depth:5", "median:2", "median:3"])


def test_guard_normalized_input_squeezes_in_pixel_space(photo_batch):
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    x = ((photo_batch - np.reshape(mean, (3, 1, 1))) / np.reshape(std, (3, 1, 1))).astype(np.float32)
    out = check_guard_matches_reference(conv_classifier(), x, ["bit_depth:5", "median:2"], norm=(mean, std))
    assert not out[graph.OUT_OF_RANGE_COUNT].any()


def test_guard_batch_of_one_and_odd_image_sizes(photos):
    model = conv_classifier()
    for h, w in [(1, 1), (2, 3), (7, 5)]:
        x = np.ascontiguousarray(photos["chelsea"][:h, :w].transpose(2, 0, 1)[None].astype(np.float32) / 255)
        check_guard_matches_reference(model, x, ["bit_depth:5", "median:2", "median:5"])


def test_guard_input_checks_flag_and_score_nonfinite():
    x = poisoned_batch()
    guard = build_guard_graph(conv_classifier(), squeezers=["bit_depth:5", "median:2"], threshold=1e9)
    out = guard_outputs(guard, {"image": x})
    flat = x.reshape(3, -1)
    assert np.array_equal(out[graph.NAN_COUNT], np.isnan(flat).sum(1))
    assert np.array_equal(out[graph.INF_COUNT], np.isinf(flat).sum(1))
    assert np.array_equal(out[graph.OUT_OF_RANGE_COUNT], [0, 0, 2])
    assert np.array_equal(out[graph.FLAGS], [True, True, True])
    assert np.all(np.isinf(out[graph.SCORES][:2])) and np.all(np.isfinite(out[graph.SCORES][2]))
    safe = build_guard_graph(conv_classifier(), squeezers=["bit_depth:5", "median:2"], threshold=1e9,
                             tensorrt_safe=True)
    assert not {"IsInf", "IsNaN", "Pad"} & {n.op_type for n in safe.graph.node}
    trt = guard_outputs(safe, {"image": x})
    for key in (graph.NAN_COUNT, graph.INF_COUNT, graph.OUT_OF_RANGE_COUNT, graph.FLAGS, graph.SCORES):
        assert np.array_equal(trt[key], out[key])


def test_guard_without_input_checks_has_no_check_outputs(photo_batch):
    guard = build_guard_graph(conv_classifier(), squeezers=["median:2"], threshold=0.5, input_checks=False)
    names = {o.name for o in guard.graph.output}
    assert names == {"out", graph.SCORES, graph.FLAGS}


def test_guard_activation_bounds(photo_batch):
    model = conv_classifier()
    bounds = {"r1": (0.0, 0.8), "c2": (np.full(8, -0.5), np.linspace(0.5, 2.0, 8))}
    guard = build_guard_graph(model, squeezers=["bit_depth:5"], threshold=1e9, activation_bounds=bounds)
    out = guard_outputs(guard, {"image": photo_batch})
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend([helper.make_empty_tensor_value_info(n) for n in bounds])
    r1, c2 = session(probe).run(["r1", "c2"], {"image": photo_batch})
    n = len(photo_batch)
    for j, (t, (lo, hi)) in enumerate(zip([r1, c2], bounds.values())):
        lo = np.asarray(lo, np.float32).reshape(-1, 1, 1) if np.ndim(lo) else np.float32(lo)
        hi = np.asarray(hi, np.float32).reshape(-1, 1, 1) if np.ndim(hi) else np.float32(hi)
        assert np.array_equal(out[graph.ACTIVATION_COUNT][:, j], ((t < lo) | (t > hi)).reshape(n, -1).sum(1))
        excess = np.maximum(np.maximum(t - hi, lo - t).reshape(n, -1).max(1), 0)
        np.testing.assert_array_equal(out[graph.ACTIVATION_EXCESS][:, j], excess)
    assert np.array_equal(out[graph.FLAGS], out[graph.ACTIVATION_COUNT].sum(1) > 0)
    plain = session(model).run(None, {"image": photo_batch})[0]
    assert same_bits(out["out"], plain)


def two_input_model() -> onnx.ModelProto:
    """The conv classifier plus a per-sample bias input (dynamic batch) added to the logits."""
    base = conv_classifier()
    g = base.graph
    g.node[-1].output[0] = "logits"
    g.node.append(helper.make_node("Add", ["logits", "bias"], ["out"]))
    g.node.append(helper.make_node("ReduceMax", ["out"], ["top"], axes=[1], keepdims=0))
    g.input.append(helper.make_tensor_value_info("bias", TensorProto.FLOAT, ["N", 10]))
    g.output.append(helper.make_tensor_value_info("top", TensorProto.FLOAT, ["N"]))
    return base


def test_guard_two_inputs_two_outputs(photo_batch):
    model = two_input_model()
    bias = np.random.default_rng(5).normal(size=(len(photo_batch), 10)).astype(np.float32)
    feed = {"image": photo_batch, "bias": bias}
    guard = build_guard_graph(model, input_name="image", output_name="out",
                              squeezers=["bit_depth:5", "median:2"], threshold=0.1)
    out = guard_outputs(guard, feed)
    plain = session(model).run(None, feed)
    assert same_bits(out["out"], plain[0]) and same_bits(out["top"], plain[1])
    sess = session(model)
    p = [sess.run(["out"], {"image": f, "bias": bias})[0] for f in
         (photo_batch, graph_ops.bit_depth_numpy(photo_batch, 5), scipy_median(photo_batch, 2, "NCHW"))]
    p = [np.exp(v - v.max(1, keepdims=True)) for v in p]
    p = [v / v.sum(1, keepdims=True) for v in p]
    d = np.stack([np.abs(p[1] - p[0]).sum(1), np.abs(p[2] - p[0]).sum(1)], 1)
    np.testing.assert_allclose(out[graph.SCORES][:, :2], d, rtol=1e-4, atol=2e-6)


def if_model() -> onnx.ModelProto:
    """The conv classifier whose logits go through an If (branches read the outer-scope "logits")."""
    base = conv_classifier()
    g = base.graph
    g.node[-1].output[0] = "logits"
    then_g = helper.make_graph([helper.make_node("Identity", ["logits"], ["then_out"])], "then", [],
                               [helper.make_empty_tensor_value_info("then_out")])
    else_g = helper.make_graph([helper.make_node("Neg", ["logits"], ["else_out"])], "else", [],
                               [helper.make_empty_tensor_value_info("else_out")])
    g.initializer.append(numpy_helper.from_array(np.array(True), "use_then"))
    g.node.append(helper.make_node("If", ["use_then"], ["out"], then_branch=then_g, else_branch=else_g))
    onnx.checker.check_model(base)
    return base


def test_guard_model_with_subgraphs(photo_batch):
    check_guard_matches_reference(if_model(), photo_batch, ["bit_depth:5", "median:2"])


def test_guard_model_already_using_pyguard_names(photo_batch):
    model = conv_classifier()
    for node in model.graph.node:  # intermediate names the guard's own prefixes would pick first
        node.output[:] = [o if o == "out" else f"pyguard/squeezed/{o}" for o in node.output]
        node.input[:] = [i if i in ("image",) or not i.startswith(("c", "r", "p", "f")) else
                         f"pyguard/squeezed/{i}" for i in node.input]
    onnx.checker.check_model(model)
    check_guard_matches_reference(model, photo_batch, ["bit_depth:5", "median:2"])


def test_guard_runs_with_iobinding(photo_batch):
    """The device workflow: input bound as an OrtValue, outputs left to onnxruntime, copied back after."""
    guard = build_guard_graph(conv_classifier(), squeezers=["bit_depth:5", "median:2"], threshold=0.01)
    sess = session(guard)
    binding = sess.io_binding()
    binding.bind_ortvalue_input("image", ort.OrtValue.ortvalue_from_numpy(photo_batch))
    for o in sess.get_outputs():
        binding.bind_output(o.name)
    sess.run_with_iobinding(binding)
    got = dict(zip([o.name for o in sess.get_outputs()], binding.copy_outputs_to_cpu()))
    want = guard_outputs(guard, {"image": photo_batch})
    assert got.keys() == want.keys()
    for name in want:
        assert np.array_equal(got[name], want[name]), name


# ---- refusals -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["nl_means:11-3-4", "jpeg:75"])
def test_native_only_squeezers_are_refused(spec):
    with pytest.raises(ValueError, match="no standard-operator form; use guard_mode='native'"):
        build_guard_graph(conv_classifier(), squeezers=["bit_depth:5", spec], threshold=0.1)


@pytest.mark.parametrize("spec, match", [("median:4", "parameter must be in"), ("bit_depth:0", "1..24"),
                                         ("bit_depth:x", "integer"), ("blur:3", "unknown squeezer"),
                                         ("median", "like 'bit_depth:5'")])
def test_bad_squeezers_are_refused(spec, match):
    with pytest.raises(ValueError, match=match):
        build_guard_graph(conv_classifier(), squeezers=[spec], threshold=0.1)


def test_bad_arguments_are_refused():
    model = conv_classifier()
    cases = [
        (dict(squeezers=[]), "at least one squeezer"),
        (dict(input_name="nope"), "no input 'nope'"),
        (dict(output_name="nope"), "no output 'nope'"),
        (dict(layout="NHWC3"), "unknown layout"),
        (dict(layout="NHW"), "rank 4"),
        (dict(input_range=(1.0, 0.0)), "lo < hi"),
        (dict(normalization=([0.5] * 3, [0.0, 1.0, 1.0])), "positive"),
        (dict(activation_bounds={"nope": (0, 1)}), "unknown tensor"),
        (dict(activation_bounds={"r1": (2.0, 1.0)}), "lo <= hi"),
        (dict(activation_bounds={"r1": ([0.0] * 8, [1.0] * 7)}), "8 lower and 7 upper"),
        (dict(activation_bounds={"r1": ([[0.0]], 1.0)}), "scalars or 1-D"),
        (dict(output_kind="scores"), "output_kind"),
    ]
    for kwargs, match in cases:
        kwargs = {"squeezers": ["bit_depth:5"], "threshold": 0.1, **kwargs}
        with pytest.raises(ValueError, match=match):
            build_guard_graph(model, **kwargs)
    with pytest.raises(TypeError, match="ModelProto"):
        build_guard_graph(42, squeezers=["bit_depth:5"], threshold=0.1)


def test_old_opset_and_non_float_inputs_are_refused():
    with pytest.raises(ValueError, match="opset 12"):
        build_guard_graph(conv_classifier(opset=12), squeezers=["bit_depth:5"], threshold=0.1)
    model = conv_classifier()
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.FLOAT16
    with pytest.raises(ValueError, match="float32 or uint8"):
        build_guard_graph(model, squeezers=["bit_depth:5"], threshold=0.1)
    with pytest.raises(ValueError, match=r"needs input_range=\(0, 255\)"):
        build_guard_graph(conv_classifier(uint8=True), squeezers=["bit_depth:5"], threshold=0.1)


def test_model_is_not_modified_and_accepts_bytes_and_paths(tmp_path, photo_batch):
    model = conv_classifier()
    before = model.SerializeToString()
    from_proto = build_guard_graph(model, squeezers=["bit_depth:5"], threshold=0.1)
    assert model.SerializeToString() == before
    path = tmp_path / "m.onnx"
    path.write_bytes(before)
    for source in (before, path, str(path)):
        other = build_guard_graph(source, squeezers=["bit_depth:5"], threshold=0.1)
        assert other.SerializeToString() == from_proto.SerializeToString()


def test_guard_shares_weights_instead_of_copying_them():
    model = conv_classifier()
    guard = build_guard_graph(model, squeezers=["bit_depth:5", "median:2", "median:3"], threshold=0.1)
    def weights(m):
        return sorted(i.name for i in m.graph.initializer if numpy_helper.to_array(i).size > 64)

    assert weights(guard) == weights(model)


# ---- compile_guard ------------------------------------------------------------------------------------

def profile_like(**overrides):
    spec = SimpleNamespace(name="image", layout="NCHW", dtype="float32", range=(0.0, 1.0), mean=None,
                           std=None)
    fields = dict(input=spec, output_name="out", output_kind="logits", squeezers=["bit_depth:5", "median:2"],
                  threshold=0.05)
    fields.update(overrides)
    return SimpleNamespace(**fields)


def test_compile_guard_reads_the_profile(photo_batch):
    model = conv_classifier()
    guard = compile_guard(model, profile_like())
    meta = graph.guard_metadata(guard)
    assert meta["squeezers"] == ["bit_depth:5", "median:2"] and meta["threshold"] == 0.05 and meta["logits"]
    ref = reference_scores(model, photo_batch, ["bit_depth:5", "median:2"])
    out = guard_outputs(guard, {"image": photo_batch})
    np.testing.assert_allclose(out[graph.SCORES], ref, rtol=1e-4, atol=2e-6)
    with pytest.raises(ValueError, match="use guard_mode='native'"):
        compile_guard(model, profile_like(squeezers=["bit_depth:5", "nl_means:11-3-4"]))
    bounds = SimpleNamespace(bounds=lambda: {"r1": (0.0, 0.5), "r2": (0.0, 4.0)})
    with_ranges = compile_guard(model, profile_like(activations=bounds))
    assert graph.guard_metadata(with_ranges)["activation_tensors"] == ["r1", "r2"]
    out = guard_outputs(with_ranges, {"image": photo_batch})
    assert out[graph.ACTIVATION_COUNT].shape == (len(photo_batch), 2)


def real_profile(model: onnx.ModelProto, squeezers, threshold, *, normalization=None, kind="logits"):
    from pyguard.profile import GuardProfile, InputSpec, model_sha256

    mean, std = normalization if normalization else (None, None)
    spec = InputSpec(name="image", layout="NCHW", dtype="float32", range=(0.0, 1.0), mean=mean, std=std)
    return GuardProfile(model_sha256=model_sha256(model.SerializeToString()), input=spec, output_name="out",
                        output_kind=kind, squeezers=list(squeezers), threshold=threshold, fpr=0.05)


def test_compile_guard_with_a_saved_profile(tmp_path, photo_batch):
    from pyguard import ProfileError

    model = conv_classifier()
    path = tmp_path / "m.guard.json"
    real_profile(model, ["bit_depth:5", "median:2"], 0.05).save(path)
    guard = compile_guard(model.SerializeToString(), path)
    out = guard_outputs(guard, {"image": photo_batch})
    ref = reference_scores(model, photo_batch, ["bit_depth:5", "median:2"])
    np.testing.assert_allclose(out[graph.SCORES], ref, rtol=1e-4, atol=2e-6)
    with pytest.raises(ProfileError, match="calibrated for model"):
        compile_guard(conv_classifier(seed=1).SerializeToString(), path)


def native_session_or_skip(model, profile):
    import pyguard
    from pyguard import ops

    if not hasattr(ops, "sample_checks"):
        pytest.skip("pyguard.ops.sample_checks (native input checks) is not built in this tree")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return pyguard.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"],
                                    profile=profile)


@pytest.mark.parametrize("normalized", [False, True])
def test_graph_mode_equals_native_mode(photo_batch, normalized):
    """Same profile, same inputs: identical model outputs and flags, scores within float tolerance."""
    model = conv_classifier()
    norm = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]) if normalized else None
    x = photo_batch if norm is None else \
        ((photo_batch - np.reshape(norm[0], (3, 1, 1))) / np.reshape(norm[1], (3, 1, 1))).astype(np.float32)
    squeezers = ["bit_depth:5", "median:2", "median:3"]
    ref = reference_scores(model, x, squeezers, norm=norm)
    profile = real_profile(model, squeezers, float(np.median(ref[:, -1])), normalization=norm)
    x = np.concatenate([x, x[:2]])
    x[-2, 0, 3, 4] = np.nan  # a non-finite sample and an out-of-range one
    x[-1, 1, 5, 6] = 7.5
    native = native_session_or_skip(model, profile)
    outputs, report = native.run_with_report(None, {"image": x})
    out = guard_outputs(compile_guard(model, profile), {"image": x})
    assert same_bits(out["out"], outputs[0])
    np.testing.assert_allclose(out[graph.SCORES][:, -1], report.scores["squeeze"], rtol=1e-4, atol=2e-6)
    finite = np.isfinite(report.scores["squeeze"])  # native leaves NaN per squeezer there; graph: +inf
    assert not finite[-2] and np.all(np.isinf(out[graph.SCORES][-2]))
    for j, spec in enumerate(squeezers):
        np.testing.assert_allclose(out[graph.SCORES][finite, j], report.scores[f"squeeze[{spec}]"][finite],
                                   rtol=1e-4, atol=2e-6)
    assert np.array_equal(out[graph.FLAGS], report.flagged)
    assert np.array_equal(out[graph.NAN_COUNT] + out[graph.INF_COUNT], report.scores["non_finite"])
    assert np.array_equal(out[graph.OUT_OF_RANGE_COUNT], report.scores["out_of_range"])


def test_uint8_input_squeezed_like_the_native_uint8_kernels(photo_batch):
    x = np.rint(photo_batch * 255).astype(np.uint8)
    x[0, 0, :16, :16] = np.arange(256, dtype=np.uint8).reshape(16, 16)  # every value
    model = conv_classifier(uint8=True)
    guard = build_guard_graph(model, squeezers=["bit_depth:3", "median:2", "median:3"], threshold=0.1,
                              input_range=(0, 255), batched=False)
    copies = [f"pyguard/squeezed{i}/out" for i in range(3)]
    guard.graph.output.extend([helper.make_empty_tensor_value_info(n) for n in copies])
    got = session(guard).run(["out", *copies], {"image": x})
    plain = session(model)
    assert same_bits(got[0], plain.run(None, {"image": x})[0])
    u = x.astype(np.float32) / np.float32(255)
    inputs = [np.rint(graph_ops.bit_depth_numpy(u, 3) * np.float32(255)).astype(np.uint8),
              scipy_median(x, 2, "NCHW"), scipy_median(x, 3, "NCHW")]
    for y, squeezed in zip(got[1:], inputs):
        assert same_bits(y, plain.run(None, {"image": squeezed})[0])


def test_uint8_graph_mode_equals_native_mode(photo_batch):
    model = conv_classifier(uint8=True)
    x = np.rint(photo_batch * 255).astype(np.uint8)
    from pyguard.profile import GuardProfile, InputSpec, model_sha256

    spec = InputSpec(name="image", layout="NCHW", dtype="uint8", range=(0.0, 255.0))
    profile = GuardProfile(model_sha256=model_sha256(model.SerializeToString()), input=spec,
                           output_name="out", output_kind="logits", squeezers=["bit_depth:4", "median:2"],
                           threshold=0.01, fpr=0.05)
    outputs, report = native_session_or_skip(model, profile).run_with_report(None, {"image": x})
    out = guard_outputs(compile_guard(model, profile), {"image": x})
    assert same_bits(out["out"], outputs[0])
    np.testing.assert_allclose(out[graph.SCORES][:, -1], report.scores["squeeze"], rtol=1e-4, atol=2e-6)
    decisive = np.abs(report.scores["squeeze"] - 0.01) > 1e-4
    assert np.array_equal(out[graph.FLAGS][decisive], report.flagged[decisive])


def test_compile_guard_of_a_calibrated_profile_agrees_with_native_mode(photos):
    import pyguard

    img = photos["astronaut"].astype(np.float32) / 255.0
    crops = np.stack([img[i:i + 24, j:j + 24] for i in range(0, 240, 24) for j in range(0, 96, 24)])
    x = np.ascontiguousarray(crops.transpose(0, 3, 1, 2))
    model = conv_classifier().SerializeToString()
    native_session_or_skip(onnx.load_from_string(model), None)
    profile = pyguard.calibrate(model, x[:30], squeezers=("bit_depth:4", "median:2"), fpr=0.2,
                                detector="squeeze")
    held_out = x[30:]
    _, report = pyguard.InferenceSession(model, providers=["CPUExecutionProvider"], profile=profile) \
        .run_with_report(None, {"image": held_out})
    out = guard_outputs(compile_guard(model, profile), {"image": held_out})
    np.testing.assert_allclose(out[graph.SCORES][:, -1], report.scores["squeeze"], rtol=1e-4, atol=2e-6)
    decisive = np.abs(report.scores["squeeze"] - profile.threshold) > 1e-4
    assert decisive.sum() >= len(held_out) - 1
    assert np.array_equal(out[graph.FLAGS][decisive], report.flagged[decisive])
    fused = pyguard.calibrate(model, x[:30], squeezers=("bit_depth:4", "median:2"), fpr=0.2)  # the default
    with pytest.warns(UserWarning, match="fused detector has no standard-operator form"):
        compile_guard(model, fused)


# ---- native kernels (once merged) and CUDA ------------------------------------------------------------

def native_op(name: str):
    from pyguard import ops

    if not hasattr(ops, name):
        pytest.skip(f"pyguard.ops.{name} is not built in this tree")
    return getattr(ops, name)


@pytest.mark.parametrize("lo, hi", [(0.0, 1.0), (0.0, 255.0), (-1.0, 1.0)])
def test_bit_depth_equals_native_kernel(photo_crops, isa, lo, hi):
    native = native_op("bit_depth")
    for crop in photo_crops.values():
        x = (crop * np.float32(hi - lo) + np.float32(lo)).astype(np.float32)
        for bits in (1, 5, 8):
            got = run_op(lambda b, t, bits=bits: graph_ops.bit_depth(b, t, bits, lo, hi), x)
            assert same_bits(got, native(x, bits, lo=lo, hi=hi, isa=isa))


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("k", graph_ops.MEDIAN_SIZES)
def test_median_equals_native_kernel(photo_crops, isa, layout, k):
    native = native_op("median_filter")
    for crop in photo_crops.values():
        x = to_layout(crop, layout)
        got = run_op(lambda b, t: graph_ops.median(b, t, k, layout), x, layout)
        assert same_bits(got, native(x, k, layout=layout, isa=isa))


@needs_cuda
@pytest.mark.parametrize("k", graph_ops.MEDIAN_SIZES)
def test_cuda_squeezers_bit_exact(photo_crops, k):
    for crop in photo_crops.values():
        got = run_op(lambda b, t: graph_ops.median(b, t, k), crop, provider="CUDAExecutionProvider")
        assert same_bits(got, scipy_median(crop, k, "NCHW"))
        got = run_op(lambda b, t: graph_ops.bit_depth(b, t, 5), crop, provider="CUDAExecutionProvider")
        assert same_bits(got, graph_ops.bit_depth_numpy(crop, 5))


@needs_cuda
def test_cuda_guard_matches_cpu(photo_batch):
    guard = build_guard_graph(conv_classifier(), squeezers=["bit_depth:5", "median:2"], threshold=0.01)
    cpu = guard_outputs(guard, {"image": photo_batch})
    gpu = guard_outputs(guard, {"image": photo_batch}, provider="CUDAExecutionProvider")
    np.testing.assert_allclose(gpu[graph.SCORES], cpu[graph.SCORES], rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(gpu["out"], cpu["out"], rtol=1e-4, atol=1e-5)
