"""`pyguard demo`: the feature-squeezing detector end to end on the bundled digits classifier.

Calibrates on clean images, runs guarded inference on held-out clean images and on the adversarial
examples shipped with the package, and prints the false-positive rate, the detection rate per attack on
*successful* adversarial examples, ROC-AUC (successful examples vs clean) and the latency overhead
against plain onnxruntime.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass

import numpy as np

from ._progress import Progress
from ._timing import interleaved_medians
from .calibrate import calibrate
from .metrics import attack_success, binomial_interval, detection_rate, roc_auc
from .session import InferenceSession

DEFAULT_SQUEEZERS = ("bit_depth:1", "median:2")  # the paper's MNIST configuration


@dataclass
class AttackResult:
    name: str
    total: int
    successful: int
    detected: float  # detection rate on successful examples
    auc: float  # successful examples vs clean test images
    flagged_all: float  # flag rate over every adversarial example, failed ones included


def _options():
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return so


def guarded_pass(sess: InferenceSession, x: np.ndarray, batch: int = 256, progress=None):
    """Predictions, detector scores and flags for every sample of x."""
    name, out = sess.profile.input.name, sess.profile.output_name
    preds, scores, flagged = [], [], []
    for start in range(0, len(x), batch):
        outputs, report = sess.run_with_report([out], {name: np.ascontiguousarray(x[start:start + batch])})
        preds.append(np.asarray(outputs[0]).reshape(len(report), -1).argmax(axis=1))
        scores.append(report.scores["fused"] if "fused" in report.scores else report.scores["squeeze"])
        flagged.append(report.flagged)
        if progress is not None:
            progress(start + len(report))
    return np.concatenate(preds), np.concatenate(scores), np.concatenate(flagged)


def evaluate(sess, clean_x, clean_y, attacks: dict, progress_label: str | None = "guarded inference"):
    """FPR on clean data, then per attack: success, detection on successful examples, ROC-AUC."""
    total = len(clean_x) + sum(len(a["x"]) for a in attacks.values())
    with Progress(progress_label or "", total, delay=1.0 if progress_label else float("inf")) as progress:
        done = 0

        def step(k):
            progress(done + k)

        clean_pred, clean_scores, clean_flag = guarded_pass(sess, clean_x, progress=step)
        done += len(clean_x)
        results = []
        for name, attack in attacks.items():
            pred, scores, flag = guarded_pass(sess, attack["x"], progress=step)
            done += len(attack["x"])
            success = attack_success(pred, attack["y"], attack.get("source_correct"))
            results.append(AttackResult(
                name=name, total=len(pred), successful=int(success.sum()),
                detected=detection_rate(scores[success], detector_threshold(sess.profile)),
                auc=roc_auc(clean_scores, scores[success]), flagged_all=float(flag.mean())))
            attack.update(scores=scores, success=success, flagged=flag, pred=pred)
    clean = {"accuracy": float(np.mean(clean_pred == clean_y)), "flagged": int(clean_flag.sum()),
             "n": len(clean_x), "scores": clean_scores, "pred": clean_pred, "flags": clean_flag}
    return clean, results


def latency(model, profile, x1: np.ndarray, seconds: float) -> dict[str, float]:
    import onnxruntime as ort

    so = _options()
    name = profile.input.name
    plain = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    sanity = InferenceSession(model, so, ["CPUExecutionProvider"])
    guarded = InferenceSession(model, so, ["CPUExecutionProvider"], profile=profile)
    feed = {name: x1}
    with Progress("timing", 100) as progress:
        calls = {"plain": lambda: plain.run(None, feed), "sanity": lambda: sanity.run(None, feed),
                 "guarded": lambda: guarded.run(None, feed)}
        return interleaved_medians(calls, seconds=seconds, progress=progress)


def detector_threshold(profile) -> float:
    """The threshold of the profile's detector: the fused statistic's, else Xu's squeeze threshold."""
    return profile.fused.threshold if getattr(profile, "fused", None) is not None else profile.threshold


