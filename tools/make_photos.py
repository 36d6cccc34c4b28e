"""Build the natural-photo demo set: a small CNN that tells which bundled photo a 32x32 patch comes from.

Photos: scikit-image's astronaut, coffee, chelsea, rocket, immunohistochemistry, hubble_deep_field, retina
and scikit-learn's china and flower (9 classes). Each photo is cut into three vertical bands: the left 60%
gives training patches, the next 20% calibration patches, the last 20% test patches, so calibration and test
come from different parts of each photo (a spatial shift, as a deployed model sees). Patches are uint8 on
the 8-bit grid, fed as float32 in [0, 1] (NCHW).

Adversarial examples (pyguard.eval.whitebox, white-box on the torch model) are made from correctly classified
test patches and quantized to the 8-bit grid (``round(255 x) / 255``) as a camera pipeline would deliver
them; success is measured with onnxruntime after quantization. Output: the same files as the digits demo
(model.onnx, calib.npz, test.npz, adv.npz, meta.json) in pyguard/data/photos/; calib.npz and test.npz also
hold each patch's position (``row``, ``col``: its centre as a fraction of the photo's height and width), so
an evaluation can group calibration patches by image region (``pyguard.calibrate(..., groups=...)``).

    python tools/make_photos.py                  # a few minutes on 2 CPU threads
    python tools/make_photos.py --add-positions  # only add the positions to existing files (seconds)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT))

from make_demo import check_ort_matches_torch, export_onnx, log, ort_predict, ort_session  # noqa: E402

SEED = 20261122
SIDE = 32
PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "china",
    "flower",
)
BANDS = {"train": (0.0, 0.6), "calib": (0.6, 0.8), "test": (0.8, 1.0)}
COUNTS = {"train": 700, "calib": 70, "test": 70}  # patches per photo
ATTACKED = 180  # correctly classified test patches attacked
TRAIN = {"epochs": 10, "batch_size": 64, "lr": 2e-3, "weight_decay": 1e-4}
CW = {
    "confidence": 0.0,
    "initial_const": 1.0,
    "binary_search_steps": 3,
    "max_iter": 50,
    "learning_rate": 0.01,
}


def load_photos() -> list[np.ndarray]:
    import skimage.data
    from sklearn.datasets import load_sample_images

    sk = {name: img for name, img in zip(("china", "flower"), load_sample_images().images)}
    return [sk[n] if n in sk else getattr(skimage.data, n)()[..., :3] for n in PHOTOS]


def patches(photos, part: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patches, labels and positions (centre row and column as fractions of the photo's height/width)."""
    lo, hi = BANDS[part]
    xs, ys, pos = [], [], []
    for label, img in enumerate(photos):
        h, w = img.shape[:2]
        c0, c1 = int(lo * w), int(hi * w) - SIDE
        for _ in range(COUNTS[part]):
            r, c = rng.integers(0, h - SIDE + 1), rng.integers(c0, c1 + 1)
            xs.append(img[r : r + SIDE, c : c + SIDE].transpose(2, 0, 1))
            ys.append(label)
            pos.append(((r + SIDE / 2) / h, (c + SIDE / 2) / w))
    x = (np.stack(xs).astype(np.float32) / 255.0).astype(np.float32)
    return x, np.asarray(ys, np.int64), np.asarray(pos, np.float32)


def save_split(path: Path, x: np.ndarray, y: np.ndarray, pos: np.ndarray) -> None:
    np.savez_compressed(path, x=to_uint8(x), y=y, row=pos[:, 0], col=pos[:, 1])


def add_positions(out: Path) -> None:
    """Replay the seeded sampling and add the patch positions to existing calib/test files (the patches must
    come out identical, which proves the positions are theirs)."""
    rng = np.random.default_rng(SEED)
    parts = {p: patches(load_photos(), p, rng) for p in BANDS}
    for p in ("calib", "test"):
        with np.load(out / f"{p}.npz") as f:
            stored_x, stored_y = f["x"], f["y"]
        x, y, pos = parts[p]
        if not (np.array_equal(to_uint8(x), stored_x) and np.array_equal(y, stored_y)):
            raise SystemExit(f"{p}.npz does not match the seeded sampling: regenerate the whole set")
        save_split(out / f"{p}.npz", x, y, pos)
        log(f"{p}: positions added")


