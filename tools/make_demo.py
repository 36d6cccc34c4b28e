"""Build pyguard's demo data: a small digits CNN in ONNX, clean calibration/test images, adversarial examples.

Development only (needs torch==2.13.0 and scikit-learn); users never run this, the outputs are committed
under pyguard/data/digits/. Deterministic: the same torch version on the same kind of CPU gives the same
files. Nothing is downloaded: the images are scikit-learn's bundled handwritten digits (1797 8x8 images).

    python tools/make_demo.py                  # writes pyguard/data/digits/
    python tools/make_demo.py --out /tmp/demo  # somewhere else
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEED = 20260522
SPLIT_SEED = 7
ATTACK_SEED = 0
SIDE = 28
SPLIT_SIZES = {"train": 1000, "calib": 400, "test": 397}
CW = {"initial_const": 1.0, "binary_search_steps": 5, "max_iter": 100, "learning_rate": 0.05}
TRAIN = {"epochs": 40, "batch_size": 50, "lr": 2e-3, "weight_decay": 1e-4}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def load_images():
    """Digits scaled to [0, 1] and upsampled from 8x8 to 28x28 with bilinear interpolation: [N, 1, 28, 28]."""
    import torch
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]
    big = torch.nn.functional.interpolate(small, size=(SIDE, SIDE), mode="bilinear", align_corners=False)
    return big.clamp(0.0, 1.0).numpy(), digits.target.astype(np.int64)


def split(x: np.ndarray, y: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Disjoint stratified train / calibration / test splits."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    train, rest = train_test_split(idx, train_size=SPLIT_SIZES["train"], stratify=y, random_state=SPLIT_SEED)
    calib, test = train_test_split(rest, train_size=SPLIT_SIZES["calib"], stratify=y[rest],
                                   random_state=SPLIT_SEED)
    assert len(test) == SPLIT_SIZES["test"]
    assert not (set(train) & set(calib) or set(train) & set(test) or set(calib) & set(test))
    return {name: (x[np.sort(part)], y[np.sort(part)]) for name, part in
            (("train", train), ("calib", calib), ("test", test))}


def build_model():
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10),
    )


def train(x: np.ndarray, y: np.ndarray):
    import torch

    torch.manual_seed(SEED)
    model = build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=TRAIN["lr"], weight_decay=TRAIN["weight_decay"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=TRAIN["epochs"])
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(SEED)
    model.train()
    for epoch in range(TRAIN["epochs"]):
        order = torch.randperm(len(xt), generator=generator)
        total = 0.0
        for start in range(0, len(xt), TRAIN["batch_size"]):
            batch = order[start:start + TRAIN["batch_size"]]
            loss = torch.nn.functional.cross_entropy(model(xt[batch]), yt[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        scheduler.step()
        if epoch % 10 == 9:
            log(f"epoch {epoch + 1}: train loss {total / len(xt):.4f}")
    return model.eval()


def export_onnx(model, path: Path, sample: np.ndarray) -> None:
    import torch

    kwargs = dict(input_names=["image"], output_names=["logits"], opset_version=17,
                  dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}})
    try:
        torch.onnx.export(model, (torch.from_numpy(sample),), str(path), dynamo=False, **kwargs)
    except TypeError:  # exporters without the dynamo switch
        torch.onnx.export(model, (torch.from_numpy(sample),), str(path), **kwargs)
    import onnx

    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def ort_session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ort_predict(sess, x: np.ndarray) -> np.ndarray:
    return sess.run(["logits"], {"image": x})[0].argmax(1)


def check_ort_matches_torch(model, sess, x: np.ndarray) -> float:
    import torch

    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    got = sess.run(["logits"], {"image": x})[0]
    err = float(np.abs(got - expected).max())
    if err > 1e-4 or not (got.argmax(1) == expected.argmax(1)).all():
        raise SystemExit(f"onnxruntime does not reproduce torch's logits (max abs diff {err})")
    return err


def attack_plan() -> dict[str, tuple[str, dict]]:
    """Attack name -> (function name in pyguard.eval.whitebox, keyword parameters)."""
    return {
        "fgsm_0.1": ("fgsm", {"eps": 0.1}),
        "fgsm_0.3": ("fgsm", {"eps": 0.3}),
        "bim_0.1": ("bim", {"eps": 0.1, "step": 0.02, "steps": 20}),
        "bim_0.3": ("bim", {"eps": 0.3, "step": 0.06, "steps": 20}),
        "cw_l2_0": ("carlini_wagner_l2", {"confidence": 0.0, **CW}),
        "cw_l2_10": ("carlini_wagner_l2", {"confidence": 10.0, **CW}),
        "deepfool": ("deepfool", {"overshoot": 0.02, "max_iter": 50}),
        "jsma": ("jsma", {"theta": 1.0, "gamma": 0.145, "seed": ATTACK_SEED}),
    }


def run_attacks(model, sess, x: np.ndarray, y: np.ndarray) -> tuple[dict, dict]:
    """Attack the correctly classified test images; success and distortion measured with onnxruntime."""
    from pyguard.eval import whitebox

    idx = np.flatnonzero(ort_predict(sess, x) == y)
    arrays, stats = {}, {}
    for name, (fn_name, params) in attack_plan().items():
        start = time.perf_counter()
        x_adv = getattr(whitebox, fn_name)(model, x[idx], y[idx], **params)
        seconds = time.perf_counter() - start
        success = ort_predict(sess, x_adv) != y[idx]
        delta = (x_adv - x[idx]).reshape(len(idx), -1)
        ok = delta[success]
        stats[name] = {
            "attack": fn_name, "params": params, "attacked": int(len(idx)),
            "success_rate": round(float(success.mean()), 4),
            "mean_l2_successful": round(float(np.linalg.norm(ok, axis=1).mean()), 4) if len(ok) else None,
            "mean_linf_successful": round(float(np.abs(ok).max(1).mean()), 4) if len(ok) else None,
            "seconds": round(seconds, 1),
        }
        arrays[f"{name}_x"] = x_adv.astype(np.float32)
        arrays[f"{name}_idx"] = idx.astype(np.int64)
        log(f"{name}: success {success.mean():.3f} on {len(idx)} images ({seconds:.1f} s)")
    return arrays, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "pyguard" / "data" / "digits")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    args.out.mkdir(parents=True, exist_ok=True)

    x, y = load_images()
    parts = split(x, y)
    log("training")
    model = train(*parts["train"])
    model_path = args.out / "model.onnx"
    export_onnx(model, model_path, parts["test"][0][:2])
    sess = ort_session(model_path)
    max_diff = max(check_ort_matches_torch(model, sess, parts[p][0]) for p in ("calib", "test"))
    accuracy = {p: round(float((ort_predict(sess, parts[p][0]) == parts[p][1]).mean()), 4) for p in parts}
    log(f"accuracy (onnxruntime): {accuracy}; max |ORT - torch| logits = {max_diff:.2e}")

    arrays, stats = run_attacks(model, sess, *parts["test"])
    for name in ("calib", "test"):
        np.savez_compressed(args.out / f"{name}.npz", x=parts[name][0], y=parts[name][1])
    np.savez_compressed(args.out / "adv.npz", **arrays)

    import onnxruntime
    import sklearn

    meta = {
        "dataset": "scikit-learn load_digits (1797 8x8 images, 0..16) scaled to [0,1], bilinear upsampling "
                   "to 28x28 (torch interpolate, align_corners=False)",
        "input": {"name": "image", "shape": ["N", 1, SIDE, SIDE], "dtype": "float32", "range": [0.0, 1.0]},
        "output": {"name": "logits", "shape": ["N", 10]},
        "splits": {k: int(len(v[1])) for k, v in parts.items()},
        "accuracy": accuracy,
        "ort_vs_torch_max_abs_logit_diff": max_diff,
        "attacks": stats,
        "seeds": {"model": SEED, "split": SPLIT_SEED, "attacks": ATTACK_SEED},
        "training": TRAIN,
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                     "scikit-learn": sklearn.__version__, "numpy": np.__version__},
        "opset": 17,
        "generated_by": "tools/make_demo.py",
    }
    (args.out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    sizes = {f.name: os.path.getsize(f) for f in sorted(args.out.iterdir())}
    log(f"wrote {args.out}: {sizes}")


if __name__ == "__main__":
    main()
