"""The ``pyguard`` command: demo, calibrate, check, bench, kernels, serve-metrics
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
            args.model, data, squeezers=_squeezer_list(args.squeezers), fpr=args.fpr,
            input_name=args.input_name, output_name=args.output_name, batch_size=args.batch_size,
            input_range=tuple(args.range) if args.range else None, normalization=normalization,
            layout=args.layout, sess_options=_session_options(args.threads), progress=progress)
    profile.save(args.output)
    print(f"calibrated on {profile.n_calibration} samples: squeezers {', '.join(profile.squeezers)}, "
          f"threshold {profile.threshold:.6f} at fpr {profile.fpr}")
    spec = profile.input
    print(f"input {spec.name!r} {spec.layout} {spec.dtype} range {spec.range}"
          f"{' normalized' if spec.normalized else ''}; output {profile.output_name!r} "
          f"({profile.output_kind}); purifier {profile.purifier}")
    print(f"profile written to {args.output}")
    return 0


# ---- check -------------------------------------------------------------------------------------------------
def cmd_check(args) -> int:
    from ._progress import Progress
    from .profile import GuardProfile
    from .session import InferenceSession

    profile = GuardProfile.load(args.profile)
    data = _load_array(args.data)
    sess = InferenceSession(args.model, _session_options(args.threads), profile=profile, action="monitor")
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
    print(f"{flagged_total} of {index} samples flagged (threshold {profile.threshold:.6f})")
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
                            batch_size=shape[0], sess_options=so)
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
                    seconds=args.seconds)


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
                   help="comma-separated squeezers (default: bit_depth:1,median:2)")
    d.add_argument("--fpr", type=float, default=0.05, help="target false-positive rate (default 0.05)")
    d.add_argument("--seconds", type=float, default=1.5, help="time budget of each latency measurement")
    d.set_defaults(fn=cmd_demo)

    c = sub.add_parser("calibrate", help="calibrate a profile on clean data",
                       description="Run MODEL on clean images and write a guard profile (JSON).")
    c.add_argument("model", help="ONNX model path")
    c.add_argument("--data", required=True, help="clean images, .npy (first axis = samples)")
    c.add_argument("--squeezers", default=CALIBRATE_SQUEEZERS,
                   help=f"comma-separated (default {CALIBRATE_SQUEEZERS}, as pyguard.calibrate; the paper "
                        "uses bit_depth:5,median:2 for ImageNet-sized colour images)")
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
