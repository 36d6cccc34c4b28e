"""Measure the fused detector beside Xu's feature squeezing on the digits and the natural-photo demo sets.

For each set: calibrate on the clean calibration split only, then on the held-out clean test split and on
every attack's successful examples report detection, ROC-AUC and the clean false-positive rate (with a 99%
Wilson interval); the cascade's detection and forwarded share; and the spread of the clean FPR over random
calibration/test splits of all clean images. Prints markdown tables.

Photos: calibration and test patches come from different column bands of each photo (a spatial shift).
``--groups default`` (the default) calibrates the fused detector as a user would, without groups (random and
content-cluster foldings pooled, see :mod:`pyguard.fusion`); ``--groups random`` uses random folds only;
``--groups regions`` passes ``groups=`` = the image region of each calibration patch (3 row bands x 2 column
bands of the calibration patches' own extent), so the threshold is cross-fitted over regions;
``--confidence 0.9`` adds the finite-sample bound. The spread under
shift is measured over six region assignments of all clean patches (calibrate on one part, test on the
other: the two column bands either way round, top/bottom halves either way, interleaved column quarters
either way).

    python tools/fused_eval.py [--splits 20] [--sets digits,photos] [--combine fisher,min_p]
                               [--groups default|random|regions] [--confidence 0.9]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyguard  # noqa: E402
from pyguard.data import PHOTOS_DIR, load_digits_demo, load_photos_demo  # noqa: E402
from pyguard.metrics import binomial_interval, roc_auc  # noqa: E402

XU = {"digits": ("bit_depth:1", "median:2"), "photos": ("bit_depth:5", "median:2")}
LOADERS = {"digits": load_digits_demo, "photos": load_photos_demo}


def options():
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return so


def reports(model, profile, x, cascade=False, batch=256):
    sess = pyguard.InferenceSession(model, options(), profile=profile, cascade=cascade)
    name = profile.input.name
    parts = [
        sess.run_with_report(None, {name: np.ascontiguousarray(x[i : i + batch])})
        for i in range(0, len(x), batch)
    ]
    pred = np.concatenate([np.asarray(o[0]).reshape(len(r), -1).argmax(1) for o, r in parts])
    flagged = np.concatenate([r.flagged for _, r in parts])
    keys = parts[0][1].scores.keys()
    scores = {
        k: np.concatenate([np.asarray(r.scores[k], np.float64).reshape(len(r), -1)[:, 0] for _, r in parts])
        for k in keys
        if np.ndim(parts[0][1].scores[k]) >= 1
    }
    return pred, flagged, scores


def calibrate(demo, detector, squeezers=None, combine="fisher", x=None, rule=None):
    """Xu's detector alone (no activation check), or the fused one fed by every activation output;
    ``rule``: the fused calibration options (``groups``, ``fpr_confidence``)."""
    fused = detector == "fused"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pyguard.calibrate(
            str(demo.model_path),
            demo.x_calib if x is None else x,
            detector=detector,
            squeezers=squeezers,
            combine=combine,
            activations=fused,
            activation_budget=None,
            sess_options=options(),
            **(rule or {}),
        )


def positions(split):
    """(row, col) of each photo patch's centre as fractions of its photo (None when the files lack them)."""
    with np.load(PHOTOS_DIR / f"{split}.npz") as f:
        return (f["row"], f["col"]) if "row" in f.files else None


def region_groups(row, col):
    """3 row bands x 2 column bands, cut at the calibration patches' own tertiles / median."""
    rows = np.searchsorted(np.quantile(row, [1 / 3, 2 / 3]), row)
    cols = (col > np.median(col)).astype(np.int64)
    return rows * 2 + cols


def fused_rule(args, pos):
    """Calibration options of the fused detector for calibration patches at positions ``pos``."""
    rule = {}
    if args.confidence is not None:
        rule["fpr_confidence"] = args.confidence
    if args.groups == "regions" and pos is not None:
        rule["groups"] = region_groups(*pos)
    elif args.groups == "random":
        rule["groups"] = "random"
    return rule


