"""The evaluation suite end to end: report folder, Ray backend = in-process, `pyguard eval --demo` = demo."""

from __future__ import annotations

import io
import json
import re
import warnings

import numpy as np
import pytest
from eval_models import digits_mlp

from pyguard import calibrate
from pyguard.eval.parallel import chunk_bounds, map_chunks
from pyguard.eval.report import write_report
from pyguard.eval.suite import EvalSettings, run_evaluation

PNG = b"\x89PNG\r\n\x1a\n"
FAULTS = {"kinds": [{"kind": "activation", "sdc_plain": 0.031, "sdc_restricted": 0.004, "sdc_flagged": 0.6},
                    {"kind": "weight", "sdc_plain": 0.02, "sdc_restricted": 0.01, "sdc_flagged": 0.3}]}


@pytest.fixture(scope="module")
def tiny():
    model, x, y = digits_mlp()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        profile = calibrate(model, x[:300], fpr=0.05, input_range=(0.0, 1.0), detector="squeeze")
    return model, profile, x[300:400], y[300:400]


def settings(**kw) -> EvalSettings:
    return EvalSettings(max_queries=150, limit=20, chunk_size=8, **kw)


@pytest.fixture(scope="module")
def evaluated(tiny, tmp_path_factory):
    model, profile, x, y = tiny
    result = run_evaluation(model, profile, x, y, attacks=("square_linf", "simba_dct"), settings=settings(),
                            activation_bounds={"hidden": (0.0, 3.0)}, faults=FAULTS)
    out = write_report(result, tmp_path_factory.mktemp("report"))
    return result, out


def test_report_files_exist_and_parse(evaluated):
    result, out = evaluated
    for name in ("roc.png", "scores.png", "activations.png", "faults.png"):
        assert (out / name).read_bytes()[:8] == PNG, name
    doc = json.loads((out / "report.json").read_text())
    names = [a["name"] for a in doc["attacks"]]
    assert names == ["square_linf", "simba_dct"]
    square = doc["attacks"][0]
    for key in ("success_rate", "detection_rate", "roc_auc", "mean_l2", "mean_linf", "robust_accuracy_purify",
                "median_queries", "flagged_all", "evasion_rate"):
        assert key in square, key
    assert square["success_rate"] == result.attack("square_linf").summary["success_rate"]
    assert doc["clean"]["n"] == 100 and doc["clean"]["attacked"] == 20
    assert 0 <= doc["clean"]["fpr"] <= 1 and doc["overall"]["examples"] == 40
    assert [f["kind"] for f in doc["faults"]] == ["activation", "weight"]
    assert set(doc["activations"]["rates"]) == {"clean", "square_linf", "simba_dct"}
    assert doc["acceptance"]["blackbox"][0]["query_budget"] == 150
    md = (out / "report.md").read_text()
    assert "## Acceptance, as measured" in md and "square_linf" in md and "![roc.png](roc.png)" in md
    rate = f"{100 * square['success_rate']:.1f}%"
    assert f"**square_linf** reaches 90% success on the undefended model: {rate}" in md


def test_numbers_are_consistent(evaluated):
    result, _ = evaluated
    s = result.attack("square_linf")
    assert s.summary["success_rate"] >= 0.9
    assert s.summary["max_queries_used"] <= 150
    assert s.summary["mean_linf"] <= 0.3 + 1e-5
    ok = s.scores[s.success]
    assert s.summary["detection_rate"] == pytest.approx(np.mean(ok > result.profile.threshold))
    assert result.overall["successful"] == sum(a.summary["successful"] for a in result.attacks)


def test_chunks_do_not_depend_on_the_backend():
    assert chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    with pytest.raises(ValueError):
        chunk_bounds(10, 0)
    with pytest.raises(ValueError):
        map_chunks(lambda a, b: a, 3, backend="dask")


