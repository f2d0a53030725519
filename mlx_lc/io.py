"""Small file helpers: JSON, safetensors, hashes (and, re-exported from outputs, the output rule)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import mlx.core as mx

from .errors import MlxLcError
# The output rule lives in outputs.py; these names stay importable from here.
from .outputs import KINDS, atomic_dir, atomic_write_text, check_out, check_out_dir, check_out_path  # noqa: F401


def shape_mismatches(expected: dict[str, mx.array], tensors: dict[str, mx.array]) -> list[str]:
    """What keeps `tensors` from loading into parameters shaped like `expected`: missing names,
    unexpected names, wrong shapes (load_weights(strict=False) would take them silently)."""
    errors = [f"{k}: missing" for k in sorted(set(expected) - set(tensors))]
    errors += [f"{k}: unexpected" for k in sorted(set(tensors) - set(expected))]
    errors += [f"{k}: shape {tuple(tensors[k].shape)}, expected {tuple(v.shape)}"
               for k, v in sorted(expected.items()) if k in tensors and tensors[k].shape != v.shape]
    return errors


def read_text(path: str | Path, what: str = "file") -> str:
    """A UTF-8 text file, or one line naming it: missing (`what` not found), a folder, not UTF-8."""
    path = Path(path)
    if path.is_dir():
        raise MlxLcError(f"{path} is a folder, not a {what}")
    if not path.is_file():
        raise MlxLcError(f"{what} not found: {path}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise MlxLcError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})") from None


def read_json(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise MlxLcError(f"missing file: {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MlxLcError(f"corrupt JSON in {path}: {e}") from None


def write_json(path: str | Path, obj) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def load_safetensors(path: str | Path) -> dict[str, mx.array]:
    """Load tensors from a safetensors file (the only weight format we accept)."""
    path = Path(path)
    if not path.is_file():
        raise MlxLcError(f"missing file: {path}")
    if path.suffix != ".safetensors":
        raise MlxLcError(f"{path}: only .safetensors weights are accepted")
    try:
        return mx.load(str(path))
    except Exception as e:  # mlx raises RuntimeError/ValueError with a multi-line message
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MlxLcError(f"corrupt safetensors file {path}: {first}") from None


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