def evaluate(set_name, combine, args):
    demo = LOADERS[set_name]()
    model = str(demo.model_path)
    pos = positions("calib") if set_name == "photos" else None
    rule = fused_rule(args, pos)
    xu = calibrate(demo, "squeeze", XU[set_name])
    fused = calibrate(demo, "fused", combine=combine, rule=rule)
    print(
        f"\n## {set_name} ({combine}; folding: {fused.fused.folding}, "
        f"groups/clusters: {fused.fused.n_groups}, "
        f"fpr_confidence: {args.confidence}): fused squeezers chosen from clean data: {fused.squeezers}; "
        f"signals: {list(fused.fused.signals)}"
    )
    _, xu_clean_flag, xu_clean = reports(model, xu, demo.x_test)
    _, f_clean_flag, f_clean = reports(model, fused, demo.x_test)
    _, c_clean_flag, c_clean = reports(model, fused, demo.x_test, cascade=True)
    n = len(demo.x_test)
    for label, flags in (("Xu", xu_clean_flag), ("fused", f_clean_flag), ("cascade", c_clean_flag)):
        lo, hi = binomial_interval(int(flags.sum()), n)
        print(
            f"clean test FPR {label}: {flags.mean():.3f} ({int(flags.sum())}/{n}, 99% CI {lo:.3f}-{hi:.3f})"
        )
    print(f"cascade forwarded share of clean test traffic: {c_clean['forwarded'].mean():.3f}")
    print("\n| attack | successful | Xu det | Xu AUC | fused det | fused AUC | cascade det |")
    print("|---|---|---|---|---|---|---|")
    pooled = {"xu": [], "fused": [], "cascade": [], "xu_s": [], "f_s": []}
    per_signal = {}
    for name, (xa, idx) in demo.adversarial.items():
        pred, xf, xs = reports(model, xu, xa)
        _, ff, fs = reports(model, fused, xa)
        _, cf, _ = reports(model, fused, xa, cascade=True)
        ok = pred != demo.y_test[idx]
        if not ok.any():
            continue
        row = (
            ok.sum(),
            xf[ok].mean(),
            roc_auc(xu_clean["squeeze"], xs["squeeze"][ok]),
            ff[ok].mean(),
            roc_auc(f_clean["fused"], fs["fused"][ok]),
            cf[ok].mean(),
        )
        print(
            f"| {name} | {row[0]} | {row[1]:.1%} | {row[2]:.3f} | {row[3]:.1%} | {row[4]:.3f} "
            f"| {row[5]:.1%} |"
        )
        pooled["xu"].append(xf[ok])
        pooled["fused"].append(ff[ok])
        pooled["cascade"].append(cf[ok])
        pooled["xu_s"].append(xs["squeeze"][ok])
        pooled["f_s"].append(fs["fused"][ok])
        for sig in fused.fused.signals:
            per_signal.setdefault(sig, []).append(fs[sig][ok])
    cat = {k: np.concatenate(v) for k, v in pooled.items()}
    print(
        f"| **pooled** | {len(cat['xu'])} | {cat['xu'].mean():.1%} "
        f"| {roc_auc(xu_clean['squeeze'], cat['xu_s']):.3f} | {cat['fused'].mean():.1%} "
        f"| {roc_auc(f_clean['fused'], cat['f_s']):.3f} | {cat['cascade'].mean():.1%} |"
    )
    for label, clean_s, adv_s in (
        ("Xu", xu_clean["squeeze"], cat["xu_s"]),
        ("fused", f_clean["fused"], cat["f_s"]),
    ):
        t = np.quantile(clean_s, 0.95, method="higher")  # an oracle threshold: 5% of the clean *test* scores
        print(
            f"pooled detection of {label} at a threshold matched to 5% clean test FPR (analysis only, not "
            f"deployable): {np.mean(adv_s > t):.1%} (clean test FPR {np.mean(clean_s > t):.1%})"
        )
    print(
        "\nper-signal pooled ROC-AUC (suspicious tail; two-sided signals by distance from the clean median):"
    )
    aucs = []
    for sig, parts in per_signal.items():
        adv, clean = np.concatenate(parts), f_clean[sig]
        if pyguard.signals.tail_of(sig) == "two-sided":
            med = np.median(clean)
            adv, clean = np.abs(adv - med), np.abs(clean - med)
        aucs.append(f"{sig} {roc_auc(clean, adv):.3f}")
    print(", ".join(aucs))
    pos_all = None if pos is None else tuple(np.concatenate(v) for v in zip(pos, positions("test")))
    if args.splits:
        fpr_spread(demo, combine, args, pos_all)
    if pos_all is not None:
        shifted_spread(demo, combine, args, pos_all)