def calibrate_demo(demo: dict, squeezers=DEFAULT_SQUEEZERS, fpr: float = 0.05, detector: str = "squeeze"):
    """The demo's profile: calibrated on the bundled clean calibration split (shared with `pyguard eval`).

    ``detector="fused"`` also profiles every activation output (a tiny model: no overhead budget) and, with
    ``squeezers=None``, chooses the squeezers from the clean data."""
    fused = detector == "fused"
    extra = {"activations": True, "activation_budget": None} if fused else {}
    with Progress("calibrating", len(demo["calib_x"])) as progress, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chosen = None if squeezers is None else tuple(squeezers)
        return calibrate(demo["model"], demo["calib_x"], squeezers=chosen, fpr=fpr, sess_options=_options(),
                         progress=progress, detector=detector, **extra, **demo["calibrate_kwargs"])


#: Xu et al.'s configuration per demo set (MNIST's for digits, CIFAR-10's without NLM for the photo patches).
SET_SQUEEZERS = {"digits": DEFAULT_SQUEEZERS, "photos": ("bit_depth:5", "median:2")}


def load_demo(name: str = "digits") -> dict:
    """A bundled demo set ("digits", or "photos": natural-photo patches) in the form the demo and
    `pyguard eval --demo` use."""
    from .data import load_digits_demo, load_photos_demo

    loaders = {"digits": load_digits_demo, "photos": load_photos_demo}
    if name not in loaders:
        raise ValueError(f"unknown demo set {name!r}; choose one of {sorted(loaders)}")
    return _demo_data(loaders[name]())


def run_demo(squeezers=None, fpr: float = 0.05, seconds: float = 1.5, out=None,
             dataset: str = "digits") -> int:
    out = out if out is not None else sys.stdout
    squeezers = tuple(squeezers) if squeezers else SET_SQUEEZERS[dataset]
    demo = load_demo(dataset)
    print(f"pyguard demo: {demo['description']}", file=out)
    print(f"detector: {' + '.join(squeezers)}, target false-positive rate {fpr:.0%}", file=out)

    profile = calibrate_demo(demo, squeezers, fpr)
    q = profile.score_quantiles
    print(f"calibrated on {profile.n_calibration} clean images: threshold {profile.threshold:.4f} "
          f"(clean score quantiles 50% {q['0.5']:.4f}, 99% {q['0.99']:.4f})", file=out)

    sess = InferenceSession(demo["model"], _options(), profile=profile)
    clean, results = evaluate(sess, demo["test_x"], demo["test_y"], demo["attacks"])
    rate = clean["flagged"] / clean["n"]
    lo, hi = binomial_interval(clean["flagged"], clean["n"])
    print(f"\nclean test images: {clean['n']}, model accuracy {clean['accuracy']:.1%}", file=out)
    print(f"false-positive rate: {rate:.1%} ({clean['flagged']}/{clean['n']}; "
          f"99% interval {lo:.1%}-{hi:.1%}; target {fpr:.0%})", file=out)

    print(f"\n{'attack':<22} {'examples':>8} {'successful':>10} {'detected':>9} {'ROC-AUC':>8}", file=out)
    for r in results:
        print(f"{r.name:<22} {r.total:>8} {r.successful:>10} {_pct(r.detected):>9} {_num(r.auc):>8}",
              file=out)
    all_success = np.concatenate([a["scores"][a["success"]] for a in demo["attacks"].values()])
    overall_rate = detection_rate(all_success, profile.threshold)
    overall_auc = roc_auc(clean["scores"], all_success)
    print(f"{'all attacks':<22} {sum(r.total for r in results):>8} {len(all_success):>10} "
          f"{_pct(overall_rate):>9} {_num(overall_auc):>8}", file=out)
    print("(detection rate and ROC-AUC count successful adversarial examples only)", file=out)
    _fused_beside_xu(demo, fpr, clean, results, overall_rate, overall_auc, out)

    ms = latency(demo["model"], profile, np.ascontiguousarray(demo["test_x"][:1]), seconds)
    print(f"\nlatency of one image (batch 1, 1 thread, median): plain onnxruntime {_us(ms['plain'])}; "
          f"pyguard sanity-only {_us(ms['sanity'])} ({ms['sanity'] / ms['plain']:.2f}x); "
          f"pyguard detector {_us(ms['guarded'])} ({ms['guarded'] / ms['plain']:.2f}x)", file=out)
    print("this model takes microseconds, so the fixed per-call cost dominates; `pyguard bench` measures "
          "ResNet-18-sized models", file=out)
    return 0


