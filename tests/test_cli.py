"""The pyguard command line: calibrate, check, bench, kernels, demo, --help everywhere."""

from __future__ import annotations

import json

import models
import numpy as np
import pytest

import pyguard
from pyguard.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "model.onnx").write_bytes(models.classifier(outputs=("logits", "probs")))
    np.save(tmp / "clean.npy", models.images(200, seed=3))
    return tmp


@pytest.mark.parametrize("command", [[], ["demo"], ["calibrate"], ["check"], ["bench"], ["kernels"]])
def test_help_everywhere(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_calibrate_then_check(files, capsys):
    profile_path = files / "model.guard.json"
    code = main(["calibrate", str(files / "model.onnx"), "--data", str(files / "clean.npy"),
                 "--squeezers", "bit_depth:4,median:2", "--fpr", "0.05", "-o", str(profile_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "calibrated on 200 samples" in out and str(profile_path) in out
    profile = pyguard.GuardProfile.load(profile_path)
    assert profile.squeezers == ["bit_depth:4", "median:2"] and profile.fpr == 0.05

    # Clean samples under the threshold: nothing flagged, exit code 0.
    sess = pyguard.InferenceSession(str(files / "model.onnx"), profile=profile)
    clean = np.load(files / "clean.npy")
    _, report = sess.run_with_report(None, {"image": clean})
    np.save(files / "passing.npy", clean[~report.flagged][:10])
    assert main(["check", str(files / "model.onnx"), "--profile", str(profile_path),
                 "--data", str(files / "passing.npy")]) == 0
    out = capsys.readouterr().out
    assert out.count(": ok") == 10 and "0 of 10 samples flagged" in out

    # A NaN sample and a flagged one: exit code 1, verdict per sample.
    bad = clean[:4].copy()
    bad[1, 0, 0, 0] = np.nan
    np.save(files / "bad.npy", bad)
    assert main(["check", str(files / "model.onnx"), "--profile", str(profile_path),
                 "--data", str(files / "bad.npy"), "--batch-size", "3"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("sample 1: FLAGGED") and "non_finite" in lines[1]
    assert lines[3].startswith("sample 3:")  # numbering continues across batches


def test_calibrate_with_normalization_and_range(files, capsys):
    out_path = files / "norm.guard.json"
    clean = np.load(files / "clean.npy")
    np.save(files / "normalized.npy", ((clean - 0.5) / 0.25).astype(np.float32))
    assert main(["calibrate", str(files / "model.onnx"), "--data", str(files / "normalized.npy"),
                 "--mean", "0.5", "--std", "0.25", "--range", "0", "1", "-o", str(out_path)]) == 0
    saved = json.loads(out_path.read_text())
    assert saved["input"]["mean"] == [0.5] * 3 and saved["input"]["range"] == [0.0, 1.0]
    assert main(["calibrate", str(files / "model.onnx"), "--data", str(files / "normalized.npy"),
                 "--mean", "0.5", "-o", str(out_path)]) == 2
    assert "--mean and --std go together" in capsys.readouterr().err


def test_calibrate_fused_with_groups_and_confidence(files, capsys):
    out_path = files / "grouped.guard.json"
    np.save(files / "groups.npy", np.arange(200) % 4)
    args = ["calibrate", str(files / "model.onnx"), "--data", str(files / "clean.npy"), "--detector", "fused",
            "--squeezers", "bit_depth:4,median:2", "-o", str(out_path)]
    assert main([*args, "--groups", str(files / "groups.npy"), "--fpr-confidence", "0.9"]) == 0
    assert "fused detector:" in capsys.readouterr().out
    fused = pyguard.GuardProfile.load(out_path).fused
    assert fused.n_groups == 4 and fused.confidence == 0.9
    assert main([*args, "--groups", "random"]) == 0
    assert pyguard.GuardProfile.load(out_path).fused.folding == "random"
    capsys.readouterr()
    np.save(files / "few_groups.npy", np.zeros(200, np.int64))
    assert main([*args, "--groups", str(files / "few_groups.npy")]) == 2
    assert "at least two distinct labels" in capsys.readouterr().err


def test_errors_exit_2_with_a_message(files, capsys):
    assert main(["calibrate", str(files / "model.onnx"), "--data", str(files / "missing.npy"),
                 "-o", str(files / "x.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["calibrate", str(files / "model.onnx"), "--data", str(files / "clean.npy"),
                 "--squeezers", "median:4", "-o", str(files / "x.json")]) == 2
    assert "median size" in capsys.readouterr().err
    (files / "corrupt.json").write_text("{")
    assert main(["check", str(files / "model.onnx"), "--profile", str(files / "corrupt.json"),
                 "--data", str(files / "clean.npy")]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_bench_on_a_model(files, capsys):
    assert main(["bench", str(files / "model.onnx"), "--shape", "1,3,16,16", "--seconds", "0.2"]) == 0
    out = capsys.readouterr().out
    for row in ("plain onnxruntime", "pyguard sanity checks only", "pyguard bit_depth:5+median:2"):
        assert row in out
    assert out.count("x\n") == 3  # a ratio on every row


def test_bench_needs_a_shape_for_dynamic_dims(tmp_path, capsys):
    path = tmp_path / "dyn.onnx"
    path.write_bytes(models.classifier(size=16))
    assert main(["bench", str(path), "--seconds", "0.1"]) == 0  # only the batch axis is dynamic
    import onnx

    m = onnx.load_from_string(models.classifier())
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    path.write_bytes(m.SerializeToString())
    assert main(["bench", str(path)]) == 2
    assert "pass --shape" in capsys.readouterr().err


def test_kernels_is_the_kernel_demo(monkeypatch):
    import pyguard.kernel_demo

    seen = []
    monkeypatch.setattr(pyguard.kernel_demo, "main", lambda argv: seen.append(argv) or 0)
    assert main(["kernels", "--size", "64"]) == 0
    assert seen == [["--size", "64"]]


def test_demo_prints_the_headline_figures(capsys):
    assert main(["demo", "--seconds", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "false-positive rate:" in out and "model accuracy" in out
    for attack in ("FGSM eps=0.3", "BIM (PGD) eps=0.3", "CW L2 conf=0", "DeepFool", "JSMA", "all attacks"):
        assert attack in out
    assert "ROC-AUC" in out and "pyguard detector" in out and "plain onnxruntime" in out
