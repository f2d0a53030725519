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
CHUNK = 1 << 22  # elements quantized at once (16 MB per float32 temporary, whatever the tensor)


@dataclass
class Quantized:
    codes: np.ndarray  # int8 array holding int8 or int4 values, shape of the weight (out, in)
    scale: np.ndarray  # float16, (out, in / block)
    bits: int

    @property
    def block(self) -> int:
        return self.codes.shape[1] // self.scale.shape[1]

    def dequantize(self, dtype=np.float32) -> np.ndarray:
        """codes * scale, computed in float32 a few rows at a time and stored in `dtype`."""
        out = np.empty(self.codes.shape, dtype)
        rows = max(1, CHUNK // self.codes.shape[1])
        for i in range(0, out.shape[0], rows):
            scale = np.repeat(self.scale[i:i + rows].astype(np.float32), self.block, axis=1)
            out[i:i + rows] = self.codes[i:i + rows].astype(np.float32) * scale
        return out

    def nbytes(self) -> int:
        return self.codes.size * self.bits // 8 + self.scale.size * 2


def applies(shape: tuple[int, ...], mode: str) -> bool:
    """Whether `mode` quantizes a weight of this shape (else it stays float16)."""
    if mode not in MODES:
        raise MlxLcError(f"unknown quantization {mode!r}; choose from {', '.join(MODES)}")
    if mode == "none" or len(shape) != 2 or int(np.prod(shape)) <= MIN_ELEMENTS:
        return False
    return mode == "int8" or shape[1] % INT4_BLOCK == 0


def quantize(w: np.ndarray, mode: str) -> Quantized | None:
    """Quantize a 2-D weight (out, in); None when `mode` leaves it float16."""
    if not applies(w.shape, mode):
        return None
    bits, block = (8, w.shape[1]) if mode == "int8" else (4, INT4_BLOCK)
    q_max = 2 ** (bits - 1) - 1
    codes = np.empty(w.shape, np.int8)
    scale = np.empty((w.shape[0], w.shape[1] // block), np.float16)
    rows = max(1, CHUNK // w.shape[1])
    for i in range(0, w.shape[0], rows):  # a few rows at a time: the temporaries stay small
        blocks = w[i:i + rows].astype(np.float32).reshape(-1, scale.shape[1], block)
        max_abs = np.abs(blocks).max(axis=2)
        # Round the scale to float16 first so that the codes match the scale the model stores.
        s = np.where(max_abs > 0, max_abs / q_max, 1.0).astype(np.float16)
        scale[i:i + rows] = s
        codes[i:i + rows] = np.clip(np.round(blocks / s.astype(np.float32)[:, :, None]), -q_max, q_max).reshape(-1, w.shape[1])
    return Quantized(codes, scale, bits)
