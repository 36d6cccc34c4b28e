"""The ``pyguard`` command: demo, calibrate, check, bench, eval, faults, kernels, serve-metrics
(``pyguard COMMAND --help``)."""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from .errors import GuardError

DEFAULT_SQUEEZERS = "bit_depth:5,median:2"  # `pyguard bench`: the benchmark's joint detector
CALIBRATE_SQUEEZERS = "bit_depth:1,median:2"  # pyguard.calibrate's default


def _squeezer_list(text: str) -> list[str]:
    return [s for s in (p.strip() for p in text.split(",")) if s]


def _load_array(path: str) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise GuardError(f"cannot read {path!r} as a .npy/.npz array: {e}") from e
    if isinstance(data, np.lib.npyio.NpzFile):
        keys = list(data.keys())
        if len(keys) != 1 and "x" not in keys:
            raise GuardError(f"{path} holds several arrays {keys}; save the images alone or under 'x'")
        data = data["x" if "x" in keys else keys[0]]
    return np.ascontiguousarray(data)


def _session_options(threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return so


# ---- calibrate ---------------------------------------------------------------------------------------------
def _groups(value: str | None):
    """--groups: None, the word 'random', or a .npy of per-sample labels."""
    if value is None or value == "random":
        return value
    return _load_array(value)


def cmd_calibrate(args) -> int:
    from ._progress import Progress
    from .calibrate import calibrate

    data = _load_array(args.data)
    normalization = None
    if args.mean is not None or args.std is not None:
        if args.mean is None or args.std is None:
            raise GuardError("--mean and --std go together")
        normalization = (args.mean, args.std)
    with Progress("calibrating", len(data)) as progress:
        profile = calibrate(
            args.model, data, squeezers=_squeezer_list(args.squeezers) if args.squeezers else None,
            fpr=args.fpr, detector=args.detector, combine=args.combine,
            groups=_groups(args.groups), fpr_confidence=args.fpr_confidence,
            input_name=args.input_name, output_name=args.output_name, batch_size=args.batch_size,
            input_range=tuple(args.range) if args.range else None, normalization=normalization,
            layout=args.layout, sess_options=_session_options(args.threads), progress=progress,
            **_activation_options(args))
    profile.save(args.output)
    print(f"calibrated on {profile.n_calibration} samples: squeezers {', '.join(profile.squeezers)}, "
          f"threshold {profile.threshold:.6f} at fpr {profile.fpr}")
    if profile.fused is not None:  # ---- fused detector (issue 5) ----
        f = profile.fused
        print(f"fused detector: {len(f.signals)} signals ({', '.join(f.signals)}), {f.combine} combination, "
              f"threshold {f.threshold:.4f}; cascade forwards {f.cascade.screen:.0%} of clean traffic"
              if f.cascade else "")
    spec = profile.input
    print(f"input {spec.name!r} {spec.layout} {spec.dtype} range {spec.range}"
          f"{' normalized' if spec.normalized else ''}; output {profile.output_name!r} "
          f"({profile.output_kind}); purifier {profile.purifier}")
    if profile.activations is not None:
        acts = profile.activations
        watched = len(acts.monitor.tensors) if acts.monitor else 0
        tolerance = f", tolerance {acts.monitor.tolerance:.4f} at fpr {acts.fpr}" if acts.monitor else ""
        print(f"activations: {len(acts.tensors)} tensors profiled ({acts.preset}), {watched} checked at run "
              f"time{tolerance}")
    print(f"profile written to {args.output}")
    return 0


def _activation_options(args) -> dict:
    # ---- activations (issue 4) ----
    acts = args.activations
    if args.activation_tensors:
        acts = [t for t in (p.strip() for p in args.activation_tensors.split(",")) if t]
    return {"activations": acts, "activation_preset": args.activation_preset,
            "activation_fpr": args.activation_fpr,
            "activation_budget": None if args.activation_budget < 0 else args.activation_budget}


# ---- check -------------------------------------------------------------------------------------------------
def cmd_check(args) -> int:
    from ._progress import Progress
    from .profile import GuardProfile
    from .session import InferenceSession

    profile = GuardProfile.load(args.profile)
    data = _load_array(args.data)
    sess = InferenceSession(args.model, _session_options(args.threads), profile=profile, action="monitor",
                            cascade=args.cascade)
    flagged_total, index = 0, 0
    with Progress("checking", len(data)) as progress:
        for start in range(0, len(data), args.batch_size):
            batch = np.ascontiguousarray(data[start:start + args.batch_size])
            _, report = sess.run_with_report([profile.output_name], {profile.input.name: batch})
            for i, line in enumerate(report.sample_lines(offset=index)):
                if not args.quiet or report.flagged[i]:
                    print(line)
            index += len(batch)
            flagged_total += int(report.flagged.sum())
            progress(index)
    from .demo import detector_threshold

    print(f"{flagged_total} of {index} samples flagged (threshold {detector_threshold(profile):.6f})")
    return 1 if flagged_total else 0


# ---- serve-metrics (hardening) -----------------------------------------------------------------------------
def cmd_serve_metrics(args) -> int:
    """Guarded checks of --data in a loop, with their Prometheus metrics served over HTTP meanwhile."""
    import time

    from .profile import GuardProfile
    from .session import InferenceSession
    from .telemetry import Telemetry, new_registry, serve_metrics

    profile = GuardProfile.load(args.profile)
    data = _load_array(args.data)
    registry = new_registry()
    telemetry = Telemetry(args.name)
    telemetry.register(registry)
    sess = InferenceSession(args.model, _session_options(args.threads), profile=profile, telemetry=telemetry)
    server = serve_metrics(args.port, addr=args.addr, registry=registry)
    print(f"serving metrics on http://{args.addr}:{server.server_port}/metrics", flush=True)
    deadline = time.monotonic() + args.duration if args.duration > 0 else float("inf")
    try:
        while time.monotonic() < deadline:
            for start in range(0, len(data), args.batch_size):
                sess.run([profile.output_name], {profile.input.name: data[start:start + args.batch_size]})
            time.sleep(args.interval)
    finally:
        server.shutdown()
    snap = telemetry.snapshot()
    print(f"{snap['requests']} runs, {snap['samples']} samples, {snap['flagged']} flagged")
    return 0


# ---- serve-metrics (end) -----------------------------------------------------------------------------------


# ---- bench -------------------------------------------------------------------------------------------------
def _builtin_models() -> list[tuple[str, str, tuple[int, ...] | None]]:
    """(label, path, shape) of the models `pyguard bench` measures without an argument."""
    models = []
    from .data import DIGITS_DIR

    if (DIGITS_DIR / "model.onnx").is_file():
        models.append(("digits CNN (demo)", str(DIGITS_DIR / "model.onnx"), None))
    try:  # the benchmark builders live in the repository's bench/, not in the wheel
        sys.path.insert(0, os.getcwd())
        from bench import models as bench_models

        models.append(("ResNet-18-shaped", bench_models.resnet18_path(), None))
        models.append(("MobileNetV2-shaped", bench_models.mobilenetv2_path(), None))
    except Exception:
        pass
    finally:
        if sys.path and sys.path[0] == os.getcwd():
            sys.path.pop(0)
    return models


def _input_shape(sess, name: str, shape_arg) -> tuple[int, ...]:
    meta = next(i for i in sess.get_inputs() if i.name == name)
    if shape_arg:
        return tuple(int(v) for v in shape_arg.split(","))
    dims = list(meta.shape)
    if dims and not isinstance(dims[0], int):
        dims[0] = 1
    if any(not isinstance(d, int) for d in dims):
        raise GuardError(f"input {name!r} has dynamic dimensions {meta.shape}; "
                         "pass --shape, e.g. 1,3,224,224")
    return tuple(dims)


def bench_model(label: str, model: str, *, squeezers: list[str], shape_arg=None, seconds=2.0, threads=1,
                stream=None) -> dict[str, float]:
    """Median latency of plain onnxruntime, sanity-only monitor and the squeeze detector on one model."""
    import warnings

    import onnxruntime as ort

    from ._progress import Progress
    from ._timing import interleaved_medians
    from .calibrate import calibrate
    from .session import InferenceSession

    stream = stream if stream is not None else sys.stdout
    so = _session_options(threads)
    plain = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    image = plain.get_inputs()[0]
    shape = _input_shape(plain, image.name, shape_arg)
    rng = np.random.default_rng(0)
    if image.type == "tensor(uint8)":
        x = rng.integers(0, 256, size=shape, dtype=np.uint8)
        calib = rng.integers(0, 256, size=(8, *shape[1:]), dtype=np.uint8)
    else:
        x = rng.random(shape, dtype=np.float32)
        calib = rng.random((8, *shape[1:]), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 8 random samples only time the detector; the threshold is moot
        profile = calibrate(model, calib, squeezers=squeezers, fpr=0.125, input_name=image.name,
                            batch_size=shape[0], sess_options=so, detector="squeeze")
    sanity = InferenceSession(model, so, providers=["CPUExecutionProvider"])
    guarded = InferenceSession(model, so, providers=["CPUExecutionProvider"], profile=profile)
    feed = {image.name: x}
    with Progress(f"timing {label}", 100) as progress:
        ms = interleaved_medians({
            "plain onnxruntime": lambda: plain.run(None, feed),
            "pyguard sanity checks only": lambda: sanity.run(None, feed),
            f"pyguard {'+'.join(squeezers)}": lambda: guarded.run(None, feed),
        }, seconds=seconds, progress=progress)
    base = ms["plain onnxruntime"]
    print(f"\n{label}: input {image.name} {list(shape)}, {threads} thread(s)", file=stream)
    print(f"  {'configuration':<40} {'median':>11} {'vs plain':>9}", file=stream)
    for name, value in ms.items():
        print(f"  {name:<40} {value:>8.3f} ms {value / base:>8.3f}x", file=stream)
    return ms


def cmd_bench(args) -> int:
    squeezers = _squeezer_list(args.squeezers)
    if args.model:
        models = [(os.path.basename(args.model), args.model, None)]
    else:
        models = _builtin_models()
        if not models:
            raise GuardError("no built-in models found; pass a MODEL path")
    for label, path, _ in models:
        bench_model(label, path, squeezers=squeezers, shape_arg=args.shape, seconds=args.seconds,
                    threads=args.threads)
    return 0


# ---- demo / kernels ----------------------------------------------------------------------------------------
def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(squeezers=_squeezer_list(args.squeezers) if args.squeezers else None, fpr=args.fpr,
                    seconds=args.seconds, dataset=args.set)


# ---- eval --------------------------------------------------------------------------------------------------
def _float_list(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in _squeezer_list(text))


def _fault_campaign(path: str | None):
    if path is None:
        return None
    import json

    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise GuardError(f"cannot read the fault campaign {path!r}: {e}") from e


def cmd_eval(args) -> int:
    from .eval.report import acceptance, write_report
    from .eval.suite import DEFAULT_ATTACKS, EvalSettings, run_evaluation

    attacks = _squeezer_list(args.attacks) if args.attacks else list(DEFAULT_ATTACKS)
    if attacks == ["none"]:  # only the bundled attacks of --demo
        attacks = []
    settings = EvalSettings(eps=args.eps, l2_eps=args.l2_eps, max_queries=args.queries, seed=args.seed,
                            chunk_size=args.chunk_size, backend=args.backend, limit=args.limit,
                            adaptive_eps=_float_list(args.adaptive_eps), pgd_steps=args.steps,
                            num_cpus=args.num_cpus)
    bundled = None
    if args.demo:
        from .demo import DEFAULT_SQUEEZERS, calibrate_demo, load_demo

        demo = load_demo()
        squeezers = _squeezer_list(args.squeezers) if args.squeezers else DEFAULT_SQUEEZERS
        profile = calibrate_demo(demo, squeezers, args.fpr)
        model, x, y, bundled = demo["model"], demo["test_x"], demo["test_y"], demo["attacks"]
    else:
        if not (args.model and args.profile and args.data and args.labels):
            raise GuardError("pass MODEL --profile P --data X.npy --labels Y.npy, or --demo")
        from .profile import GuardProfile

        profile = GuardProfile.load(args.profile)
        model, x, y = args.model, _load_array(args.data), _load_array(args.labels)
        if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
            raise GuardError(f"--labels must hold one integer label per sample, got {y.dtype} {y.shape}")
    if profile.input.normalized:
        raise GuardError("pyguard eval attacks the model's input directly; normalized inputs are not "
                         "supported yet")
    result = run_evaluation(model, profile, x, y, attacks=attacks, settings=settings, bundled=bundled,
                            faults=_fault_campaign(args.faults))
    out = write_report(result, args.out)
    print(f"report written to {out}/report.md (+ report.json, plots)")
    _print_evaluation(result, acceptance)
    if args.demo and args.detector == "both":  # ---- fused detector (issue 5): same examples, beside Xu ----
        _fused_beside_xu(demo, result, model, x, y, settings, args)
    return 0


def _print_evaluation(result, acceptance) -> None:
    print(f"clean: accuracy {result.clean['accuracy']:.1%}, false-positive rate {result.clean['fpr']:.1%}")
    print(f"{'attack':<30} {'success':>8} {'detected':>9} {'ROC-AUC':>8} {'evaded':>7} {'queries':>8}")
    for a in result.attacks:
        r = a.summary
        q = r.get("median_queries")
        print(f"{a.name:<30} {_pct(r['success_rate']):>8} {_pct(r['detection_rate']):>9} "
              f"{_num3(r['roc_auc']):>8} {_pct(r['evasion_rate']):>7} "
              f"{'-' if q is None or np.isnan(q) else f'{q:.0f}':>8}")
    for a in acceptance(result)["adaptive"]:
        print(f"adaptive eps={a['eps']:g}: detection {_pct(a['detection_non_adaptive'])} (non-adaptive) -> "
              f"{_pct(a['detection_adaptive'])} (adaptive): "
              f"{'lowered' if a['lowers_detection'] else 'NOT lowered'}")
    for note in result.notes:
        print(f"note: {note}")


def _fused_beside_xu(demo, xu_result, model, x, y, settings, args) -> None:
    """Evaluate the fused detector on the very examples Xu's detector was evaluated on (report in OUT/fused).

    The adaptive examples were adapted to Xu's detector; tools/adaptive_eval.py attacks the fused one."""
    from .demo import calibrate_demo
    from .eval.report import write_report
    from .eval.suite import run_evaluation

    profile = calibrate_demo(demo, None, args.fpr, detector="fused")
    same = {s.name: {"x": s.x, "y": s.y, "x_source": s.x_source} for s in xu_result.attacks}
    fused = run_evaluation(model, profile, x, y, attacks=[], settings=settings, bundled=same)
    out = write_report(fused, os.path.join(args.out, "fused"))
    print(f"\nfused detector beside Xu's on the same examples (report: {out}/report.md)")
    print(f"clean false-positive rate: Xu {xu_result.clean['fpr']:.1%}, fused {fused.clean['fpr']:.1%}")
    print(f"{'attack':<30} {'success':>8} {'Xu det':>8} {'fused det':>9} {'Xu AUC':>7} {'fused AUC':>9}")
    for a, b in zip(xu_result.attacks, fused.attacks):
        r, f = a.summary, b.summary
        print(f"{a.name:<30} {_pct(r['success_rate']):>8} {_pct(r['detection_rate']):>8} "
              f"{_pct(f['detection_rate']):>9} {_num3(r['roc_auc']):>7} {_num3(f['roc_auc']):>9}")


def _pct(v: float) -> str:
    return "-" if v is None or np.isnan(v) else f"{v:.1%}"


def _num3(v: float) -> str:
    return "-" if v is None or np.isnan(v) else f"{v:.3f}"


def cmd_kernels(argv: list[str]) -> int:
    from . import kernel_demo  # lazy: pulls in OpenCV and SciPy only when asked

    return int(kernel_demo.main(argv) or 0)


# ---- parser ------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyguard", description="Native inference guard for ONNX Runtime.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("demo", help="calibrate and run the guard on the bundled digits model",
                       description="Calibrate on the bundled digits classifier, then report the "
                                   "false-positive rate on clean images, the detection rate per attack on "
                                   "successful adversarial examples, ROC-AUC and the latency overhead "
                                   "against plain onnxruntime.")
    d.add_argument("--squeezers", default=None,
                   help="comma-separated squeezers (default: bit_depth:1,median:2; photos: "
                        "bit_depth:5,median:2)")
    d.add_argument("--fpr", type=float, default=0.05, help="target false-positive rate (default 0.05)")
    d.add_argument("--seconds", type=float, default=1.5, help="time budget of each latency measurement")
    d.add_argument("--set", choices=("digits", "photos"), default="digits",
                   help="bundled set: digits (default) or photos (32x32 patches of bundled photos, attacks "
                        "on the 8-bit grid; Xu's squeezers bit_depth:5,median:2)")
    d.set_defaults(fn=cmd_demo)

    c = sub.add_parser("calibrate", help="calibrate a profile on clean data",
                       description="Run MODEL on clean images and write a guard profile (JSON).")
    c.add_argument("model", help="ONNX model path")
    c.add_argument("--data", required=True, help="clean images, .npy (first axis = samples)")
    c.add_argument("--squeezers", default=None,
                   help=f"comma-separated (default {CALIBRATE_SQUEEZERS} for --detector squeeze, as "
                        "pyguard.calibrate; chosen from the clean data for --detector fused; the paper uses "
                        "bit_depth:5,median:2 for ImageNet-sized colour images)")
    c.add_argument("--detector", choices=("squeeze", "fused"), default=None,
                   help="fused (default): every signal calibrated to a p-value and combined (see "
                        "pyguard.fused); squeeze: Xu et al.'s feature squeezing, which also runs in graph "
                        "mode on the device")
    c.add_argument("--combine", choices=("fisher", "min_p"), default="fisher",
                   help="--detector fused: how p-values are combined (default fisher)")
    c.add_argument("--groups", default=None,
                   help="--detector fused: .npy with one group label per sample (source, site, session, "
                        "image region): the threshold is cross-fitted over whole groups so it holds under "
                        "the shift between them; 'random' = random folds only (exchangeable data); default: "
                        "random folds pooled with folds of whole content clusters")
    c.add_argument("--fpr-confidence", type=float, default=None,
                   help="--detector fused: probability that the FPR on fresh data stays at most --fpr "
                        "(finite-sample bound; default: the FPR is at the target on average)")
    c.add_argument("--fpr", type=float, default=0.05, help="target false-positive rate (default 0.05)")
    c.add_argument("--input-name", default=None)
    c.add_argument("--output-name", default=None)
    c.add_argument("--range", type=float, nargs=2, metavar=("LO", "HI"), help="pixel value range")
    c.add_argument("--mean", type=float, nargs="+", help="normalization mean per channel")
    c.add_argument("--std", type=float, nargs="+", help="normalization std per channel")
    c.add_argument("--layout", choices=("NCHW", "NHWC", "NHW"), default=None)
    c.add_argument("--batch-size", type=int, default=64)
    c.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0 = default)")
    c.add_argument("-o", "--output", required=True, help="profile path to write")
    c.add_argument("--activations", action=argparse.BooleanOptionalAction, default=None,
                   help="profile activation ranges (default: when the model has activation operators)")
    c.add_argument("--activation-tensors", default=None, help="comma-separated tensor names to profile")
    c.add_argument("--activation-preset", default="ranger", choices=("ranger", "p99.9", "p90"))
    c.add_argument("--activation-fpr", type=float, default=0.01,
                   help="false-flag target of the activation check (default 0.01)")
    c.add_argument("--activation-budget", type=float, default=0.01,
                   help="allowed overhead of the activation check (default 0.01; -1 = check all)")
    c.set_defaults(fn=cmd_calibrate)

    k = sub.add_parser("check", help="check images against a profile (exit 1 if any is flagged)",
                       description="Run MODEL guarded by PROFILE on the images and print a verdict per "
                                   "sample; the exit code is 1 when any sample is flagged.")
    k.add_argument("model")
    k.add_argument("--profile", required=True)
    k.add_argument("--data", required=True, help="images, .npy (first axis = samples)")
    k.add_argument("--batch-size", type=int, default=64)
    k.add_argument("--threads", type=int, default=0)
    k.add_argument("-q", "--quiet", action="store_true", help="print flagged samples only")
    k.add_argument("--cascade", action="store_true",
                   help="screening cascade (a profile calibrated with --detector fused): squeeze only the "
                        "samples the cheap signals cannot clear")
    k.set_defaults(fn=cmd_check)

    b = sub.add_parser("bench", help="plain vs guarded latency on this machine",
                       description="Median latency of plain onnxruntime, sanity-only monitoring and the "
                                   "squeeze detector, on MODEL or on the built-in models.")
    b.add_argument("model", nargs="?", help="ONNX model path (default: the built-in models)")
    b.add_argument("--shape", default=None, help="input shape for dynamic dimensions, e.g. 1,3,224,224")
    b.add_argument("--squeezers", default=DEFAULT_SQUEEZERS)
    b.add_argument("--seconds", type=float, default=2.0, help="time budget per model (default 2)")
    b.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")
    b.set_defaults(fn=cmd_bench)

    e = sub.add_parser("eval", help="attack a model and measure the guard (report folder with plots)",
                       description="Attack MODEL on labelled data with black-box attacks (onnxruntime only) "
                                   "and, with PyTorch installed, white-box and adaptive attacks; measure the "
                                   "guard of PROFILE (success, detection on successful examples, FPR, "
                                   "ROC-AUC, distortion, robust accuracy of action=purify) and write "
                                   "report.md, report.json and plots to --out.")
    e.add_argument("model", nargs="?", help="ONNX model path (omit with --demo)")
    e.add_argument("--demo", action="store_true",
                   help="evaluate the bundled digits demo (its own attacks included, as in `pyguard demo`)")
    e.add_argument("--profile", help="guard profile (JSON) of MODEL")
    e.add_argument("--data", help="clean images, .npy (first axis = samples)")
    e.add_argument("--labels", help="integer labels, .npy")
    e.add_argument("--attacks", default=None,
                   help="comma-separated, default all: square_linf,square_l2,simba_pixel,simba_dct "
                        "(black-box), fgsm,pgd,pgd_l2,adaptive (white-box, need torch; cw_l2 on request); "
                        "'none' with --demo "
                        "evaluates the demo's bundled attacks only")
    e.add_argument("--eps", type=float, default=0.3, help="L-inf radius in input units (default 0.3)")
    e.add_argument("--l2-eps", type=float, default=3.0, help="L2 radius of square_l2 (default 3.0)")
    e.add_argument("--queries", type=int, default=1000, help="query budget per image (default 1000)")
    e.add_argument("--steps", type=int, default=20, help="PGD / adaptive steps (default 20)")
    e.add_argument("--adaptive-eps", default="0.1,0.3",
                   help="L-inf radii of the adaptive attack and its non-adaptive baseline (default 0.1,0.3)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--limit", type=int, default=None, help="attack at most N correctly classified samples")
    e.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="run attack chunks in-process (default) or as Ray tasks (pip install ray)")
    e.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray instance")
    e.add_argument("--chunk-size", type=int, default=64, help="samples per task (results do not depend on it "
                   "across backends)")
    e.add_argument("--faults", default=None, help="fault campaign JSON (kinds with sdc_plain, "
                   "sdc_restricted, sdc_flagged) to plot")
    e.add_argument("--squeezers", default=None, help="--demo only: squeezers (default bit_depth:1,median:2)")
    e.add_argument("--fpr", type=float, default=0.05, help="--demo only: target false-positive rate")
    e.add_argument("--detector", choices=("squeeze", "both"), default="both",
                   help="--demo only: evaluate Xu's squeeze detector, or it and the fused detector on the "
                        "same examples (default both)")
    e.add_argument("--out", default="pyguard-eval", help="report folder (default ./pyguard-eval)")
    e.set_defaults(fn=cmd_eval)

    from .faults import add_cli_parser as _add_faults_parser  # ---- faults (issue 4) ----

    _add_faults_parser(sub)

    # ---- serve-metrics (hardening) ----
    m = sub.add_parser("serve-metrics", help="serve Prometheus metrics of guarded checks over HTTP",
                       description="Check the images in a loop with MODEL guarded by PROFILE and serve the "
                                   "session's metrics (pyguard.telemetry) at http://ADDR:PORT/metrics.")
    m.add_argument("model")
    m.add_argument("--profile", required=True)
    m.add_argument("--data", required=True, help="images, .npy (first axis = samples)")
    m.add_argument("--port", type=int, default=9464, help="0 picks a free port (printed)")
    m.add_argument("--addr", default="127.0.0.1", help="bind address (default 127.0.0.1: this host only)")
    m.add_argument("--name", default="default", help="the session label of the metrics")
    m.add_argument("--duration", type=float, default=0.0, help="seconds to run (default 0: until Ctrl-C)")
    m.add_argument("--interval", type=float, default=1.0, help="pause between passes over the data")
    m.add_argument("--batch-size", type=int, default=64)
    m.add_argument("--threads", type=int, default=0)
    m.set_defaults(fn=cmd_serve_metrics)
    # ---- serve-metrics (end) ----

    # `kernels` hands all of its arguments (--help included) to pyguard.kernel_demo; see main().
    sub.add_parser("kernels", help="show every native kernel on a bundled photo (pyguard kernels --help)",
                   add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["kernels"]:
        return cmd_kernels(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "fn", None):
        parser.print_help()
        return 2
    try:
        return args.fn(args)
    except GuardError as e:
        print(f"pyguard {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
