"""JPEG re-encoding squeezer, through OpenCV's libjpeg-turbo.

A round trip through the JPEG codec removes high-frequency perturbations (Dziugaite et al. 2016; Das et al.
2017). Float input in [0, 1] is rounded (not truncated) to 8 bits first; the result returns in the input's
dtype and layout. Colour images are treated as RGB by default, like PIL and ART: the codec's YCbCr
conversion and chroma subsampling are not symmetric in R and B, so the channel order matters.
"""

from __future__ import annotations

import cv2
import numpy as np

from .._validate import as_input, planes, prepare_out

COLOR_ORDERS = ("RGB", "BGR")
CHANNEL_FIRST = ("NCHW", "CHW")


def _images(x: np.ndarray, layout: str) -> np.ndarray:
    """Reshape (no copy) to N x C x H x W for channel-first layouts, N x H x W x C otherwise."""
    n, h, w, c = planes(x.shape, layout)
    if layout in CHANNEL_FIRST:
        return x.reshape(-1, x.shape[-3], h, w)
    return x.reshape(n, h, w, c)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Round float [0, 1] to the 8-bit grid (half to even), clipping outside values."""
    if image.dtype == np.uint8:
        return image
    scaled = np.multiply(image, np.float32(255.0))
    if not np.isfinite(scaled).all():
        raise ValueError("jpeg: input contains NaN or Inf")
    np.rint(scaled, out=scaled)
    np.clip(scaled, 0, 255, out=scaled)
    return scaled.astype(np.uint8)


def _encode_decode(img: np.ndarray, quality: int) -> np.ndarray:
    """One JPEG round trip of an HxW or HxWx3 (BGR) uint8 image."""
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV failed to encode the image as JPEG")
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE if img.ndim == 2 else cv2.IMREAD_COLOR)


def _store(src: np.ndarray, dst: np.ndarray) -> None:
    if dst.dtype == np.uint8:
        dst[...] = src
    else:
        np.divide(src, np.float32(255.0), out=dst, casting="unsafe")


def _round_trip_channel_first(img: np.ndarray, dst: np.ndarray, quality: int, rgb: bool) -> None:
    """C x H x W in, C x H x W out; cv2.merge/split interleave the planes faster than a numpy transpose."""
    chans = list(_to_uint8(img))
    if len(chans) == 1:
        _store(_encode_decode(chans[0], quality), dst[0])
        return
    order = chans[::-1] if rgb else chans
    decoded = cv2.split(_encode_decode(cv2.merge(order), quality))
    for plane, target in zip(decoded[::-1] if rgb else decoded, dst):
        _store(plane, target)


def _round_trip_channel_last(img: np.ndarray, dst: np.ndarray, quality: int, rgb: bool) -> None:
    """H x W x C in, H x W x C out."""
    u8 = np.ascontiguousarray(_to_uint8(img))
    if u8.shape[2] == 1:
        _store(_encode_decode(u8[:, :, 0], quality)[:, :, None], dst)
        return
    src = cv2.cvtColor(u8, cv2.COLOR_RGB2BGR) if rgb else u8
    dec = _encode_decode(src, quality)
    _store(cv2.cvtColor(dec, cv2.COLOR_BGR2RGB) if rgb else dec, dst)


def jpeg(x: np.ndarray, quality: int, *, layout: str = "NCHW", color: str = "RGB",
         out: np.ndarray | None = None) -> np.ndarray:
    """JPEG round trip of every image in ``x`` at ``quality`` (1..100).

    ``x`` is float32 in [0, 1] (rounded to the 8-bit grid, values outside clipped) or uint8; images have
    1 or 3 channels. Returns the same dtype, shape and layout.
    """
    x = as_input(x)
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ValueError(f"jpeg: quality must be an integer in 1..100, got {quality!r}")
    if color not in COLOR_ORDERS:
        raise ValueError(f"jpeg: color must be one of {COLOR_ORDERS}, got {color!r}")
    images = _images(x, layout)
    channels = images.shape[1] if layout in CHANNEL_FIRST else images.shape[3]
    if channels not in (1, 3):
        raise ValueError(f"jpeg: images need 1 or 3 channels, got {channels}")
    out = prepare_out(out, x.shape, x.dtype)
    round_trip = _round_trip_channel_first if layout in CHANNEL_FIRST else _round_trip_channel_last
    for img, dst in zip(images, _images(out, layout)):
        round_trip(img, dst, int(quality), color == "RGB")
    return out
