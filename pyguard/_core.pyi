"""Type stubs for the native core (pyguard._core). Each kernel family keeps its own section."""

import numpy as np

def supported_isas() -> list[str]: ...
def best_isa() -> str: ...

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
