"""Checks on numbers: config values and tensors as they are read, results before they are used.

A NaN in one adapter entry, an integer tensor, or a NaN / huge scale passes through every merge,
fold and fuse without an error and ends as a model that writes garbage; these checks stop it at
the file, in one line that names the file and the key or tensor.
"""

from __future__ import annotations

import math

import mlx.core as mx

from .errors import MlxLcError

# A LoRA scale (mlx-lm's `scale`, PEFT's alpha/r) outside this range is a broken file, not a
# choice: mlx-lm's default is 20 and PEFT's alpha/r is usually 0.5-4. At 1e4 an update entry
# (a b) above 6.5 already overflows float16 (max 65504), so larger scales cannot survive a
# float16 model or export; below 1e-6 the update is under float16's resolution of typical weights
# (and merge/fold divide by the scale).
MIN_SCALE, MAX_SCALE = 1e-6, 1e4
FP32_MAX = 3.4028234663852886e38


def number(value, key: str, where) -> float:
    """A JSON number (not a bool, string or list) as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MlxLcError(f"{where}: {key} must be a number, got {value!r}")
    return float(value)


def whole(value, key: str, where) -> int:
    """A JSON whole number (4 or 4.0; not 4.5, which int() would silently make 4)."""
    x = number(value, key, where)
    if not x.is_integer():
        raise MlxLcError(f"{where}: {key} must be a whole number, got {value!r}")
    return int(x)


def check_scale(value: float, key: str, where, given=None) -> float:
    """A LoRA scale: finite, non-zero, MIN_SCALE <= |scale| <= MAX_SCALE. `given`: the config
    value it came from (PEFT's lora_alpha), named in the message instead of the scale."""
    if not (math.isfinite(value) and MIN_SCALE <= abs(value) <= MAX_SCALE):
        got = f"{given!r} (scale {value!r})" if given is not None else repr(value)
        raise MlxLcError(f"{where}: {key} must give a finite scale between {MIN_SCALE:g} and {MAX_SCALE:g} "
                         f"in size, got {got}")
    return value


def _dtype(t: mx.array) -> str:
    return str(t.dtype).rsplit(".", 1)[-1]


def non_finite(tensors: dict[str, mx.array]) -> list[str]:
    """Names of the tensors holding NaN or Inf (one evaluation for all of them)."""
    keys = sorted(tensors)
    if not keys:
        return []
    ok = mx.stack([mx.isfinite(tensors[k]).all() for k in keys]).tolist()
    return [k for k, good in zip(keys, ok) if not good]


def and_more(names: list[str]) -> str:
    return f" (and {len(names) - 1} more)" if len(names) > 1 else ""


def check_tensors(tensors: dict[str, mx.array], where) -> None:
    """Tensors read from `where`: floating point and finite, else one line naming the first bad one."""
    for k in sorted(tensors):
        if not mx.issubdtype(tensors[k].dtype, mx.floating):
            raise MlxLcError(f"{where}: tensor {k} is {_dtype(tensors[k])}, not a floating-point type")
    bad = non_finite(tensors)
    if bad:
        raise MlxLcError(f"{where}: tensor {bad[0]} has NaN or Inf values{and_more(bad)}")


def overflowing(factors: dict[str, tuple[mx.array, mx.array]], scale: float) -> list[str]:
    """Modules whose factors, or update scale * a @ b, hold NaN or Inf in float32. The product is
    computed only where the bound |scale| r max|a| max|b| says it could overflow."""
    flat = {f"{p}.{n}": t for p, ab in factors.items() for n, t in zip(("lora_a", "lora_b"), ab)}
    bad = non_finite(flat)
    if bad:
        return bad
    paths = sorted(factors)
    peaks = mx.stack([mx.stack([mx.abs(a).max(), mx.abs(b).max()]) for a, b in (factors[p] for p in paths)]).tolist()
    out = []
    for path, (ma, mb) in zip(paths, peaks):
        a, b = factors[path]
        if abs(scale) * a.shape[1] * ma * mb >= FP32_MAX:
            if not mx.isfinite(scale * (a.astype(mx.float32) @ b.astype(mx.float32))).all().item():
                out.append(path)
    return out


def check_result(factors: dict[str, tuple[mx.array, mx.array]], scale: float, what: str) -> None:
    """Refuse a merged or folded adapter with non-finite factors or updates before anything uses it
    (PEFT's safe_merge does the same for merged weights)."""
    bad = overflowing(factors, scale)
    if bad:
        raise overflow_error(what, bad)


def overflow_error(what: str, names: list[str]) -> MlxLcError:
    return MlxLcError(f"{what} has non-finite values (NaN or Inf) in {names[0]}{and_more(names)}: "
                      "the update overflows float32; check the adapters' values and the weights")
