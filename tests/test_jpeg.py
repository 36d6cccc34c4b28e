"""JPEG squeezer: parity with PIL (what ART uses) and OpenCV's own round trip, layouts, dtypes, errors."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from pyguard.ops import jpeg


def pil_round_trip(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf))


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "sklearn0", "sklearn1"])
@pytest.mark.parametrize("quality", [10, 75, 95])
def test_uint8_hwc_matches_pil(photos, name, quality):
    img = np.ascontiguousarray(photos[name][:223, :225])
    np.testing.assert_array_equal(jpeg(img, quality, layout="HWC"), pil_round_trip(img, quality))


def test_grayscale_matches_pil(photos):
    img = np.ascontiguousarray(photos["camera"][:101, :77])
    ours = jpeg(img, 60, layout="HW")
    np.testing.assert_array_equal(ours, pil_round_trip(img, 60))


def test_bgr_order_matches_opencv(photos):
    img = np.ascontiguousarray(photos["coffee"][:64, :80])
    _, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 50])
    expected = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(jpeg(img, 50, layout="HWC", color="BGR"), expected)


def test_float_nchw_batch_rounds_and_matches_uint8_path(photos):
    imgs = np.stack([photos[k][:32, :48] for k in ("astronaut", "coffee", "chelsea")])
    x = np.ascontiguousarray(imgs.transpose(0, 3, 1, 2)).astype(np.float32) / 255.0
    # Nudge values just below the grid: rounding (not truncation) must bring them back.
    x_nudged = np.nextafter(x, np.float32(-1.0))
    ours = jpeg(x_nudged, 75)
    assert ours.dtype == np.float32 and ours.shape == x.shape
    expected = np.stack([pil_round_trip(np.ascontiguousarray(i), 75) for i in imgs]).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(ours, expected.astype(np.float32) / np.float32(255.0))


def test_nhwc_equals_nchw(photos):
    imgs = np.stack([photos[k][:40, :40] for k in ("astronaut", "chelsea")]).astype(np.float32) / 255
    nhwc = jpeg(imgs, 80, layout="NHWC")
    nchw = jpeg(np.ascontiguousarray(imgs.transpose(0, 3, 1, 2)), 80, layout="NCHW")
    np.testing.assert_array_equal(nhwc, nchw.transpose(0, 2, 3, 1))


def test_matches_art(photo_batch_nchw):
    from art.defences.preprocessor import JpegCompression

    x = photo_batch_nchw[:, :, :64, :64].copy()
    art, _ = JpegCompression(clip_values=(0, 1), quality=75, channels_first=True)(x)
    np.testing.assert_allclose(jpeg(x, 75), art, atol=1e-6)


def test_out_and_non_contiguous(photos):
    img = photos["astronaut"][:50, :60]
    strided = img[::2, ::2]
    assert not strided.flags.c_contiguous
    out = np.empty(strided.shape, np.uint8)
    res = jpeg(strided, 70, layout="HWC", out=out)
    assert res is out
    np.testing.assert_array_equal(out, pil_round_trip(np.ascontiguousarray(strided), 70))


def test_values_outside_unit_range_are_clipped():
    x = np.full((1, 1, 8, 8), 2.0, np.float32)
    x[0, 0, 0, 0] = -1.0
    y = jpeg(x, 90)
    assert y.min() >= 0.0 and y.max() <= 1.0


@pytest.mark.parametrize("quality", [0, 101, 75.0, True])
def test_bad_quality(quality):
    with pytest.raises(ValueError, match="quality"):
        jpeg(np.zeros((1, 3, 8, 8), np.float32), quality)


def test_bad_inputs():
    with pytest.raises(TypeError, match="dtype"):
        jpeg(np.zeros((1, 3, 8, 8), np.float64), 75)
    with pytest.raises(ValueError, match="layout"):
        jpeg(np.zeros((1, 3, 8, 8), np.float32), 75, layout="NCWH")
    with pytest.raises(ValueError, match="4-D"):
        jpeg(np.zeros((3, 8, 8), np.float32), 75, layout="NCHW")
    with pytest.raises(ValueError, match="channels"):
        jpeg(np.zeros((1, 4, 8, 8), np.float32), 75)
    with pytest.raises(ValueError, match="empty"):
        jpeg(np.zeros((0, 3, 8, 8), np.float32), 75)
    with pytest.raises(ValueError, match="NaN"):
        jpeg(np.full((1, 3, 8, 8), np.nan, np.float32), 75)
    with pytest.raises(ValueError, match="color"):
        jpeg(np.zeros((1, 3, 8, 8), np.float32), 75, color="YUV")
