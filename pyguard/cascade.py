"""Screening cascade of the fused detector: ``pyguard.InferenceSession(..., cascade=True)``.

Stage 1 runs on every request and costs one inference plus NumPy statistics: input statistics, sanity
checks, the activation-range score (an output of the same run) and the output's margin/energy. Their
p-values are combined into a cheap statistic; a sample whose statistic is at most the clear threshold (the
``1 - screen`` quantile of cross-fitted clean calibration statistics, ``screen`` = 20% by default) is cleared
and never squeezed. Stage 2 squeezes only the remaining samples and runs the model on the squeezed copies
(one batched run), computes every signal and the full fused statistic; it flags when that exceeds the
cascade's own threshold, fitted so that (forwarded and above) holds for at most the target share of clean
calibration samples: the overall false-positive rate stays calibrated (:func:`pyguard.fusion.fit_cascade`).

Cost for clean traffic: 1 + ``screen`` x (squeezers) inferences on average instead of 1 + squeezers.
Detection: an attack is missed by the cascade but caught by the full detector only when its cheap signals
look like the 80% most ordinary clean samples. ``bench/bench_cascade.py`` and ``tools/fused_eval.py`` measure
both. For cleared samples the report's ``squeeze[...]`` scores are NaN (not computed) and ``"fused"`` holds
the cheap statistic.
"""

from __future__ import annotations

import time

import numpy as np

from .errors import ConfigError
from .fusion import combine


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


class CascadeRunner:
    def __init__(self, sess) -> None:
        fused = sess._fused
        if fused is None or fused.detector is None or fused.detector.cascade is None:
            raise ConfigError(
                "cascade=True needs a profile calibrated with detector='fused' and at least one squeezer"
            )
        self.sess = sess
        self.detector = fused.detector
        self.cascade = fused.detector.cascade
        self.cheap = list(fused.detector.cheap)
        self.squeeze_keys = [n for n in fused.detector.signals if n.startswith("squeeze[")]

    def run(self, names, feed, x, run_options, timings):
        from .session import _OrtSession, _squeeze_scores

        s, det, fused = self.sess, self.sess._detector, self.sess._fused
        t0 = time.perf_counter()
        if x.ndim < 2:
            raise ConfigError(
                f"input {det.name!r} must have a batch axis and image axes, got shape {x.shape}"
            )
        n = x.shape[0]
        ws = s._workspace(x, False)
        nonfinite, out_of_range, src = s._checks_and_source(x, ws)
        lo, hi = (0.0, 1.0) if det.affine is not None else (det.lo, det.hi)
        timings["checks"] = _ms(t0)

        t1 = time.perf_counter()
        run_names = names if det.output_name in names else [*names, det.output_name]
        outputs = _OrtSession.run(s, run_names, feed, run_options)
        main = np.asarray(outputs[run_names.index(det.output_name)]).reshape(n, -1)
        timings["inference"] = _ms(t1)

        t2 = time.perf_counter()
        report = s._report(n, nonfinite, out_of_range, None, {}, timings)
        acts = s._activations
        if acts is not None:
            acts.apply(report, outputs[run_names.index(acts.output_name)])
        values = fused.values(report, src, lo, hi, main, names=self.cheap)
        p = self.detector.p_values(values, self.cheap)
        cheap_stat = combine(p, self.detector.combine)
        forwarded = ~(cheap_stat <= self.cascade.clear_threshold)  # NaN is forwarded
        timings["screen"] = _ms(t2)

        fused_stat = cheap_stat.copy()
        for key in self.squeeze_keys:
            values[key] = np.full(n, np.nan)
        if forwarded.any():
            t3 = time.perf_counter()
            idx = np.flatnonzero(forwarded) if det.batch_dynamic and len(s._inputs) == 1 else np.arange(n)
            distances = self._squeeze_distances(
                src[idx], main[idx], lo, hi, feed, idx, run_options, _squeeze_scores
            )
            for key, d in zip(self.squeeze_keys, distances):
                values[key][idx] = d
            sub = {k: v[idx] for k, v in values.items()}
            p_full = self.detector.p_values(sub)
            fused_stat[idx] = combine(p_full, self.detector.combine)
            for k, v in p_full.items():
                p.setdefault(k, np.ones(n))[idx] = v
            timings["squeeze"] = _ms(t3)
        report.scores.update(values)
        from .fused import decide

        decide(report, fused_stat, self.cascade.threshold, p, forwarded=forwarded)
        report.scores["forwarded"] = forwarded
        user = len(names) - (1 if acts is not None else 0)  # the session appended the activation output
        return list(outputs[:user]), report

    def _squeeze_distances(self, pixels, main, lo, hi, feed, idx, run_options, squeeze_scores):
        from .session import _OrtSession

        s, det = self.sess, self.sess._detector
        m = len(idx)
        stack = np.empty(
            (len(det.squeezers) * m, *pixels.shape[1:]), dtype=s._inputs[det.name].dtype or pixels.dtype
        )
        slots = stack.reshape(len(det.squeezers), m, *pixels.shape[1:])
        tmp = np.empty(pixels.shape, dtype=pixels.dtype) if det.affine is not None else None
        for i, sq in enumerate(det.squeezers):
            if det.affine is None:
                sq.apply(np.ascontiguousarray(pixels), slots[i], layout=det.layout, lo=lo, hi=hi)
            else:
                sq.apply(np.ascontiguousarray(pixels), tmp, layout=det.layout, lo=lo, hi=hi)
                a, b = det.affine
                np.subtract(tmp, b, out=slots[i])
                np.divide(slots[i], a, out=slots[i])
        if det.batch_dynamic and len(s._inputs) == 1:
            out = _OrtSession.run(s, [det.output_name], {det.name: stack}, run_options)[0]
            probs = np.asarray(out).reshape(len(det.squeezers), m, -1)
        else:
            probs = np.stack(
                [
                    np.asarray(
                        _OrtSession.run(s, [det.output_name], {**feed, det.name: slots[i]}, run_options)[0]
                    ).reshape(m, -1)
                    for i in range(len(det.squeezers))
                ]
            )
        _, per = squeeze_scores(np.concatenate([main[None], probs]), det.logits)
        return per


__all__ = ["CascadeRunner"]
