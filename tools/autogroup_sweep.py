"""How the fused detector's default calibration (no ``groups=``) was chosen: the alternatives, measured.

Each variant is run on the photo set's official shifted split (clean FPR with its 99% interval, pooled
detection beside Xu's), the six spatial calibration -> test assignments and random 50/50 splits (the FPR on
exchangeable data), like ``tools/fused_eval.py``:

* ``default``: the library's default (random and content-cluster foldings pooled, :mod:`pyguard.fusion`);
  ``--seed-offset S`` shifts the seeds of its foldings and k-means runs, ``--repeats R`` their number.
* ``clusters:<descriptor>:<k>``: explicit ``groups=`` = one seeded k-means clustering of the calibration
  samples, alone (no random folds). Descriptors: ``content`` (:func:`pyguard.signals.content_descriptor`),
  ``signals`` (the cheap input signals and the logit margin), ``thumb`` (4x4 thumbnail, 8 principal
  components); ``clusters:class:0`` groups by the model's predicted class.

    python tools/autogroup_sweep.py default clusters:content:10 [--splits 10]
                                    [--parts official,spatial,random] [--seed-offset 5] [--repeats 1]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fused_eval as fe  # noqa: E402
import onnxruntime as ort  # noqa: E402

from pyguard import fusion  # noqa: E402
from pyguard import signals as sig  # noqa: E402
from pyguard.metrics import binomial_interval, roc_auc  # noqa: E402


def logits(model, x):
    sess = ort.InferenceSession(model, fe.options())
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def descriptor(kind, model, x):
    if kind == "content":
        return sig.content_descriptor(x, "NCHW")
    if kind == "signals":
        names = tuple(n for n in sig.INPUT_SIGNALS if n != "off_grid")
        values = sig.input_signals(x, "NCHW", names=names)
        values["margin"] = sig.output_signals(logits(model, x), "logits")["margin"]
        return np.column_stack(list(values.values()))
    if kind == "thumb":
        n, c, h, w = x.shape
        t = x[:, :, : h // 4 * 4, : w // 4 * 4].astype(np.float64)
        t = t.reshape(n, c, 4, h // 4, 4, w // 4).mean(axis=(3, 5)).reshape(n, -1)
        t -= t.mean(axis=0)
        return t @ np.linalg.svd(t, full_matrices=False)[2][:8].T
    raise ValueError(f"unknown descriptor {kind!r}")


def rule_for(variant, model, x):
    """calibrate() options of a variant for calibration images x."""
    if variant == "default":
        return {}
    _, kind, k = variant.split(":")
    if kind == "class":
        return {"groups": logits(model, x).argmax(axis=1)}
    return {"groups": fusion.kmeans(fusion.robust_standardize(descriptor(kind, model, x)), int(k), seed=0)}


def official(demo, variant):
    model = str(demo.model_path)
    prof = fe.calibrate(demo, "fused", x=demo.x_calib, rule=rule_for(variant, model, demo.x_calib))
    xu = fe.calibrate(demo, "squeeze", fe.XU["photos"])
    _, flags, clean = fe.reports(model, prof, demo.x_test)
    _, xu_flags, _ = fe.reports(model, xu, demo.x_test)
    det, xu_det, adv = [], [], []
    for xa, idx in demo.adversarial.values():
        pred, xf, _ = fe.reports(model, xu, xa)
        _, ff, fs = fe.reports(model, prof, xa)
        ok = pred != demo.y_test[idx]
        det.append(ff[ok])
        xu_det.append(xf[ok])
        adv.append(fs["fused"][ok])
    det, xu_det, adv = (np.concatenate(v) for v in (det, xu_det, adv))
    lo, hi = binomial_interval(int(flags.sum()), flags.size)
    print(f"official split: fused FPR {flags.mean():.3f} (99% CI {lo:.3f}-{hi:.3f}), pooled detection "
          f"{det.mean():.1%} (AUC {roc_auc(clean['fused'], adv):.3f}); Xu FPR {xu_flags.mean():.3f}, "
          f"detection {xu_det.mean():.1%}")


def spatial(demo, variant):
    model = str(demo.model_path)
    x = np.concatenate([demo.x_calib, demo.x_test])
    row, col = (np.concatenate(v) for v in zip(fe.positions("calib"), fe.positions("test")))
    rates = []
    for cal in fe.shifted_assignments(row, col).values():
        prof = fe.calibrate(demo, "fused", x=x[cal], rule=rule_for(variant, model, x[cal]))
        rates.append(fe.reports(model, prof, x[~cal])[1].mean())
    r = np.asarray(rates)
    listed = " ".join(f"{v:.3f}" for v in r)
    print(f"six spatial assignments: {listed}; mean {r.mean():.3f}, sd {r.std():.3f}")


def random_splits(demo, variant, splits):
    model = str(demo.model_path)
    x = np.concatenate([demo.x_calib, demo.x_test])
    rng = np.random.default_rng(0)
    rates = []
    for _ in range(splits):
        perm = rng.permutation(len(x))
        cal, held = x[perm[: len(x) // 2]], x[perm[len(x) // 2 :]]
        prof = fe.calibrate(demo, "fused", x=cal, rule=rule_for(variant, model, cal))
        rates.append(fe.reports(model, prof, held)[1].mean())
    r = np.asarray(rates)
    print(f"{splits} random 50/50 splits: mean {r.mean():.3f}, sd {r.std():.3f}, min {r.min():.3f}, "
          f"max {r.max():.3f}")


def patch_default_foldings(seed_offset, repeats):
    """Evaluation only: shift the seeds (and set the number) of the default's foldings."""
    original = fusion.content_foldings

    def foldings(n, folds, descriptor, seed=0, _repeats=None):
        return original(n, folds, descriptor, seed + seed_offset, repeats)

    fusion.content_foldings = foldings


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--parts", default="official,spatial,random")
    ap.add_argument("--seed-offset", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=fusion.REPEATS)
    args = ap.parse_args()
    if (args.seed_offset, args.repeats) != (0, fusion.REPEATS):
        patch_default_foldings(args.seed_offset, args.repeats)
    warnings.simplefilter("ignore")
    demo = fe.LOADERS["photos"]()
    parts = args.parts.split(",")
    for variant in args.variants:
        print(f"\n## {variant} (seed offset {args.seed_offset}, repeats {args.repeats})")
        if "official" in parts:
            official(demo, variant)
        if "spatial" in parts:
            spatial(demo, variant)
        if "random" in parts:
            random_splits(demo, variant, args.splits)


if __name__ == "__main__":
    main()