def build_model():
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(3, 24, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(24, 48, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(48, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 128),
        nn.ReLU(),
        nn.Linear(128, len(PHOTOS)),
    )


def train(x: np.ndarray, y: np.ndarray):
    import torch

    torch.manual_seed(SEED)
    model = build_model()
    opt = torch.optim.Adam(model.parameters(), lr=TRAIN["lr"], weight_decay=TRAIN["weight_decay"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=TRAIN["epochs"])
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(SEED)
    model.train()
    for epoch in range(TRAIN["epochs"]):
        order = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for start in range(0, len(xt), TRAIN["batch_size"]):
            b = order[start : start + TRAIN["batch_size"]]
            xb = xt[b]
            flip = torch.rand(len(b), generator=gen) < 0.5  # horizontal flips: cheap augmentation
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            loss = torch.nn.functional.cross_entropy(model(xb), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
        sched.step()
        log(f"epoch {epoch + 1}: train loss {total / len(xt):.4f}")
    return model.eval()


def quantize(x: np.ndarray) -> np.ndarray:
    return (np.rint(np.clip(x, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def to_uint8(x: np.ndarray) -> np.ndarray:
    u = np.rint(x * 255.0)
    assert np.array_equal(u / 255.0, x.astype(np.float64)) or np.abs(u / 255.0 - x).max() < 1e-6
    return u.astype(np.uint8)


def attack_plan() -> dict[str, tuple[str, dict]]:
    e8, e16 = 8 / 255, 16 / 255
    return {
        "fgsm_8": ("fgsm", {"eps": e8}),
        "fgsm_16": ("fgsm", {"eps": e16}),
        "pgd_8": ("pgd_linf", {"eps": e8, "step": e8 / 4, "steps": 20, "seed": 0}),
        "pgd_16": ("pgd_linf", {"eps": e16, "step": e16 / 4, "steps": 20, "seed": 0}),
        "cw_l2_0": ("carlini_wagner_l2", CW),
        "deepfool": ("deepfool", {"overshoot": 0.02, "max_iter": 50}),
    }


def run_attacks(model, sess, x: np.ndarray, y: np.ndarray) -> tuple[dict, dict]:
    from pyguard.eval import whitebox

    idx = np.flatnonzero(ort_predict(sess, x) == y)[:ATTACKED]
    arrays, stats = {}, {}
    for name, (fn, params) in attack_plan().items():
        t0 = time.perf_counter()
        x_adv = quantize(getattr(whitebox, fn)(model, x[idx], y[idx], **params))
        seconds = time.perf_counter() - t0
        success = ort_predict(sess, x_adv) != y[idx]
        delta = (x_adv - x[idx]).reshape(len(idx), -1)[success]
        stats[name] = {
            "attack": fn,
            "params": params,
            "attacked": int(len(idx)),
            "quantized": "8-bit",
            "success_rate": round(float(success.mean()), 4),
            "mean_l2_successful": round(float(np.linalg.norm(delta, axis=1).mean()), 4)
            if len(delta)
            else None,
            "mean_linf_successful": round(float(np.abs(delta).max(1).mean()), 4) if len(delta) else None,
            "seconds": round(seconds, 1),
        }
        arrays[f"{name}_x"], arrays[f"{name}_idx"] = x_adv, idx.astype(np.int64)
        log(f"{name}: success {success.mean():.3f} on {len(idx)} patches ({seconds:.1f} s)")
    return arrays, stats


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "pyguard" / "data" / "photos")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--add-positions", action="store_true",
                        help="only add patch positions to existing calib/test files (no training)")
    args = parser.parse_args()
    if args.add_positions:
        add_positions(args.out)
        return
    import torch

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    photos = load_photos()
    rng = np.random.default_rng(SEED)
    parts = {p: patches(photos, p, rng) for p in BANDS}
    model = train(*parts["train"][:2])
    path = args.out / "model.onnx"
    export_onnx(model, path, parts["test"][0][:2])
    sess = ort_session(path)
    diff = max(check_ort_matches_torch(model, sess, parts[p][0]) for p in ("calib", "test"))
    accuracy = {p: round(float((ort_predict(sess, parts[p][0]) == parts[p][1]).mean()), 4) for p in parts}
    log(f"accuracy (onnxruntime): {accuracy}")
    arrays, stats = run_attacks(model, sess, *parts["test"][:2])
    for p in ("calib", "test"):  # every image is on the 8-bit grid: stored as uint8, loaded as float32 / 255
        save_split(args.out / f"{p}.npz", *parts[p])
    np.savez_compressed(
        args.out / "adv.npz", **{k: to_uint8(v) if k.endswith("_x") else v for k, v in arrays.items()}
    )
    meta = {
        "dataset": f"32x32 patches of bundled photos, class = source photo; bands of columns: {BANDS}",
        "photos": list(PHOTOS),
        "input": {"name": "image", "shape": ["N", 3, SIDE, SIDE], "dtype": "float32", "range": [0.0, 1.0]},
        "output": {"name": "logits", "shape": ["N", len(PHOTOS)]},
        "splits": {p: int(len(parts[p][1])) for p in parts},
        "accuracy": accuracy,
        "ort_vs_torch_max_abs_logit_diff": diff,
        "attacks": stats,
        "seeds": {"all": SEED},
        "training": TRAIN,
        "versions": {"torch": torch.__version__, "numpy": np.__version__},
        "opset": 17,
        "generated_by": "tools/make_photos.py",
    }
    (args.out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    log("done")


if __name__ == "__main__":
    main()
