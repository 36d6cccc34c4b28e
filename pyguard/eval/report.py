"""The evaluation report folder: ``report.md``, ``report.json`` and matplotlib plots (Agg backend).

Plots: ``roc.png`` (ROC curve per attack, successful adversarial examples vs clean), ``scores.png`` (score
histograms clean vs adversarial per attack), ``activations.png`` (share of samples leaving each layer's
profiled range, when the profile has activation ranges) and ``faults.png`` (SDC rates per fault kind,
when a fault campaign was given).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..metrics import roc_curve
from .suite import EvalResult

FAMILY_TITLES = {"blackbox": "black-box (onnxruntime only)", "whitebox": "white-box (torch copy)",
                 "baseline": "non-adaptive PGD (same budget as the adaptive attack)",
                 "adaptive": "adaptive (BPDA against the squeezing detector)",
                 "bundled": "bundled demo attacks (as in `pyguard demo`)"}


def _clean_number(v):
    if isinstance(v, (np.floating, float)):
        return None if math.isnan(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.ndarray):
        return [_clean_number(e) for e in v.tolist()]
    if isinstance(v, dict):
        return {str(k): _clean_number(e) for k, e in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean_number(e) for e in v]
    return v


def to_json(result: EvalResult) -> dict:
    p = result.profile
    settings = {k: getattr(result.settings, k) for k in result.settings.__dataclass_fields__}
    clean = {k: v for k, v in result.clean.items() if k != "scores"}
    return _clean_number({
        "model": Path(result.model).name,
        "detector": {"squeezers": list(p.squeezers), "threshold": p.threshold, "fpr_target": p.fpr,
                     "purifier": p.purifier},
        "settings": settings,
        "clean": clean,
        "attacks": [{"name": s.name, "family": s.family, "params": s.params, **s.summary}
                    for s in result.attacks],
        "overall": result.overall,
        "adaptive_vs_non_adaptive": result.comparisons,
        "activations": result.activations,
        "faults": result.faults,
        "acceptance": acceptance(result),
        "notes": result.notes,
    })


def acceptance(result: EvalResult) -> dict:
    """The issue's acceptance statements, as measured."""
    out = {"blackbox": [], "adaptive": []}
    for s in result.attacks:
        if s.family == "blackbox":
            out["blackbox"].append({"attack": s.name, "success_rate": s.summary["success_rate"],
                                    "query_budget": s.params.get("max_queries"),
                                    "median_queries": s.summary.get("median_queries"),
                                    "reaches_90_percent": bool(s.summary["success_rate"] >= 0.9),
                                    "guard_detection_rate": s.summary["detection_rate"]})
    for c in result.comparisons:
        out["adaptive"].append({"eps": c["budget"]["eps"], "steps": c["budget"]["steps"],
                                "detection_non_adaptive": c["detection_baseline"],
                                "detection_adaptive": c["detection_adaptive"],
                                "lowers_detection": c["lowers_detection"]})
    return out