def shifted_assignments(row, col):
    """Six spatial calibration/test assignments of all clean patches (mask = calibration part)."""
    band = col < 0.8  # the calibration band (0.6-0.8) vs the test band (0.8-1.0)
    interleaved = (col < 0.7) | ((col >= 0.8) & (col < 0.9))
    top = row < 0.5
    return {
        "calib band -> test band": band,
        "test band -> calib band": ~band,
        "top half -> bottom half": top,
        "bottom half -> top half": ~top,
        "col quarters 1,3 -> 2,4": interleaved,
        "col quarters 2,4 -> 1,3": ~interleaved,
    }


def shifted_spread(demo, combine, args, pos_all):
    """Clean FPR when calibration and test come from different image regions, over six assignments."""
    x = np.concatenate([demo.x_calib, demo.x_test])
    row, col = pos_all
    print("\n| calibration region -> test region | n calib / test | Xu FPR | fused FPR (99% CI) "
          "| cascade FPR |")
    print("|---|---|---|---|---|")
    rates, xu_rates = [], []
    for label, cal in shifted_assignments(row, col).items():
        rule = fused_rule(args, (row[cal], col[cal]))
        prof = calibrate(demo, "fused", combine=combine, x=x[cal], rule=rule)
        flags = reports(str(demo.model_path), prof, x[~cal])[1]
        casc = reports(str(demo.model_path), prof, x[~cal], cascade=True)[1]
        xu = reports(str(demo.model_path), calibrate(demo, "squeeze", XU["photos"], x=x[cal]), x[~cal])[1]
        lo, hi = binomial_interval(int(flags.sum()), flags.size)
        rates.append(flags.mean())
        xu_rates.append(xu.mean())
        print(f"| {label} | {cal.sum()} / {(~cal).sum()} | {xu.mean():.3f} "
              f"| {flags.mean():.3f} ({lo:.3f}-{hi:.3f}) | {casc.mean():.3f} |")
    for label, r in (("fused", np.asarray(rates)), ("Xu", np.asarray(xu_rates))):
        print(f"clean FPR under spatial shift over {r.size} assignments ({label}): mean {r.mean():.3f}, "
              f"sd {r.std():.3f}, min {r.min():.3f}, max {r.max():.3f}")


def fpr_spread(demo, combine, args, pos_all):
    """Calibrate on a random half of all clean images, measure the FPR on the other half, repeat."""
    x = np.concatenate([demo.x_calib, demo.x_test])
    rng = np.random.default_rng(0)
    rates, cascade_rates = [], []
    splits = args.splits
    for _ in range(splits):
        perm = rng.permutation(len(x))
        cal, held = x[perm[: len(x) // 2]], x[perm[len(x) // 2 :]]
        pos = None if pos_all is None else tuple(v[perm[: len(x) // 2]] for v in pos_all)
        prof = calibrate(demo, "fused", combine=combine, x=cal, rule=fused_rule(args, pos))
        rates.append(reports(str(demo.model_path), prof, held)[1].mean())
        cascade_rates.append(reports(str(demo.model_path), prof, held, cascade=True)[1].mean())
    m = len(x) - len(x) // 2
    lo, hi = binomial_interval(round(0.05 * m), m)
    for label, r in (("fused", rates), ("cascade", cascade_rates)):
        r = np.asarray(r)
        print(
            f"clean FPR over {splits} random 50/50 splits ({label}, {m} held-out each): mean {r.mean():.3f}, "
            f"sd {r.std():.3f}, min {r.min():.3f}, max {r.max():.3f}; inside the 99% binomial interval of 5% "
            f"({lo:.3f}-{hi:.3f}) in {np.mean((r >= lo) & (r <= hi)):.0%} of splits"
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="digits,photos")
    ap.add_argument("--combine", default="fisher")
    ap.add_argument("--splits", type=int, default=20)
    ap.add_argument("--groups", choices=("default", "random", "regions"), default="default")
    ap.add_argument("--confidence", type=float, default=None)
    args = ap.parse_args()
    for s in args.sets.split(","):
        for c in args.combine.split(","):
            evaluate(s, c, args)


if __name__ == "__main__":
    main()
