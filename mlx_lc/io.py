"""Small file helpers: atomic output folders, JSON, safetensors, hashes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import mlx.core as mx

from .errors import MlxLcError


@contextlib.contextmanager
def atomic_dir(out: str | Path, overwrite: bool = True):
    """Yield a temporary folder beside `out`; rename it to `out` only if the block succeeds.

    A failed run never leaves a half-written artifact behind.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MlxLcError(f"{out} exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise MlxLcError(f"{out} exists and is not empty")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


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