def _pct(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def _num(v, fmt=".3f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def _table(rows) -> list[str]:
    head = ("| attack | examples | success | detected (successful) | ROC-AUC | flagged (all) | "
            "evaded (success & unflagged) | mean L2 | mean L-inf | robust acc. (purify) | median queries |")
    lines = [head, "|---|" + "---:|" * 10]
    for name, r in rows:
        lines.append(f"| {name} | {r['examples']} | {_pct(r['success_rate'])} | "
                     f"{_pct(r['detection_rate'])} | {_num(r['roc_auc'])} | {_pct(r['flagged_all'])} | "
                     f"{_pct(r['evasion_rate'])} | "
                     f"{_num(r.get('mean_l2'))} | {_num(r.get('mean_linf'))} | "
                     f"{_pct(r.get('robust_accuracy_purify'))} | {_num(r.get('median_queries'), '.0f')} |")
    return lines


def to_markdown(result: EvalResult, plots: list[str]) -> str:
    p, c, s = result.profile, result.clean, result.settings
    lines = ["# pyguard security evaluation", "",
             f"Model `{Path(result.model).name}`; detector {' + '.join(p.squeezers)}, "
             f"threshold {p.threshold:.4f} (target false-positive rate {p.fpr:.0%}); "
             f"purifier `{p.purifier}`.", "",
             "## Clean data", "",
             f"- {c['n']} labelled samples, model accuracy {_pct(c['accuracy'])}; accuracy with "
             f"`action=\"purify\"` {_pct(c['accuracy_purify'])}.",
             f"- False-positive rate {_pct(c['fpr'])} ({c['flagged']}/{c['n']}; 99% interval "
             f"{_pct(c['fpr_interval_99'][0])}-{_pct(c['fpr_interval_99'][1])}).",
             f"- {c['attacked']} correctly classified samples attacked (seed {s.seed}, backend {s.backend}, "
             f"chunks of {s.chunk_size}).", "",
             "## Acceptance, as measured", ""]
    acc = acceptance(result)
    for b in acc["blackbox"]:
        verdict = "reaches" if b["reaches_90_percent"] else "does NOT reach"
        lines.append(f"- Black-box **{b['attack']}** {verdict} 90% success on the undefended model: "
                     f"{_pct(b['success_rate'])} within a budget of {b['query_budget']} queries per image "
                     f"(median {_num(b['median_queries'], '.0f')} queries for the successful ones). "
                     f"The guard detects {_pct(b['guard_detection_rate'])} of these successful adversarial "
                     "examples.")
    for a in acc["adaptive"]:
        verdict = "LOWERS" if a["lowers_detection"] else "does NOT lower"
        lines.append(f"- The adaptive attack {verdict} the squeezing detector's detection rate at the same "
                     f"budget (L-inf eps {a['eps']:g}, {a['steps']} PGD steps): "
                     f"{_pct(a['detection_non_adaptive'])} for non-adaptive PGD vs "
                     f"{_pct(a['detection_adaptive'])} for the adaptive attack (successful examples).")
    if not acc["adaptive"]:
        lines.append("- No adaptive attack was run (it needs PyTorch and the `adaptive` attack).")
    lines += ["", "## Per attack", "",
              "Detection rate and ROC-AUC count successful adversarial examples only (ROC-AUC against the "
              "clean samples' scores); mean L2/L-inf over successful examples; robust accuracy = purified "
              "prediction equals the label, over all examples of the attack.", ""]
    for family, title in FAMILY_TITLES.items():
        rows = [(x.name, x.summary) for x in result.attacks if x.family == family]
        if rows:
            lines += [f"### {title}", "", *_table(rows), ""]
    if result.overall:
        lines += ["### Overall (all attacks together)", "", *_table([("all attacks", result.overall)]), ""]
    params = [f"- `{x.name}`: {json.dumps(_clean_number(x.params))} ({x.seconds:.1f} s)"
              for x in result.attacks if x.family != "bundled"]
    if params:
        lines += ["### Attack parameters", "", *params, ""]
    if result.activations:
        lines += ["## Activation ranges", "", "Share of samples (clean; successful adversarial) with a value "
                  "outside the profiled range, per layer:", ""]
        rates = result.activations["rates"]
        lines.append("| tensor | " + " | ".join(rates) + " |")
        lines.append("|---|" + "---:|" * len(rates))
        for t in result.activations["tensors"]:
            lines.append(f"| `{t}` | " + " | ".join(_pct(r[t]) for r in rates.values()) + " |")
        lines.append("")
    if result.faults:
        lines += ["## Fault campaign", "", "| fault kind | SDC unprotected | SDC restricted | SDCs flagged |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {f['kind']} | {_pct(f['sdc_plain'])} | {_pct(f['sdc_restricted'])} | "
                  f"{_pct(f['sdc_flagged'])} |" for f in result.faults]
        lines.append("")
    if result.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in result.notes], ""]
    lines += ["## Plots", "", *[f"![{name}]({name})" for name in plots], ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- plots
def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_roc(result: EvalResult, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    clean = result.clean["scores"]
    colors = plt.get_cmap("tab20").colors
    for k, s in enumerate(result.attacks):
        ok = s.scores[s.success]
        if ok.size:
            fpr, tpr = roc_curve(clean, ok)
            ax.plot(fpr, tpr, label=f"{s.name} (AUC {s.summary['roc_auc']:.3f})", lw=1.3,
                    color=colors[k % len(colors)], ls=("-", "--", ":")[(k // len(colors)) % 3])
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
    ax.axvline(result.clean["fpr"], color="black", ls="--", lw=0.8, label="operating point (measured FPR)")
    ax.set(xlabel="false-positive rate (clean)", ylabel="detection rate (successful adversarial)",
           title="ROC of the squeezing detector per attack", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(fontsize=6.5, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scores(result: EvalResult, path: Path) -> None:
    plt = _pyplot()
    sets = result.attacks
    cols = 3
    rows = max(1, math.ceil(len(sets) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    clean = result.clean["scores"]
    hi = max([float(clean.max())] + [float(s.scores.max()) for s in sets if s.scores.size] + [1e-3])
    bins = np.linspace(0, hi, 40)
    for ax, s in zip(axes.ravel(), sets):
        ax.hist(clean, bins=bins, alpha=0.55, density=True, label="clean")
        ax.hist(s.scores[s.success], bins=bins, alpha=0.55, density=True, label="adversarial (successful)")
        from ..demo import detector_threshold

        ax.axvline(detector_threshold(result.profile), color="black", ls="--", lw=0.8, label="threshold")
        ax.set_title(s.name, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(sets):]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=6)
    fig.suptitle("feature-squeezing scores, clean vs adversarial", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_activations(result: EvalResult, path: Path) -> None:
    plt = _pyplot()
    acts = result.activations
    tensors, rates = acts["tensors"], acts["rates"]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(tensors) * max(1, len(rates)) / 3), 4))
    width = 0.8 / len(rates)
    for k, (name, r) in enumerate(rates.items()):
        ax.bar(np.arange(len(tensors)) + k * width, [r[t] for t in tensors], width, label=name)
    ax.set_xticks(np.arange(len(tensors)) + 0.4 - width / 2, tensors, rotation=30, ha="right", fontsize=7)
    ax.set(ylabel="share of samples outside the range", title="activation-range violations per layer")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_faults(result: EvalResult, path: Path) -> None:
    plt = _pyplot()
    rows = result.faults
    fig, ax = plt.subplots(figsize=(6, 4))
    keys = [("sdc_plain", "SDC unprotected"), ("sdc_restricted", "SDC restricted"),
            ("sdc_flagged", "SDCs flagged")]
    for k, (key, label) in enumerate(keys):
        ax.bar(np.arange(len(rows)) + k * 0.27, [r[key] for r in rows], 0.27, label=label)
    ax.set_xticks(np.arange(len(rows)) + 0.27, [r["kind"] for r in rows])
    ax.set(ylabel="rate", title="fault campaign: silent data corruption")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(result: EvalResult, out_dir) -> Path:
    """Write report.md, report.json and the plots into ``out_dir``; returns the folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = []
    if result.attacks:
        plot_roc(result, out / "roc.png")
        plot_scores(result, out / "scores.png")
        plots += ["roc.png", "scores.png"]
    if result.activations:
        plot_activations(result, out / "activations.png")
        plots.append("activations.png")
    if result.faults:
        plot_faults(result, out / "faults.png")
        plots.append("faults.png")
    (out / "report.json").write_text(json.dumps(to_json(result), indent=2) + "\n")
    (out / "report.md").write_text(to_markdown(result, plots))
    return out


__all__ = ["write_report", "to_json", "to_markdown", "acceptance"]
