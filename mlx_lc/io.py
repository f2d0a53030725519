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


def check_out_path(out: str | Path, folder: bool = True) -> None:
    """Fail before any work when `out` cannot become a folder (or, folder=False, a file):
    it exists as the other kind, or one of its parents is a file."""
    out = Path(out)
    if folder and out.exists() and not out.is_dir():
        raise MlxLcError(f"{out} exists and is not a folder")
    if not folder and out.is_dir():
        raise MlxLcError(f"{out} is a folder, not a file")
    for parent in Path(os.path.abspath(out)).parents:
        if parent.exists() and not parent.is_dir():
            raise MlxLcError(f"{out}: {parent} exists and is not a folder")


def check_out_dir(out: str | Path, marker: str, kind: str) -> None:
    """Refuse an `out` that atomic_dir would replace but that is not an earlier artifact of
    this kind (one holding `marker`): replacing it would delete whatever the user keeps there."""
    check_out_path(out)
    out = Path(out)
    if out.is_dir() and any(out.iterdir()) and not (out / marker).exists():
        raise MlxLcError(f"{out} is not empty and holds no {marker} (not an earlier {kind}); "
                         "refusing to replace it: choose a new or empty --out")
    cwd = Path.cwd().resolve()
    if out.resolve() == cwd or out.resolve() in cwd.parents:
        # Swapping the current folder away would leave this shell in a deleted folder.
        raise MlxLcError(f"{out} is the current folder or holds it; choose another --out")


def check_out(out: str | Path, inputs) -> None:
    """Refuse an --out that is one of the command's inputs or a folder holding one: writing
    the output would replace the input. Inputs that are not on disk (hub ids, None) are skipped."""
    target = Path(out).resolve()
    for i in inputs:
        if i is None or not Path(i).exists():
            continue
        p = Path(i).resolve()
        if p == target or target in p.parents:
            where = "is" if p == target else "holds"
            raise MlxLcError(f"--out {out} {where} the input {i}; choose another --out")


@contextlib.contextmanager
def atomic_dir(out: str | Path, *, marker: str, kind: str):
    """Yield a temporary folder beside `out`; rename it to `out` only if the block succeeds.

    A failed run never leaves a half-written artifact (or its temporary folder) behind. An
    existing `out` is replaced only when empty or an earlier `kind` (it holds `marker`).
    """
    check_out_dir(out, marker, kind)
    # abspath: "." or "x/.." have no usable name to put a sibling beside; no symlinks followed,
    # so a link named as --out is replaced, not the folder it points to.
    out = Path(os.path.abspath(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            try:
                os.replace(tmp, out)
            except BaseException:
                os.replace(old, out)  # put the earlier artifact back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when the rename worked


def atomic_write_text(path: str | Path, text: str) -> None:
    check_out_path(path, folder=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
