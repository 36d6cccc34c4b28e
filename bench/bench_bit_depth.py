"""bit_depth on one 1x3x224x224 float32 image vs the NumPy one-liners and ART's FeatureSqueezing."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tag

from pyguard import ops


@pytest.mark.parametrize("bits", [5, 1])
def test_numpy_one_liner(benchmark, image_nchw, bits):
    tag(benchmark, f"bit_depth {bits} bits, 1x3x224x224 f32", "anchor")
    m = 2**bits - 1
    benchmark(lambda: np.rint(image_nchw * m) / m)


@pytest.mark.parametrize("bits", [5, 1])
def test_pyguard_bit_depth(benchmark, image_nchw, bits):
    tag(benchmark, f"bit_depth {bits} bits, 1x3x224x224 f32", "ours", goal=3.0)
    benchmark(ops.bit_depth, image_nchw, bits)


def test_numpy_generic_lo_hi(benchmark, image_nchw):
    tag(benchmark, "bit_depth 5 bits on [-0.5, 2.0], 1x3x224x224 f32", "anchor")
    lo, hi, m = -0.5, 2.0, 31
    benchmark(lambda: np.rint((image_nchw - lo) / (hi - lo) * m) / m * (hi - lo) + lo)


def test_pyguard_generic_lo_hi(benchmark, image_nchw):
    tag(benchmark, "bit_depth 5 bits on [-0.5, 2.0], 1x3x224x224 f32", "ours")
    benchmark(lambda: ops.bit_depth(image_nchw, 5, lo=-0.5, hi=2.0))


def test_art_feature_squeezing(benchmark, image_nchw):
    from art.defences.preprocessor import FeatureSqueezing

    tag(benchmark, "bit_depth 5 bits (ART FeatureSqueezing), 1x3x224x224 f32", "anchor")
    squeeze = FeatureSqueezing(clip_values=(0.0, 1.0), bit_depth=5)
    benchmark(lambda: squeeze(image_nchw))


def test_pyguard_vs_art(benchmark, image_nchw):
    tag(benchmark, "bit_depth 5 bits (ART FeatureSqueezing), 1x3x224x224 f32", "ours")
    benchmark(ops.bit_depth, image_nchw, 5)


def test_pyguard_bit_depth_out(benchmark, image_nchw):
    tag(benchmark, "bit_depth 5 bits with out=, 1x3x224x224 f32", "ours")
    out = np.empty_like(image_nchw)
    benchmark(lambda: ops.bit_depth(image_nchw, 5, out=out))


def test_numpy_one_liner_out(benchmark, image_nchw):
    tag(benchmark, "bit_depth 5 bits with out=, 1x3x224x224 f32", "anchor")
    out = np.empty_like(image_nchw)

    def run():
        np.multiply(image_nchw, 31, out=out)
        np.rint(out, out=out)
        np.divide(out, 31, out=out)

    benchmark(run)


def test_numpy_uint8_1080p(benchmark, image_1080p_u8):
    tag(benchmark, "bit_depth 5 bits, 1080x1920x3 uint8", "anchor")
    x = image_1080p_u8
    benchmark(lambda: np.rint(np.rint(x.astype(np.float32) / 255 * 31) / 31 * 255).astype(np.uint8))


def test_pyguard_uint8_1080p(benchmark, image_1080p_u8):
    tag(benchmark, "bit_depth 5 bits, 1080x1920x3 uint8", "ours")
    benchmark(ops.bit_depth, image_1080p_u8, 5)
