"""`pyguard kernels`: run every native kernel on a bundled real photo and show what it changed and how fast.

Each squeezer is timed (median of repeated runs, one thread) beside the tool a user would otherwise reach
for (NumPy, SciPy, OpenCV), measured in the same run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from . import ops

PHOTO = Path(__file__).with_name("data") / "astronaut.png"


def load_photo(size: int = 224) -> np.ndarray:
    """The bundled photo (scikit-image's astronaut, public domain), RGB uint8, centre-cropped to size."""
    img = cv2.imread(str(PHOTO), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"bundled photo missing: {PHOTO}")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    top, left = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
    return np.ascontiguousarray(img[top:top + size, left:left + size])


def median_ms(fn: Callable[[], object], budget_s: float = 0.25, max_runs: int = 200) -> float:
    """Median wall time of fn over as many runs as fit in the budget (at least 3)."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (len(times) < max_runs and time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def _cv2_median_planes(x: np.ndarray, k: int) -> np.ndarray:
    return np.stack([cv2.medianBlur(p, k) for p in x[0]])[None]


def _numpy_bit_depth(x: np.ndarray, bits: int) -> np.ndarray:
    m = 2**bits - 1
    return np.rint(x * m) / m


def _references(x: np.ndarray, img: np.ndarray) -> dict[str, tuple[str, Callable[[], object]]]:
    refs: dict[str, tuple[str, Callable[[], object]]] = {
        "bit_depth:5": ("numpy rint", lambda: _numpy_bit_depth(x, 5)),
        "bit_depth:1": ("numpy rint", lambda: _numpy_bit_depth(x, 1)),
        "median:3": ("cv2.medianBlur per plane", lambda: _cv2_median_planes(x, 3)),
        "median:5": ("cv2.medianBlur per plane", lambda: _cv2_median_planes(x, 5)),
        "nl_means:11-3-4": ("cv2.fastNlMeansDenoisingColored",
                            lambda: cv2.fastNlMeansDenoisingColored(img, None, 4, 4, 3, 11)),
    }
    try:
        from scipy import ndimage

        refs["median:2"] = ("scipy.ndimage.median_filter",
                            lambda: ndimage.median_filter(x, size=(1, 1, 2, 2), mode="reflect"))
    except ImportError:
        pass
    return refs


def squeezers(x: np.ndarray, img: np.ndarray) -> dict[str, Callable[[], np.ndarray]]:
    out = np.empty_like(x)
    img_out = np.empty_like(img)
    return {
        "bit_depth:5": lambda: ops.bit_depth(x, 5, out=out),
        "bit_depth:1": lambda: ops.bit_depth(x, 1, out=out),
        "median:2": lambda: ops.median_filter(x, 2, out=out),
        "median:3": lambda: ops.median_filter(x, 3, out=out),
        "median:5": lambda: ops.median_filter(x, 5, out=out),
        "nl_means:11-3-4": lambda: ops.nl_means(img, search=11, patch=3, h=4, out=img_out),
        "jpeg:75": lambda: ops.jpeg(x, 75, out=out),
    }


def run(size: int = 224) -> str:
    cv2.setNumThreads(1)
    img = load_photo(size)
    x = np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255.0)
    refs = _references(x, img)
    lines = [f"pyguard kernels on a {size}x{size} real photo (1x3x{size}x{size} float32; "
             f"NLM on uint8 HxWx3), isa={ops.best_isa()}, 1 thread",
             "",
             "| squeezer | pixels changed | mean abs change (x255) | PSNR | pyguard | reference | speed-up |",
             "|---|---|---|---|---|---|---|"]
    for name, fn in squeezers(x, img).items():
        result = fn().copy()
        before = img.astype(np.float32) / 255 if result.ndim == 3 else x
        after = result.astype(np.float32) / 255 if result.dtype == np.uint8 else result
        changed = float(np.mean(before != after)) * 100
        ours = median_ms(fn)
        ref_name, ref_fn = refs.get(name, ("", None))
        ref = median_ms(ref_fn) if ref_fn is not None else float("nan")
        ref_s = f"{ref:.3f} ms ({ref_name})" if ref_fn is not None else "-"
        ratio = f"{ref / ours:.1f}x" if ref_fn is not None else "-"
        lines.append(f"| {name} | {changed:.1f}% | {np.mean(np.abs(before - after)) * 255:.2f} | "
                     f"{psnr(before, after):.1f} dB | {ours:.3f} ms | {ref_s} | {ratio} |")
    checks = ops.sample_checks(x)
    lines += ["", f"input checks: non-finite={int(checks.nonfinite[0])}, out of [0,1]="
              f"{int(checks.out_of_range[0])}, off the 8-bit grid={int(checks.off_grid[0])} "
              f"({median_ms(lambda: ops.sample_checks(x)):.3f} ms)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyguard kernels", description=__doc__)
    parser.add_argument("--size", type=int, default=224, help="centre crop of the bundled photo (<= 256)")
    args = parser.parse_args(argv)
    if not 8 <= args.size <= 256:
        parser.error("--size must be between 8 and 256")
    print(run(args.size))
    return 0
