"""Adaptive attack on the fused detector (pyguard.eval.adaptive_fused) vs the same-budget non-adaptive PGD.

For each demo set: the fused profile of tools/fused_eval.py, 100 correctly classified clean test images,
L-inf PGD (BIM, same steps and step size) with and without knowledge of the detector. Prints the attack
success rate, the fused detector's detection rate on successful examples, and the evasion rate (successful
and not flagged, over all attacked images).

    python tools/adaptive_eval.py [--n 100] [--steps 30]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fused_eval import LOADERS, calibrate, options  # noqa: E402

import pyguard  # noqa: E402
from pyguard.eval.adaptive_fused import adaptive_fused_pgd  # noqa: E402
from pyguard.eval.onnx_torch import to_torch  # noqa: E402
from pyguard.eval.whitebox import bim  # noqa: E402

EPS = {"digits": (0.1, 0.3), "photos": (8 / 255, 16 / 255)}


def judge(sess, profile, x, y):
    outs, report = sess.run_with_report([profile.output_name], {profile.input.name: x})
    wrong = np.asarray(outs[0]).argmax(1) != y
    return wrong, report.flagged


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--sets", default="digits,photos")
    ap.add_argument("--c", type=float, default=1.0, help="weight of the detector penalty")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    print("| set | eps | attack | success | fused detection of successful | evasion (success, unflagged) |")
    print("|---|---|---|---|---|---|")
    for name in args.sets.split(","):
        demo = LOADERS[name]()
        profile = calibrate(demo, "fused")
        sess = pyguard.InferenceSession(str(demo.model_path), options(), profile=profile)
        model = to_torch(str(demo.model_path))
        ok = judge(sess, profile, demo.x_test, demo.y_test)[0] == 0
        idx = np.flatnonzero(ok)[: args.n]
        x, y = demo.x_test[idx], demo.y_test[idx]
        quantize = name == "photos"
        for eps in EPS[name]:
            step = eps / 8
            plain = bim(model, x, y, eps, step=step, steps=args.steps)
            if quantize:
                plain = (np.rint(plain * 255) / 255).astype(np.float32)
            adaptive = adaptive_fused_pgd(
                model, x, y, profile, sess, eps=eps, step=step, steps=args.steps, c=args.c, quantize=quantize
            )
            for label, xa in (("non-adaptive PGD", plain), ("adaptive (all signals)", adaptive)):
                wrong, flagged = judge(sess, profile, xa, y)
                det = flagged[wrong].mean() if wrong.any() else float("nan")
                print(
                    f"| {name} | {eps:.4g} | {label} | {wrong.mean():.1%} | {det:.1%} | "
                    f"{np.mean(wrong & ~flagged):.1%} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
