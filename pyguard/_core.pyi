# ---- nl_means ----
import numpy as np
import numpy.typing as npt

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
