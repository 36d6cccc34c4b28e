"""Scale-out over samples: the same chunks run in-process or as Ray tasks, with identical results.

Work is cut into fixed chunks of ``chunk_size`` consecutive samples. Chunk boundaries depend only on the
sample count and ``chunk_size`` (never on the number of workers), every chunk is computed by the same
function with the samples' global indices, and per-sample randomness is seeded by (seed, index) (see
:func:`pyguard.eval.blackbox.sample_rngs`), so ``backend="ray"`` reproduces ``backend="local"`` exactly.

Ray is an optional extra (``pip install ray``). Without a running Ray instance, :func:`map_chunks` starts a
local one (``ray.init(num_cpus=...)``); connect to a cluster first with ``ray.init(address=...)`` to use it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

BACKENDS = ("local", "ray")


def chunk_bounds(n: int, chunk_size: int) -> list[tuple[int, int]]:
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return [(start, min(start + chunk_size, n)) for start in range(0, n, chunk_size)]


def map_chunks(fn: Callable[..., Any], n: int, *, chunk_size: int = 64, backend: str = "local",
               shared: dict[str, Any] | None = None, progress: Callable[[int], None] | None = None,
               num_cpus: int | None = None) -> list[Any]:
    """``[fn(start, stop, **shared) for each chunk]``, in chunk order.

    ``fn`` must be a module-level function (Ray pickles it by reference); ``shared`` holds the arguments
    every chunk gets (large arrays are put in Ray's object store once). ``progress(samples_done)`` is called
    as chunks finish.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    shared = shared or {}
    bounds = chunk_bounds(n, chunk_size)
    if backend == "local":
        results, done = [], 0
        for start, stop in bounds:
            results.append(fn(start, stop, **shared))
            done += stop - start
            if progress is not None:
                progress(done)
        return results
    return _map_ray(fn, bounds, shared, progress, num_cpus)


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise ImportError("backend='ray' needs Ray: pip install 'ray'") from exc
    return ray


def worker_env() -> dict:
    """Ray runtime_env making this pyguard importable in local workers (also when run from a checkout)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return {"env_vars": {"PYTHONPATH": path}}


def _map_ray(fn, bounds: Sequence[tuple[int, int]], shared: dict, progress, num_cpus) -> list[Any]:
    ray = _ray()
    if not ray.is_initialized():
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 runtime_env=worker_env())
    remote = ray.remote(num_cpus=1)(fn)
    refs = {name: ray.put(value) for name, value in shared.items()}
    futures = [remote.remote(start, stop, **refs) for start, stop in bounds]
    sizes = {f: stop - start for f, (start, stop) in zip(futures, bounds)}
    pending, done = list(futures), 0
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        done += sum(sizes[f] for f in ready)
        if progress is not None:
            progress(done)
    return ray.get(futures)


__all__ = ["map_chunks", "chunk_bounds", "worker_env", "BACKENDS"]