def _fused_beside_xu(demo, fpr, xu_clean, xu_results, xu_rate, xu_auc, out) -> None:
    """The fused detector (every signal, p-values combined, one threshold) on the same data, beside Xu's."""
    profile = calibrate_demo(demo, None, fpr, detector="fused")
    sess = InferenceSession(demo["model"], _options(), profile=profile)
    attacks = {name: dict(a) for name, a in demo["attacks"].items()}
    clean, results = evaluate(sess, demo["test_x"], demo["test_y"], attacks, "fused detector")
    print(f"\nfused detector ({len(profile.fused.signals)} signals: squeezers {', '.join(profile.squeezers)} "
          f"chosen from clean data, activation ranges, input and output statistics; {profile.fused.combine} "
          "combination of calibrated p-values)", file=out)
    print(f"false-positive rate: Xu {xu_clean['flagged'] / xu_clean['n']:.1%}, fused "
          f"{clean['flagged'] / clean['n']:.1%} (target {fpr:.0%})", file=out)
    print(f"{'attack':<22} {'successful':>10} {'Xu det':>8} {'fused det':>9} {'Xu AUC':>7} {'fused AUC':>9}",
          file=out)
    for xr, fr in zip(xu_results, results):
        print(f"{fr.name:<22} {fr.successful:>10} {_pct(xr.detected):>8} {_pct(fr.detected):>9} "
              f"{_num(xr.auc):>7} {_num(fr.auc):>9}", file=out)
    success = np.concatenate([a["scores"][a["success"]] for a in attacks.values()])
    rate = detection_rate(success, profile.fused.threshold)
    print(f"{'all attacks':<22} {len(success):>10} {_pct(xu_rate):>8} {_pct(rate):>9} {_num(xu_auc):>7} "
          f"{_num(roc_auc(clean['scores'], success)):>9}", file=out)


def _pct(v: float) -> str:
    return "-" if np.isnan(v) else f"{v:.1%}"


def _num(v: float) -> str:
    return "-" if np.isnan(v) else f"{v:.3f}"


def _us(ms: float) -> str:
    return f"{ms * 1e3:.0f} us" if ms < 1 else f"{ms:.2f} ms"


ATTACK_LABELS = {"fgsm": "FGSM", "bim": "BIM (PGD)", "pgd_linf": "PGD", "carlini_wagner_l2": "CW L2",
                 "deepfool": "DeepFool", "jsma": "JSMA"}


def _attack_label(name: str, meta: dict) -> str:
    info = meta.get("attacks", {}).get(name, {})
    kind, params = info.get("attack"), info.get("params", {})
    label = ATTACK_LABELS.get(kind, name)
    if "eps" in params:
        eps = params["eps"]
        label += f" eps={eps * 255:.0f}/255" if abs(eps * 255 - round(eps * 255)) < 1e-6 and eps < 0.1 \
            else f" eps={eps:g}"
    elif "confidence" in params:
        label += f" conf={params['confidence']:g}"
    return label


def _demo_data(raw) -> dict:
    """The fields the demo uses, from pyguard.data.load_digits_demo()'s DigitsDemo.

    Adversarial examples were made from correctly classified test images (``idx`` = the source test image),
    so an example is successful when the model's prediction differs from that image's label."""
    attacks = {}
    for name, (x_adv, idx) in raw.adversarial.items():
        attacks[_attack_label(name, raw.meta)] = {"x": np.ascontiguousarray(x_adv), "y": raw.y_test[idx],
                                                  "x_source": raw.x_test[idx]}
    spec = raw.meta.get("input", {})
    lo, hi = spec.get("range", (0.0, 1.0))
    shape, dtype = spec.get("shape", ["N", "?"])[1:], spec.get("dtype", "float32")
    return {"description": f"digits CNN, {len(raw.x_calib)} calibration / {len(raw.x_test)} test images "
                           f"({shape} {dtype} in [{lo:g}, {hi:g}])",
            "model": str(raw.model_path), "calib_x": raw.x_calib, "test_x": raw.x_test, "test_y": raw.y_test,
            "attacks": attacks, "calibrate_kwargs": {"input_range": (lo, hi)}}
