"""InferenceSession(guard_mode=...): the in-graph guard against native mode on the CPU provider, the mode
selection, IOBinding and OrtValue runs."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from graph_models import conv_classifier
from models import classifier, images

import pyguard
from pyguard import AdversarialInputError, ConfigError, InputError
from pyguard.profile import GuardProfile, InputSpec, model_sha256
from pyguard.session import choose_guard_mode

CPU = ["CPUExecutionProvider"]
HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu and a CUDA device")
SQUEEZERS = ("bit_depth:4", "median:2", "median:3")
NORM = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def session(model: bytes, profile, mode: str, providers=CPU, **kwargs) -> pyguard.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return pyguard.InferenceSession(model, so, providers=providers, profile=profile, guard_mode=mode,
                                    **kwargs)


def normalize(x: np.ndarray) -> np.ndarray:
    mean, std = (np.reshape(v, (1, 3, 1, 1)) for v in NORM)
    return ((x - mean) / std).astype(np.float32)


@pytest.fixture(scope="module")
def crops(photos) -> np.ndarray:
    """24x24 NCHW crops of a real photo in [0, 1]."""
    img = photos["astronaut"].astype(np.float32) / 255.0
    tiles = np.stack([img[i:i + 24, j:j + 24] for i in range(0, 240, 24) for j in range(0, 96, 24)])
    return np.ascontiguousarray(tiles.transpose(0, 3, 1, 2))


@pytest.fixture(scope="module", params=[False, True], ids=["pixels", "normalized"])
def calibrated(request, crops):
    """(model bytes, calibrated profile, held-out batch with one NaN sample and one out-of-range one)."""
    normalized = request.param
    model = conv_classifier().SerializeToString()
    x = normalize(crops) if normalized else crops
    profile = pyguard.calibrate(model, x[:20], squeezers=SQUEEZERS, fpr=0.3,
                                normalization=NORM if normalized else None, detector="squeeze")
    held_out = np.concatenate([x[20:], x[20:22]])
    held_out[-2, 0, 3, 4] = np.nan
    held_out[-1, 1, 5, 6] = 9.0
    return model, profile, held_out


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def assert_reports_agree(graph_report, native_report, squeezers=SQUEEZERS):
    assert np.array_equal(graph_report.flagged, native_report.flagged)
    assert graph_report.reasons == native_report.reasons
    np.testing.assert_allclose(graph_report.scores["squeeze"], native_report.scores["squeeze"],
                               rtol=1e-4, atol=2e-6)
    finite = np.isfinite(native_report.scores["squeeze"])  # NaN samples: +inf in both
    assert np.all(np.isinf(graph_report.scores["squeeze"][~finite]))
    for spec in squeezers:
        key = f"squeeze[{spec}]"
        np.testing.assert_allclose(graph_report.scores[key][finite], native_report.scores[key][finite],
                                   rtol=1e-4, atol=2e-6)
    for key in ("non_finite", "out_of_range"):
        assert np.array_equal(graph_report.scores[key], native_report.scores[key]), key
    assert graph_report.threshold == native_report.threshold


# ---- graph mode equals native mode --------------------------------------------------------------------

def test_graph_mode_equals_native_mode(calibrated):
    model, profile, x = calibrated
    graph, native = session(model, profile, "graph"), session(model, profile, "native")
    assert (graph.guard_mode, native.guard_mode) == ("graph", "native")
    got, graph_report = graph.run_with_report(None, {"image": x})
    want, native_report = native.run_with_report(None, {"image": x})
    assert len(got) == len(want) == 1 and same_bits(got[0], want[0])
    assert_reports_agree(graph_report, native_report)
    assert graph_report.flagged[-2:].all() and "non_finite" in graph_report.reasons[-2]
    assert "input_range" in graph_report.reasons[-1]
    assert 0 < graph_report.flagged[:-2].sum() < len(x) - 2  # both verdicts occur on clean crops
    assert graph.last_report is graph_report
    assert same_bits(graph.run(None, {"image": x})[0], want[0])


def test_graph_mode_hides_guard_outputs_and_honours_output_names(crops):
    x = images(6, size=16)
    model = classifier(outputs=("logits", "probs", "features"))
    profile = pyguard.calibrate(model, x, squeezers=["bit_depth:5", "median:2"], output_name="logits",
                                fpr=0.3, detector="squeeze")
    graph, native = session(model, profile, "graph"), session(model, profile, "native")
    plain = ort.InferenceSession(model, providers=CPU)
    names = [o.name for o in plain.get_outputs()]
    assert [o.name for o in graph.get_outputs()] == names == [o.name for o in native.get_outputs()]
    for wanted in (None, ["features"], ["probs", "logits"]):
        got, report = graph.run_with_report(wanted, {"image": x})
        ref = plain.run(wanted, {"image": x})
        assert len(got) == len(ref) and all(same_bits(a, b) for a, b in zip(got, ref))
        assert_reports_agree(report, native.run_with_report(wanted, {"image": x})[1], profile.squeezers)
    with pytest.raises(InputError, match="unknown output"):
        graph.run(["pyguard_scores"], {"image": x})
    with pytest.raises(InputError, match="missing input"):
        graph.run(None, {})


def test_graph_mode_reject_and_monitor(calibrated):
    model, profile, x = calibrated
    monitor = session(model, profile, "graph")
    assert monitor.run_with_report(None, {"image": x})[1].any_flagged
    reject = session(model, profile, "graph", action="reject")
    with pytest.raises(AdversarialInputError) as info:
        reject.run(None, {"image": x})
    assert np.array_equal(info.value.report.flagged, monitor.last_report.flagged)
    clean = x[:-2][~monitor.last_report.flagged[:-2]]
    out = reject.run(None, {"image": clean})
    assert same_bits(out[0], session(model, profile, "native").run(None, {"image": clean})[0])


def test_graph_mode_refuses_what_it_cannot_do(calibrated):
    model, profile, _ = calibrated
    with pytest.raises(ConfigError, match="guard_mode='native'"):
        session(model, profile, "graph", action="purify")
    with pytest.raises(ConfigError, match="guard_mode"):
        session(model, profile, "fast")


@pytest.mark.parametrize("spec", ["nl_means:11-3-4", "jpeg:75"])
def test_native_only_squeezers_raise_in_graph_mode(spec):
    model = conv_classifier().SerializeToString()
    image = InputSpec(name="image", layout="NCHW", dtype="float32", range=(0.0, 1.0))
    profile = GuardProfile(model_sha256=model_sha256(model), input=image,
                           output_name="out", output_kind="logits", squeezers=["bit_depth:5", spec],
                           threshold=0.05, fpr=0.05)
    with pytest.raises(ConfigError, match="no standard-operator form.*guard_mode='native'"):
        session(model, profile, "graph")
    assert choose_guard_mode(["CUDAExecutionProvider"], profile) == "native"  # auto falls back
    assert session(model, profile, "auto").guard_mode == "native"


# ---- mode selection -----------------------------------------------------------------------------------

def test_choose_guard_mode(calibrated):
    _, profile, _ = calibrated
    assert choose_guard_mode(CPU, profile) == "native"
    assert choose_guard_mode(None, profile) == "native" == choose_guard_mode([], profile)
    assert choose_guard_mode(["CUDAExecutionProvider", "CPUExecutionProvider"], profile) == "graph"
    trt = ("TensorrtExecutionProvider", {"trt_fp16_enable": False})
    assert choose_guard_mode([trt, "CPUExecutionProvider"], profile) == "graph"
    assert choose_guard_mode(["CPUExecutionProvider", "CUDAExecutionProvider"], profile) == "native"
    assert choose_guard_mode(["CUDAExecutionProvider"], None) == "native"
    assert choose_guard_mode(["CUDAExecutionProvider"], profile, "native") == "native"
    assert choose_guard_mode(CPU, profile, "graph") == "graph"
    assert choose_guard_mode(CPU, None, "graph") == "native"  # nothing to compile without a profile
    with pytest.raises(ConfigError, match="guard_mode must be one of"):
        choose_guard_mode(CPU, profile, "GPU")


def test_auto_is_native_on_cpu_and_graph_without_profile_is_native(calibrated):
    model, profile, x = calibrated
    assert session(model, profile, "auto").guard_mode == "native"
    assert pyguard.InferenceSession(model, profile=profile).guard_mode == "native"  # providers=None: CPU
    bare = session(model, None, "graph")
    assert bare.guard_mode == "native"
    assert not bare.run_with_report(None, {"image": x})[1].flagged[:-2].any()


# ---- IOBinding and OrtValues --------------------------------------------------------------------------

def test_iobinding_on_cpu_fills_the_report(calibrated):
    model, profile, x = calibrated
    graph = session(model, profile, "graph")
    want, report = graph.run_with_report(None, {"image": x})
    binding = graph.io_binding()
    binding.bind_ortvalue_input("image", ort.OrtValue.ortvalue_from_numpy(x))
    binding.bind_output("out")  # the guard outputs are bound to CPU by the session
    graph.run_with_iobinding(binding)
    outputs = binding.copy_outputs_to_cpu()
    assert same_bits(outputs[0], want[0])
    assert len(outputs) == 1 + len(graph._graph.extra)
    got = graph.last_report
    assert got is not report and np.array_equal(got.flagged, report.flagged) and got.reasons == report.reasons
    np.testing.assert_array_equal(got.scores["squeeze"], report.scores["squeeze"])
    binding.bind_ortvalue_input("image", ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(x[:3])))
    binding.clear_binding_outputs()  # onnxruntime reuses bound outputs: a new batch size needs new ones
    binding.bind_output("out")
    graph.run_with_iobinding(binding)
    assert same_bits(binding.copy_outputs_to_cpu()[0], want[0][:3]) and len(graph.last_report) == 3
    with pytest.raises(InputError, match="io_binding"):
        graph.run_with_iobinding(ort.InferenceSession(model, providers=CPU).io_binding())


def test_iobinding_with_guard_outputs_bound_first(calibrated):
    model, profile, x = calibrated
    graph = session(model, profile, "graph")
    want, report = graph.run_with_report(None, {"image": x})
    binding = graph.io_binding()
    binding.bind_cpu_input("image", x)
    binding.bind_output("pyguard_flags", "cpu")
    binding.bind_output("out", "cpu")
    graph.run_with_iobinding(binding)
    outputs = dict(zip(binding.output_names, binding.copy_outputs_to_cpu()))
    assert same_bits(outputs["out"], want[0]) and np.array_equal(outputs["pyguard_flags"], report.flagged)
    assert np.array_equal(graph.last_report.flagged, report.flagged)


def test_run_with_ort_values(calibrated):
    model, profile, x = calibrated
    graph = session(model, profile, "graph")
    want, report = graph.run_with_report(None, {"image": x})
    values = graph.run_with_ort_values(None, {"image": ort.OrtValue.ortvalue_from_numpy(x)})
    assert len(values) == 1 and same_bits(values[0].numpy(), want[0])
    assert np.array_equal(graph.last_report.flagged, report.flagged)
    got, got_report = graph.run_with_report(None, {"image": ort.OrtValue.ortvalue_from_numpy(x)})
    assert same_bits(got[0], want[0]) and np.array_equal(got_report.flagged, report.flagged)
    native = session(model, profile, "native")  # native mode: onnxruntime's own, unguarded
    assert same_bits(native.run_with_ort_values(["out"], {"image": ort.OrtValue.ortvalue_from_numpy(x)})[0]
                     .numpy(), want[0])


@needs_cuda
def test_cuda_graph_mode_agrees_with_native_cpu(calibrated):
    model, profile, x = calibrated
    gpu = session(model, profile, "auto", providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert gpu.guard_mode == "graph"
    got, report = gpu.run_with_report(None, {"image": x})
    want, native_report = session(model, profile, "native").run_with_report(None, {"image": x})
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-5)
    decisive = np.abs(native_report.scores["squeeze"] - profile.threshold) > 1e-3
    assert np.array_equal(report.flagged[decisive], native_report.flagged[decisive])
    binding = gpu.io_binding()
    binding.bind_ortvalue_input("image", ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
    binding.bind_output("out", "cuda")
    gpu.run_with_iobinding(binding)
    assert np.array_equal(gpu.last_report.flagged, report.flagged)


def test_graph_mode_checks_activations_like_native_mode(crops):
    model = conv_classifier().SerializeToString()
    profile = pyguard.calibrate(model, crops[:20], squeezers=["bit_depth:5"], fpr=0.3, activations=True,
                                activation_budget=None, detector="squeeze")
    assert profile.activations.monitor is not None
    x = np.concatenate([crops[20:], np.clip(crops[20:26] * 4.0 - 1.5, 0.0, 1.0)])  # harsh contrast
    graph, native = session(model, profile, "graph"), session(model, profile, "native")
    assert [o.name for o in graph.get_outputs()] == ["out"]
    got, graph_report = graph.run_with_report(None, {"image": x})
    want, native_report = native.run_with_report(None, {"image": x})
    assert same_bits(got[0], want[0])
    assert_reports_agree(graph_report, native_report, profile.squeezers)
    assert any("activation_range" in r for r in graph_report.reasons)
    key = "activation_range"
    np.testing.assert_array_equal(graph_report.scores[key], native_report.scores[key])


@pytest.mark.parametrize("kind", ["fixed_batch", "uint8"])
def test_graph_mode_fixed_batch_and_uint8_models(crops, kind):
    uint8 = kind == "uint8"
    onnx_model = conv_classifier(batch=4) if kind == "fixed_batch" else conv_classifier(uint8=True)
    model = onnx_model.SerializeToString()
    x = crops[:4] if not uint8 else np.rint(crops[:4] * 255).astype(np.uint8)
    image = InputSpec(name="image", layout="NCHW", dtype="uint8" if uint8 else "float32",
                      range=(0.0, 255.0) if uint8 else (0.0, 1.0))
    specs = ["bit_depth:4", "median:2"]
    draft = GuardProfile(model_sha256=model_sha256(model), input=image, output_name="out",
                         output_kind="logits", squeezers=specs, threshold=1.0, fpr=0.05)
    scores = session(model, draft, "native").run_with_report(None, {"image": x})[1].scores["squeeze"]
    draft.threshold = float(np.sort(scores)[1] + np.sort(scores)[2]) / 2  # two flagged, two not
    got, graph_report = session(model, draft, "graph").run_with_report(None, {"image": x})
    want, native_report = session(model, draft, "native").run_with_report(None, {"image": x})
    assert same_bits(got[0], want[0])
    assert_reports_agree(graph_report, native_report, specs)
    assert graph_report.flagged.sum() == 2
