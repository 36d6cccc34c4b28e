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
