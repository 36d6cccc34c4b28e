"""Time the ways of checking activations against plain onnxruntime, interleaved, batch 1, one thread.

    python tools/activation_overhead.py MODEL.onnx [MODEL2.onnx ...] [--rounds 200] [--budget 0.01]

Round robin over the variants (each round runs every variant once), so load changes on a shared machine
hit all of them alike; prints the median wall time and the median CPU time of the calling thread (with one
intra-op thread onnxruntime runs there, so CPU time ignores the time other processes hold the core), each
against plain onnxruntime. Variants: plain; restriction (harden, every activation / only fused places);
in-graph per-channel max of the budget-chosen tensors + native check (the monitor mode); the same for
every activation; exposing every activation; exposing the chosen tensors and reducing them on the host.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyguard.activations import (  # noqa: E402
    ActivationGuard,
    _expose,
    activation_tensors,
    add_channel_maxima,
    load_model,
    profile_activations,
)
from pyguard.harden import harden  # noqa: E402


def session(model) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def calibration_images(shape: tuple[int, ...], n: int = 12) -> np.ndarray:
    from skimage import data
    from skimage.transform import resize

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    out = []
    rng = np.random.default_rng(0)
    for i in range(n):
        img = photos[i % len(photos)].astype(np.float32) / 255
        y, x = rng.integers(0, 40, 2)
        crop = resize(img[y:, x:], shape[2:], anti_aliasing=True).transpose(2, 0, 1)
        out.append(crop)
    return np.stack(out).astype(np.float32)


def reduce_max_per_sample(model, tensors):
    """The alternative to per-channel GlobalMaxPool: ReduceMax over C, H, W (one value per sample)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    opset = next(i.version for i in out.opset_import if i.domain in ("", "ai.onnx"))
    parts = []
    for i, t in enumerate(tensors):
        name = f"rmax_sample_{i}"
        if opset >= 18:
            axes = f"rmax_axes_{i}"
            out.graph.initializer.append(numpy_helper.from_array(np.array([1, 2, 3], np.int64), axes))
            out.graph.node.append(helper.make_node("ReduceMax", [t, axes], [name], keepdims=1))
        else:
            out.graph.node.append(helper.make_node("ReduceMax", [t], [name], axes=[1, 2, 3], keepdims=1))
        flat = f"rmax_flat_{i}"
        out.graph.node.append(helper.make_node("Flatten", [name], [flat], axis=1))
        parts.append(flat)
    out.graph.node.append(helper.make_node("Concat", parts, ["rmax_all"], axis=1))
    out.graph.output.append(helper.make_tensor_value_info("rmax_all", TensorProto.FLOAT, None))
    return out


def variants(model, profile, feed):
    name = model.graph.input[0].name
    plain = session(model)
    hard = session(harden(model, profile))
    hard_fused = session(harden(model, profile, placement="fused"))
    guard = ActivationGuard(model, profile, plain.get_session_options())
    ranks = {n: t.rank for n, t in profile.tensors.items()}
    all_max = session(add_channel_maxima(model, list(profile.tensors), ranks))
    expose_all = session(_expose(model, activation_tensors(model)))
    chosen = profile.monitor.tensors
    expose_chosen = session(_expose(model, chosen))
    per_sample = session(reduce_max_per_sample(model, chosen))

    def host_reduce():
        values = expose_chosen.run(None, feed)[-len(chosen):]
        return [v.reshape(v.shape[0], v.shape[1], -1).max(axis=2) for v in values]

    del name
    return {
        "plain": lambda: plain.run(None, feed),
        "restriction (harden, every)": lambda: hard.run(None, feed),
        "restriction (harden, fused)": lambda: hard_fused.run(None, feed),
        f"monitor: in-graph max of {len(chosen)} chosen + check": lambda: guard.run(None, feed),
        f"in-graph ReduceMax per sample of {len(chosen)} chosen": lambda: per_sample.run(None, feed),
        f"in-graph max of all {len(profile.tensors)}": lambda: all_max.run(None, feed),
        f"expose all {len(profile.tensors)}": lambda: expose_all.run(None, feed),
        f"expose {len(chosen)} chosen + host max": host_reduce,
    }


def measure(runs: dict, rounds: int) -> dict[str, tuple[float, float, float]]:
    for fn in runs.values():
        for _ in range(3):
            fn()
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(rounds):
        for k, fn in runs.items():
            t0, c0 = time.perf_counter(), time.thread_time()
            fn()
            c1, t1 = time.thread_time(), time.perf_counter()
            wall[k].append(t1 - t0)
            cpu[k].append(c1 - c0)
    return {k: (float(np.median(wall[k])), float(np.median(cpu[k])), float(np.min(cpu[k]))) for k in runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--budget", type=float, default=0.01)
    args = parser.parse_args()
    for path in args.models:
        model = load_model(path)
        dims = [d.dim_value or 1 for d in model.graph.input[0].type.tensor_type.shape.dim]
        images = calibration_images(tuple(dims))
        profile = profile_activations(model, images, budget=args.budget)
        feed = {model.graph.input[0].name: images[:1]}
        med = measure(variants(model, profile, feed), args.rounds)
        print(f"\n{os.path.basename(path)}: monitor tensors {profile.monitor.tensors}, "
              f"estimated overhead {100 * profile.monitor.estimated_overhead:.2f}%")
        print("| variant | wall median | vs plain | CPU median | vs plain | CPU min | vs plain |\n"
              "|---|---|---|---|---|---|---|")
        base = med["plain"]
        for k, values in med.items():
            cells = [f"{v * 1e3:.3f} ms | {100 * (v / b - 1):+.1f}%" for v, b in zip(values, base)]
            print(f"| {k} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
