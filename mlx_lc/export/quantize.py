"""Weight quantization for export: pure numpy, applied after any update is fused in float.

Symmetric linear quantization as coremltools' `linear_quantize_weights(mode="linear_symmetric")`:
scale = max|w| / q_max over a block, codes = round(w / scale) clipped to [-q_max, q_max]
(q_max 127 for int8, 7 for int4), w ~= codes * scale. int8 uses one scale per output channel;
int4 one scale per block of 32 input values. Like coremltools, a tensor whose input dimension
does not divide by the block, or with at most 2048 elements, stays float16.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import MlxLcError

MODES = ("none", "int8", "int4")
INT4_BLOCK = 32
MIN_ELEMENTS = 2048  # coremltools' default weight_threshold: smaller tensors stay float


@dataclass
class Quantized:
    codes: np.ndarray  # int8 array holding int8 or int4 values, shape of the weight (out, in)
    scale: np.ndarray  # float16, (out, in / block)
    bits: int

    @property
    def block(self) -> int:
        return self.codes.shape[1] // self.scale.shape[1]

    def dequantize(self) -> np.ndarray:
        return self.codes.astype(np.float32) * np.repeat(self.scale.astype(np.float32), self.block, axis=1)

    def nbytes(self) -> int:
        return self.codes.size * self.bits // 8 + self.scale.size * 2


def quantize(w: np.ndarray, mode: str) -> Quantized | None:
    """Quantize a 2-D weight (out, in); None when `mode` leaves it float16."""
    if mode not in MODES:
        raise MlxLcError(f"unknown quantization {mode!r}; choose from {', '.join(MODES)}")
    if mode == "none" or w.ndim != 2 or w.size <= MIN_ELEMENTS:
        return None
    bits, block = (8, w.shape[1]) if mode == "int8" else (4, INT4_BLOCK)
    if w.shape[1] % block:
        return None
    q_max = 2 ** (bits - 1) - 1
    blocks = w.astype(np.float32).reshape(w.shape[0], -1, block)
    max_abs = np.abs(blocks).max(axis=2)
    # Round the scale to float16 first so that the codes match the scale the model stores.
    scale = np.where(max_abs > 0, max_abs / q_max, 1.0).astype(np.float16)
    codes = np.clip(np.round(blocks / scale.astype(np.float32)[:, :, None]), -q_max, q_max)
    return Quantized(codes.reshape(w.shape).astype(np.int8), scale, bits)
