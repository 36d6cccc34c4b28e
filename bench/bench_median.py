"""median_filter against what users would otherwise run: a NumPy min/max network, SciPy, OpenCV.

OpenCV's medianBlur replicates borders (we reflect, as SciPy does), so it is compared for speed only; it
has no 2x2 and only 3x3/5x5 for float32, applied per plane here as a caller would for NCHW.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import tag
from scipy import ndimage

from pyguard.ops import median_filter

F32_2X2 = "median 2x2 f32 1x3x224x224"
F32_3X3 = "median 3x3 f32 1x3x224x224"
F32_5X5 = "median 5x5 f32 1x3x224x224"
U8_3X3 = "median 3x3 u8 1080x1920x3 HWC"
U8_5X5 = "median 5x5 u8 1080x1920x3 HWC"


class NumpyMedian2x2:
    """The 2x2 rule (upper middle of 4 = second largest) as whole-array NumPy min/max on a reflect-padded
    copy, with preallocated temporaries: sort each vertical pair once, then combine neighbouring pairs.
    The strongest NumPy formulation we found; the goal is measured against it."""

    def __init__(self, shape):
        n, c, h, w = shape
        self.padded = np.empty((n, c, h + 1, w + 1), np.float32)
        self.lo = np.empty((n, c, h, w + 1), np.float32)
        self.hi = np.empty((n, c, h, w + 1), np.float32)
        self.t = np.empty(shape, np.float32)
        self.out = np.empty(shape, np.float32)

    def __call__(self, x):
        p, lo, hi, t, out = self.padded, self.lo, self.hi, self.t, self.out
        p[:, :, 1:, 1:] = x
        p[:, :, 0, 1:] = x[:, :, 0]  # reflect: row -1 is row 0, column -1 is column 0
        p[:, :, :, 0] = p[:, :, :, 1]
        np.minimum(p[:, :, :-1], p[:, :, 1:], out=lo)
        np.maximum(p[:, :, :-1], p[:, :, 1:], out=hi)
        np.minimum(hi[..., :-1], hi[..., 1:], out=t)
        np.maximum(lo[..., :-1], lo[..., 1:], out=out)
        np.maximum(t, out, out=out)
        return out


def numpy_pad_network_2x2(x):
    """The same rule written the usual way: np.pad (symmetric = SciPy's reflect), then whole-array ops."""
    p = np.pad(x, ((0, 0), (0, 0), (1, 0), (1, 0)), mode="symmetric")
    lo, hi = np.minimum(p[:, :, :-1], p[:, :, 1:]), np.maximum(p[:, :, :-1], p[:, :, 1:])
    return np.maximum(np.minimum(hi[..., :-1], hi[..., 1:]), np.maximum(lo[..., :-1], lo[..., 1:]))


def cv2_per_plane(x, k, outs):
    for c in range(x.shape[1]):
        cv2.medianBlur(x[0, c], k, outs[c])
    return outs


@pytest.fixture(scope="module")
def out_f32(image_nchw):
    return np.empty_like(image_nchw)


@pytest.fixture(scope="module")
def cv2_outs(image_nchw):
    return [np.empty(image_nchw.shape[2:], np.float32) for _ in range(image_nchw.shape[1])]


def test_numpy_minmax_network_2x2(benchmark, image_nchw):
    tag(benchmark, F32_2X2, "anchor")
    anchor = NumpyMedian2x2(image_nchw.shape)
    expect = ndimage.median_filter(image_nchw, size=(1, 1, 2, 2), mode="reflect")
    assert np.array_equal(anchor(image_nchw), expect)
    benchmark(anchor, image_nchw)


def test_numpy_pad_network_2x2(benchmark, image_nchw):
    tag(benchmark, F32_2X2, "anchor")
    expect = ndimage.median_filter(image_nchw, size=(1, 1, 2, 2), mode="reflect")
    assert np.array_equal(numpy_pad_network_2x2(image_nchw), expect)
    benchmark(numpy_pad_network_2x2, image_nchw)


def test_scipy_2x2(benchmark, image_nchw):
    tag(benchmark, F32_2X2, "anchor")
    benchmark(ndimage.median_filter, image_nchw, size=(1, 1, 2, 2), mode="reflect")


def test_pyguard_2x2(benchmark, image_nchw, out_f32):
    tag(benchmark, F32_2X2, "ours", goal=10)
    benchmark(median_filter, image_nchw, 2, out=out_f32)


@pytest.mark.parametrize("k", [3, 5])
def test_cv2_per_plane_f32(benchmark, image_nchw, cv2_outs, k):
    tag(benchmark, F32_3X3 if k == 3 else F32_5X5, "anchor")
    benchmark(cv2_per_plane, image_nchw, k, cv2_outs)


def test_scipy_3x3(benchmark, image_nchw):
    tag(benchmark, F32_3X3, "anchor")
    benchmark(ndimage.median_filter, image_nchw, size=(1, 1, 3, 3), mode="reflect")


@pytest.mark.parametrize("k", [3, 5])
def test_pyguard_f32(benchmark, image_nchw, out_f32, k):
    tag(benchmark, F32_3X3 if k == 3 else F32_5X5, "ours", **({"goal": 1.5} if k == 3 else {}))
    benchmark(median_filter, image_nchw, k, out=out_f32)


@pytest.mark.parametrize("k", [3, 5])
def test_cv2_u8_1080p(benchmark, image_1080p_u8, k):
    tag(benchmark, U8_3X3 if k == 3 else U8_5X5, "anchor")
    dst = np.empty_like(image_1080p_u8)
    benchmark(cv2.medianBlur, image_1080p_u8, k, dst)


@pytest.mark.parametrize("k", [3, 5])
def test_pyguard_u8_1080p(benchmark, image_1080p_u8, k):
    tag(benchmark, U8_3X3 if k == 3 else U8_5X5, "ours", **({"goal": 1.0} if k == 3 else {}))
    out = np.empty_like(image_1080p_u8)
    benchmark(median_filter, image_1080p_u8, k, layout="HWC", out=out)