def test_ray_backend_gives_the_same_numbers(tiny, evaluated, outside_checkout):
    ray = pytest.importorskip("ray")
    from pyguard.eval.parallel import worker_env

    model, profile, x, y = tiny
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=worker_env())
    try:
        result = run_evaluation(model, profile, x, y, attacks=("square_linf", "simba_dct"),
                                settings=settings(backend="ray"))
    finally:
        ray.shutdown()
    local, _ = evaluated
    for a, b in zip(local.attacks, result.attacks):
        assert a.name == b.name
        assert np.array_equal(a.x, b.x) and np.array_equal(a.queries, b.queries)
        assert a.summary == b.summary or all(
            a.summary[k] == b.summary[k] or (np.isnan(a.summary[k]) and np.isnan(b.summary[k]))
            for k in a.summary if k != "seconds")


def _demo_rows(text: str) -> dict[str, tuple[str, str, str, str]]:
    rows = {}
    for line in text.splitlines():
        m = re.match(r"^(.+?)\s{2,}(\d+)\s+(\d+)\s+(\S+)\s+(\S+)$", line)
        if m and m.group(1) != "all attacks":
            rows[m.group(1).strip()] = m.groups()[1:]
    return rows


def test_eval_demo_matches_pyguard_demo(tmp_path):
    from pyguard.cli import main
    from pyguard.demo import run_demo

    buf = io.StringIO()
    run_demo(seconds=0.01, out=buf)
    demo_rows = _demo_rows(buf.getvalue())
    assert len(demo_rows) >= 5, buf.getvalue()
    assert main(["eval", "--demo", "--attacks", "none", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "report.json").read_text())
    bundled = {a["name"]: a for a in doc["attacks"] if a["family"] == "bundled"}
    assert set(bundled) == set(demo_rows)
    for name, (total, successful, detected, auc) in demo_rows.items():
        a = bundled[name]
        assert (str(a["examples"]), str(a["successful"])) == (total, successful)
        assert f"{100 * a['detection_rate']:.1f}%" == detected
        assert f"{a['roc_auc']:.3f}" == auc
    fpr = re.search(r"false-positive rate: ([\d.]+)% \((\d+)/(\d+)", buf.getvalue())
    assert f"{100 * doc['clean']['fpr']:.1f}" == fpr.group(1) and doc["clean"]["flagged"] == int(fpr.group(2))


def test_cli_eval_on_a_user_model(tiny, tmp_path, capsys):
    from pyguard.cli import main

    model, profile, x, y = tiny
    (tmp_path / "m.onnx").write_bytes(model)
    profile.save(tmp_path / "p.json")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    code = main(["eval", str(tmp_path / "m.onnx"), "--profile", str(tmp_path / "p.json"), "--data",
                 str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"), "--attacks", "square_linf",
                 "--queries", "100", "--limit", "10", "--out", str(tmp_path / "r")])
    assert code == 0
    assert "square_linf" in capsys.readouterr().out
    assert json.loads((tmp_path / "r" / "report.json").read_text())["attacks"][0]["examples"] == 10
    assert main(["eval", str(tmp_path / "m.onnx")]) == 2  # profile, data and labels are required


def test_without_torch_whitebox_attacks_are_skipped_with_a_note(tiny, monkeypatch):
    from pyguard.eval import suite

    monkeypatch.setattr(suite, "_torch_available", lambda: False)
    model, profile, x, y = tiny
    result = run_evaluation(model, profile, x, y, attacks=("fgsm", "adaptive"), settings=settings())
    assert result.attacks == [] and len(result.notes) == 2 and "PyTorch" in result.notes[0]


def test_importing_the_black_box_side_does_not_import_torch(outside_checkout):
    import subprocess
    import sys

    code = "import sys, pyguard.eval, pyguard.eval.suite; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=outside_checkout)
    assert out.stdout.strip() == "False"


def test_eval_help(capsys):
    from pyguard.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["eval", "--help"])
    assert exc.value.code == 0 and "--backend" in capsys.readouterr().out
