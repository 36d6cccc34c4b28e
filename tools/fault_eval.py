"""The fault-injection evaluation of issue 4: SDC rates unprotected, restricted and detected.

    python tools/fault_eval.py [--injections 1000] [--inputs 64] [--models residual,demo]
                               [--mode clamp|zero] [--placement every|fused] [--per-channel] [--scrub-nan]

For each trained model (the residual digits CNN of tools/train_residual.py, and the demo digits classifier
when pyguard.data has it): calibrate a GuardProfile with activation ranges on the calibration split, then run
the seeded campaign on the test split and print the table (the same as ``pyguard faults``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import pyguard  # noqa: E402
from pyguard import faults  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pyguard", "data")


def residual():
    d = np.load(os.path.join(DATA, "residual_digits.npz"))
    return os.path.join(DATA, "residual_digits.onnx"), d["x_cal"], d["y_cal"], d["x_test"], d["y_test"]


def demo():
    from pyguard.data import load_digits_demo  # from the demo branch

    demo = load_digits_demo()
    return str(demo.model_path), demo.x_calib, demo.y_calib, demo.x_test, demo.y_test


MODELS = {"residual": residual, "demo": demo}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--injections", type=int, default=1000)
    parser.add_argument("--inputs", type=int, default=64)
    parser.add_argument("--models", default="residual,demo")
    parser.add_argument("--bits", default="all")
    parser.add_argument("--activation-fpr", type=float, default=0.002)
    parser.add_argument("--placement", default="every", choices=("every", "fused"))
    parser.add_argument("--mode", default="clamp", choices=("clamp", "zero"))
    parser.add_argument("--scrub-nan", action="store_true")
    parser.add_argument("--per-channel", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in args.models.split(","):
        try:
            path, x_cal, y_cal, x_test, y_test = MODELS[name]()
        except (ImportError, FileNotFoundError, KeyError, AttributeError) as e:
            print(f"\n## {name}: not available ({type(e).__name__}: {e})")
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            profile = pyguard.calibrate(path, x_cal, squeezers=(), activations=True, activation_budget=None,
                                        activation_fpr=args.activation_fpr)
        acts = profile.activations
        t0 = time.perf_counter()
        result = faults.run_campaign(path, profile, x_test, y_test, injections=args.injections,
                                     inputs=args.inputs, bits=args.bits, seed=args.seed, clean_data=x_test,
                                     clean_labels=y_test, placement=args.placement,
                                     mode=args.mode, scrub_nan=args.scrub_nan, per_channel=args.per_channel)
        print(f"\n## {name}: {os.path.basename(path)}; {len(acts.tensors)} activations profiled on "
              f"{len(x_cal)} calibration images ({acts.preset}), {len(acts.monitor.tensors)} monitored, "
              f"activation fpr {acts.fpr}; restriction: mode {args.mode}, placement {args.placement}, "
              f"per-channel {args.per_channel}, NaN scrub {args.scrub_nan}; "
              f"campaign {time.perf_counter() - t0:.1f} s\n")
        print(result.table())


if __name__ == "__main__":
    main()
