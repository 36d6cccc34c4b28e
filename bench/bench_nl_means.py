"""NLM squeezer: pyguard's nl_means vs OpenCV's fastNlMeansDenoisingColored, one thread, same run.

The ours-benchmarks record in extra_info the PSNR (dB) of our output against OpenCV's on several real
photos for the same setting ("inf" when identical) and the largest absolute difference.

    python bench/report.py -o 'python_files=bench_*.py' -k nl_means

(pytest only collects test_*.py from a directory unless told otherwise; a file path works as is.)
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import tag

from pyguard import ops

GOAL = 4.0  # anchor median / ours median on the ImageNet setting


def _photos() -> dict[str, np.ndarray]:
    from skimage import data
    from sklearn.datasets import load_sample_images

    photos = {"astronaut": data.astronaut(), "coffee": data.coffee(), "chelsea": data.chelsea()}
    for i, img in enumerate(load_sample_images().images):
        photos[f"sklearn{i}"] = np.ascontiguousarray(img)
    return photos


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _fidelity(search: int, patch: int, h: float, size: tuple[int, int]) -> dict:
    """PSNR of ours vs cv2 on 224x224 (or the given size) centre crops of every bundled colour photo."""
    psnrs, worst = {}, 0
    for name, photo in _photos().items():
        y, x = max(0, (photo.shape[0] - size[0]) // 2), max(0, (photo.shape[1] - size[1]) // 2)
        img = np.ascontiguousarray(photo[y : y + size[0], x : x + size[1]])
        ref = cv2.fastNlMeansDenoisingColored(img, None, h, h, patch, search)
        got = ops.nl_means(img, search=search, patch=patch, h=h)
        psnrs[name] = f"{_psnr(got, ref):.2f}"
        worst = max(worst, int(np.abs(got.astype(np.int16) - ref).max()))
    return {"psnr_db_vs_cv2": psnrs, "max_abs_diff_vs_cv2": worst}


@pytest.fixture(scope="module")
def crop224(photo_u8) -> np.ndarray:
    return np.ascontiguousarray(photo_u8[100:324, 150:374])


@pytest.fixture(scope="module")
def image480(photo_u8) -> np.ndarray:
    return np.ascontiguousarray(cv2.resize(photo_u8, (640, 480), interpolation=cv2.INTER_AREA))


CASES = {
    "nl_means 11-3-4 224x224x3 u8": ("crop224", 11, 3, 4.0, "auto", GOAL),
    "nl_means 13-3-2 224x224x3 u8": ("crop224", 13, 3, 2.0, "auto", None),
    "nl_means 11-3-4 480x640x3 u8": ("image480", 11, 3, 4.0, "auto", None),
    "nl_means 11-3-4 224x224x3 u8, avx2": ("crop224", 11, 3, 4.0, "avx2", None),
}


@pytest.mark.parametrize("target", list(CASES))
def test_cv2_colored(benchmark, request, target):
    fixture, search, patch, h, _, _ = CASES[target]
    img = request.getfixturevalue(fixture)
    tag(benchmark, target, "anchor")
    benchmark(cv2.fastNlMeansDenoisingColored, img, None, h, h, patch, search)


@pytest.mark.parametrize("target", list(CASES))
def test_pyguard_nl_means(benchmark, request, target):
    fixture, search, patch, h, isa, goal = CASES[target]
    if isa not in ("auto", *ops.available_isas()):
        pytest.skip(f"{isa} not supported here")
    img = request.getfixturevalue(fixture)
    out = np.empty_like(img)
    extra = {"goal": goal} if goal else {}
    tag(benchmark, target, "ours", isa=isa, **extra, **_fidelity(search, patch, h, img.shape[:2]))
    result = benchmark(ops.nl_means, img, search=search, patch=patch, h=h, out=out, isa=isa)
    ref = cv2.fastNlMeansDenoisingColored(img, None, h, h, patch, search)
    assert _psnr(result, ref) >= 40.0


SQUEEZER = "NLM squeezer 11-3-4 float32 1x3x224x224"


def _squeeze_cv2(x: np.ndarray) -> np.ndarray:
    """The Feature Squeezing route: to uint8, cv2 per image (NHWC), back to float32 NCHW."""
    u8 = np.clip(np.rint(x * np.float32(255)), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    imgs = [np.ascontiguousarray(img) for img in u8]
    den = np.stack([cv2.fastNlMeansDenoisingColored(img, None, 4.0, 4.0, 3, 11) for img in imgs])
    return (den.astype(np.float32) / np.float32(255)).transpose(0, 3, 1, 2)


def test_squeezer_cv2(benchmark, image_nchw):
    tag(benchmark, SQUEEZER, "anchor")
    benchmark(_squeeze_cv2, image_nchw)


def test_squeezer_pyguard(benchmark, image_nchw):
    tag(benchmark, SQUEEZER, "ours")
    out = np.empty_like(image_nchw)
    result = benchmark(ops.nl_means, image_nchw, layout="NCHW", out=out)
    np.testing.assert_array_equal(result, _squeeze_cv2(image_nchw))
