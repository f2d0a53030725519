"""The base model's weights, read from its safetensors files one tensor at a time.

Export writes each base weight once, in the form the package stores it (float16, or int4/int8
codes and scales). Holding the whole model in float32 beside that (and mlx's own copy) took five
times the model's float16 bytes on a 0.5B model; reading a tensor only when it is converted, and
keeping nothing, bounds the export by what it writes plus one tensor in float32.

A tensor is read through `mx.load`, which is lazy: a fresh load per read maps just that tensor's
bytes, and nothing of it outlives the float32 copy returned. mlx-quantized checkpoints are
dequantized per tensor with the group size, bits and mode mlx-lm's loader gave each layer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from ..errors import MlxLcError


class SafetensorsWeights(Mapping):
    """`{name: float32 array}` under mlx-lm's names, each value read from disk when asked for."""

    def __init__(self, folder: Path, shapes: dict[str, tuple[int, ...]],
                 quantized: dict[str, tuple[int, int, str]] | None = None, name: str = "model"):
        import mlx.core as mx

        self.shapes = dict(shapes)  # the float tensors' shapes (a quantized weight's unpacked shape)
        self.quantized = dict(quantized or {})  # module path -> (group_size, bits, mode)
        self.name = name
        self._file: dict[str, Path] = {}
        for f in sorted(Path(folder).glob("model*.safetensors")):
            for key in mx.load(str(f)):  # the header only: nothing is read until evaluated
                self._file[key] = f
        missing = [k for k in self.shapes if any(p not in self._file for p in self._parts(k))]
        if missing:  # mlx-lm renamed them while loading (an architecture export does not support)
            raise MlxLcError(f"{name}: tensors not found under their own names in its safetensors files: "
                             + ", ".join(missing[:4]) + (f" (and {len(missing) - 4} more)" if len(missing) > 4 else ""))

    def _parts(self, key: str) -> list[str]:
        path, _, leaf = key.rpartition(".")
        if leaf == "weight" and path in self.quantized:
            return [key, f"{path}.scales", f"{path}.biases"] if self.quantized[path][2] == "affine" else [key, f"{path}.scales"]
        return [key]

    def __getitem__(self, key: str) -> np.ndarray:
        return self.read(key)

    def read(self, key: str, dtype=np.float32) -> np.ndarray:
        """The tensor `key` in `dtype` (float32 or float16), read from disk now and not kept."""
        import mlx.core as mx

        if key not in self.shapes:
            raise KeyError(key)
        parts = self._parts(key)
        arrays = [mx.load(str(self._file[p]))[p] for p in parts]  # fresh lazy arrays: nothing cached
        if len(arrays) > 1:
            group_size, bits, mode = self.quantized[key.rpartition(".")[0]]
            w, scales, *biases = arrays
            arr = mx.dequantize(w, scales, biases[0] if biases else None, group_size=group_size, bits=bits, mode=mode)
        else:
            arr = arrays[0]
        out = np.asarray(arr.astype(mx.float16 if np.dtype(dtype) == np.float16 else mx.float32))  # no copy
        if out.shape != tuple(self.shapes[key]):
            raise MlxLcError(f"{self.name}: {key} reads as {out.shape} from its file, the model expects "
                             f"{tuple(self.shapes[key])}")
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(self.shapes)

    def __len__(self) -> int:
        return len(self.shapes)

    def nbytes_fp16(self) -> int:
        return 2 * sum(int(np.prod(s)) for s in self.shapes.values())


def read(weights: Mapping, key: str, dtype=np.float32) -> np.ndarray:
    """One base tensor in `dtype`: from disk for SafetensorsWeights, else converted from the mapping."""
    if isinstance(weights, SafetensorsWeights):
        return weights.read(key, dtype)
    return np.ascontiguousarray(weights[key], dtype=dtype)


def shapes_of(weights: Mapping) -> dict[str, tuple[int, ...]]:
    """Shapes without reading: a SafetensorsWeights knows them; a plain dict of arrays has them."""
    if isinstance(weights, SafetensorsWeights):
        return weights.shapes
    return {k: tuple(np.shape(v)) for k, v in weights.items()}
