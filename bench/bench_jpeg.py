"""JPEG round trip of one 224x224 float image: pyguard (cv2 codec) vs ART (PIL) and a direct cv2 route."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import tag

from pyguard.ops import jpeg

TARGET = "jpeg q75 1x3x224x224 f32"


def test_jpeg_art(benchmark, image_nchw):
    art = pytest.importorskip("art.defences.preprocessor")
    squeezer = art.JpegCompression(clip_values=(0, 1), quality=75, channels_first=True)
    tag(benchmark, TARGET, "anchor")
    benchmark(squeezer, image_nchw)


def test_jpeg_cv2_route(benchmark, image_nchw):
    def route(x):
        img = np.clip(np.rint(x[0].transpose(1, 2, 0) * 255), 0, 255).astype(np.uint8)
        _, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 75])
        dec = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return (dec.transpose(2, 0, 1)[None] / np.float32(255)).astype(np.float32)

    tag(benchmark, TARGET, "anchor")
    benchmark(route, image_nchw)


def test_jpeg_pyguard(benchmark, image_nchw):
    out = np.empty_like(image_nchw)
    tag(benchmark, TARGET, "ours")
    benchmark(jpeg, image_nchw, 75, out=out)
