"""Latency measurement shared by `pyguard bench` and `pyguard demo`: interleaved rounds, medians."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def interleaved_medians(fns: dict[str, Callable[[], object]], *, seconds: float = 2.0, min_rounds: int = 5,
                        max_rounds: int = 2000, progress: Callable[[int, int | None], None] | None = None
                        ) -> dict[str, float]:
    """Median wall time (ms) of each function, measured in alternating rounds so that the machine's
    background load affects every function alike. Each function is called once untimed first (warm-up)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    start = time.perf_counter()
    rounds = 0
    while rounds < min_rounds or (rounds < max_rounds and time.perf_counter() - start < seconds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
        rounds += 1
        if progress is not None:
            progress(min(int((time.perf_counter() - start) / seconds * 100), 100), 100)
    return {name: float(np.median(t)) * 1e3 for name, t in times.items()}
