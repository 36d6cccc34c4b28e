# Typed stub of the native module pyguard._core (csrc/bindings.cpp). Use pyguard.ops, not this, directly.
from __future__ import annotations

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]

def supported_isas() -> list[str]: ...
def best_isa() -> str: ...

# ---- bit_depth ----
def bit_depth_f32(
    x: npt.NDArray[np.float32], out: npt.NDArray[np.float32], bits: int, lo: float, hi: float, isa: str
) -> None: ...
def bit_depth_u8(x: npt.NDArray[np.uint8], out: npt.NDArray[np.uint8], bits: int, isa: str) -> None: ...

# ---- checks ----
def sample_checks_f32(
    x: npt.NDArray[np.float32], samples: int, lo: float, hi: float, grid: bool, scale: float,
    nonfinite: npt.NDArray[np.int64], out_of_range: npt.NDArray[np.int64], off_grid: npt.NDArray[np.int64],
    isa: str,
) -> None: ...
def sample_checks_u8(
    x: npt.NDArray[np.uint8], samples: int, lo: int, hi: int, nonfinite: npt.NDArray[np.int64],
    out_of_range: npt.NDArray[np.int64], off_grid: npt.NDArray[np.int64], isa: str,
) -> None: ...

# ---- stats ----
def minmax_f32(
    x: npt.NDArray[np.float32], samples: int, outer: int, channels: int, inner: int,
    mins: npt.NDArray[np.float32], maxs: npt.NDArray[np.float32], isa: str,
) -> None: ...
def range_check_f32(
    x: npt.NDArray[np.float32], samples: int, outer: int, channels: int, inner: int,
    lo: npt.NDArray[np.float32], hi: npt.NDArray[np.float32], counts: npt.NDArray[np.int64],
    max_excess: npt.NDArray[np.float32], isa: str,
) -> None: ...
def clamp_f32(
    x: npt.NDArray[np.float32], out: npt.NDArray[np.float32], samples: int, outer: int, channels: int,
    inner: int, lo: npt.NDArray[np.float32], hi: npt.NDArray[np.float32], isa: str,
) -> None: ...

# ---- median ----
def median_filter_f32(
    x: np.ndarray,
    out: np.ndarray,
    planes: int,
    height: int,
    width: int,
    channels: int,
    size: int,
    isa: str = ...,
) -> bool: ...
def median_filter_u8(
    x: np.ndarray,
    out: np.ndarray,
    planes: int,
    height: int,
    width: int,
    channels: int,
    size: int,
    isa: str = ...,
) -> bool: ...
# ---- median (end) ----

# ---- nl_means ----
def nl_means_u8(
    x: npt.NDArray[np.uint8],
    out: npt.NDArray[np.uint8],
    search: int,
    patch: int,
    h: float,
    h_color: float,
    isa: str = "auto",
) -> None:
    """Non-local means on (N, H, W, C) uint8, C = 1 (gray) or 3 (CIELAB: L with h, ab with h_color)."""
# ---- nl_means (end) ----

# ---- session ----
# The per-call work of a guarded session's common run (pyguard/session.py, _FastPath).
def session_counts_f32(
    x: npt.NDArray[np.float32], samples: int, lo: float, hi: float, ranged: bool, isa: str
) -> tuple[I64, I64]: ...
def session_counts_u8(x: U8, samples: int, lo: int, hi: int, isa: str) -> tuple[I64, I64]: ...
def session_verdict(
    nonfinite: I64, out_of_range: I64, excess: F32, channels: int, tolerance: float, isa: str
) -> tuple[npt.NDArray[np.bool_], F32 | None, int]: ...
# ---- session (end) ----
