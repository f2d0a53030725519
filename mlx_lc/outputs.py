"""The one rule every writing command follows for its output folder (--out).

- It writes only inside its own --out. The work happens in a temporary sibling
  `.NAME.mlx-lc-tmp-PID-XXXXXXXX`, swapped in as a unit when the work succeeded; an earlier
  output waits as `.NAME.mlx-lc-old-PID` during the swap.
- It replaces only an empty folder or an earlier output of its own kind (KINDS: the marker file
  that kind of folder holds), never one of the command's inputs; both are checked before any work.
- A later run sweeps the temporaries of runs whose process is gone, and puts back an earlier
  output that a crash between the swap's two renames left only under its `.mlx-lc-old-` name.
- A name too long for the file system (with the temporary's prefix) fails before any work.
- Folders and files get the user's umask, like any other file they make.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import sys
from pathlib import Path

from .errors import MlxLcError

# kind -> marker: the file (or folder) that an earlier output of that kind holds. Order matters
# where one kind's folder also holds another's marker (an export holds config.json and
# manifest.json; a demo folder results.json): kind_of takes the first match.
KINDS = {
    "export": "export.json",
    "adapter": "adapter_config.json",
    "calibration": "calibration_config.json",
    "checkpoint": "state.json",
    "demo": "work",  # a demo's --out holds work/ from its first step on
    "world": "benchmark.json",
    "judge output": "judge_summary.json",
    "eval output": "results.json",
    "bench": "bench.json",
    "iOS golden set": "versions.json",
    "data build": "manifest.json",
    "model folder": "config.json",
}

TMP, OLD = "mlx-lc-tmp", "mlx-lc-old"
_PID_WIDTH, _RAND = 7, 8  # pid_max is at most 4194304 (7 digits); 8 random characters
_LONGEST_EXTRA = len(f"..{TMP}--") + _PID_WIDTH + _RAND  # what a temporary's name adds to NAME


def tmp_name(name: str, pid: int | None = None) -> str:
    return f".{name}.{TMP}-{pid or os.getpid()}-{secrets.token_hex(_RAND // 2)}"


def old_name(name: str, pid: int | None = None) -> str:
    return f".{name}.{OLD}-{pid or os.getpid()}"


def kind_of(folder: str | Path) -> str | None:
    """The kind of earlier output `folder` is (by its marker), or None."""
    folder = Path(folder)
    return next((k for k, m in KINDS.items() if (folder / m).exists()), None)


# ---------------------------------------------------------------- checks (before any work)

def check_out_path(out: str | Path, folder: bool = True) -> None:
    """Fail before any work when `out` cannot become a folder (or, folder=False, a file): it
    exists as the other kind, one of its parents is a file, or its name is too long."""
    out = Path(out)
    if folder and out.exists() and not out.is_dir():
        raise MlxLcError(f"{out} exists and is not a folder")
    if not folder and out.is_dir():
        raise MlxLcError(f"{out} is a folder, not a file")
    for parent in Path(os.path.abspath(out)).parents:
        if parent.exists() and not parent.is_dir():
            raise MlxLcError(f"{out}: {parent} exists and is not a folder")
    check_name_length(out)


def check_name_length(out: str | Path) -> None:
    """A name that the file system takes, with room for the temporary sibling's prefix and suffix;
    otherwise the work would be done first and the output never made."""
    out = Path(os.path.abspath(out))
    existing = next(p for p in [out.parent, *out.parents] if p.exists())
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    too_long = [p.name for p in [out, *out.parents] if not p.exists() and len(os.fsencode(p.name)) > name_max]
    n = len(os.fsencode(out.name))
    if too_long or n + _LONGEST_EXTRA > name_max:
        raise MlxLcError(f"{out.name[:40]}...: name too long for this file system ({n} bytes; at most "
                         f"{name_max - _LONGEST_EXTRA} here, leaving room for the temporary folder's name)")


def _marker_for(kind: str, marker: str | None) -> str:
    if marker is None:
        if kind not in KINDS:
            raise ValueError(f"unknown output kind {kind!r}")
        return KINDS[kind]
    return marker


def check_out_dir(out: str | Path, marker: str | None = None, kind: str = "output") -> None:
    """Refuse an `out` that a run would replace but that is not an earlier output of this kind
    (one holding `marker`): replacing it would delete whatever the user keeps there. Recovers
    and sweeps what earlier runs left beside it first (recover)."""
    check_out_path(out)
    recover(out)
    check_contents(out, marker, kind)


def check_contents(out: str | Path, marker: str | None = None, kind: str = "output",
                   also_ok=lambda folder: False) -> None:
    """The kind check of check_out_dir alone (nothing swept); `also_ok(out)` may accept a
    non-empty folder that holds no marker."""
    marker = _marker_for(kind, marker)
    out = Path(out)
    if out.is_dir() and any(out.iterdir()) and not also_ok(out):
        other = kind_of(out)
        if not (out / marker).exists():
            what = f"; it is {_a(other)}" if other else ""
            raise MlxLcError(f"out {out} is not empty and holds no {marker} (not an earlier {kind}{what}); "
                             "refusing to replace it: choose a new or empty folder", param="out")
        if kind in KINDS and other != kind:  # it holds the marker, but also a more telling one
            raise MlxLcError(f"out {out} is {_a(other)}, not an earlier {kind}; refusing to replace it: "
                             "choose a new or empty folder", param="out")
    cwd = Path.cwd().resolve()
    if out.resolve() == cwd or out.resolve() in cwd.parents:
        # Swapping the current folder away would leave this shell in a deleted folder.
        raise MlxLcError(f"out {out} is the current folder or holds it; choose another folder", param="out")


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0].lower() in "aeiou" else f"a {kind}"


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
            raise MlxLcError(f"out {out} {where} the input {i}; choose another folder", param="out")


# ---------------------------------------------------------------- leftovers of earlier runs

def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _leftovers(out: Path):
    """(path, 'tmp' | 'old', pid) for each temporary or old copy of `out` beside it."""
    if not out.parent.is_dir():
        return
    pat = re.compile(rf"^\.{re.escape(out.name)}\.(?:({TMP})-(\d+)-[0-9a-f]+|({OLD})-(\d+)|old-(\d+))$")
    for p in out.parent.iterdir():
        m = pat.match(p.name)
        if m:
            if m.group(1):
                yield p, "tmp", int(m.group(2))
            else:  # `.NAME.old-PID` is the name earlier versions used
                yield p, "old", int(m.group(4) or m.group(5))


def _remove(p: Path) -> None:
    shutil.rmtree(p, ignore_errors=True) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)


def recover(out: str | Path, spare=lambda tmp: False) -> None:
    """Sweep the leftovers of runs whose process is gone: temporaries are deleted (but those
    `spare(tmp)` keeps); an old copy is put back when `out` is missing (the run died between the
    swap's two renames), else deleted (the swap had finished)."""
    out = Path(os.path.abspath(out))
    with contextlib.suppress(OSError):
        for p, what, pid in sorted(_leftovers(out), key=lambda x: x[1] == "tmp"):
            if _alive(pid) or (what == "tmp" and spare(p)):
                continue
            if what == "old" and not os.path.lexists(out):
                os.replace(p, out)
                print(f"mlx-lc: put back {out}, which an interrupted earlier run had left as {p.name}",
                      file=sys.stderr)
            else:
                _remove(p)


# ---------------------------------------------------------------- writing

def make_tmp_dir(out: Path) -> Path:
    """A new empty temporary sibling of `out`, with the umask's permissions (mkdtemp's are 0700)."""
    for _ in range(100):
        tmp = out.with_name(tmp_name(out.name))
        try:
            os.mkdir(tmp)
            return tmp
        except FileExistsError:
            continue
    raise MlxLcError(f"cannot make a temporary folder beside {out}")


@contextlib.contextmanager
def _locked(folder: Path):
    """An exclusive flock on `folder` (the parent of --out), so two runs writing the same --out
    swap one after the other instead of interleaving their renames."""
    try:
        fd = os.open(folder, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:  # a folder we may write but not read, or no flock there: swap unlocked
        fd = None
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


def swap_in(tmp: Path, out: Path) -> None:
    """Put the finished folder `tmp` at `out`, replacing an earlier one; under the parent's lock."""
    with _locked(out.parent):
        if os.path.lexists(out):
            old = out.with_name(old_name(out.name))
            os.replace(out, old)
            try:
                os.replace(tmp, out)
            except BaseException:
                os.replace(old, out)  # put the earlier output back
                raise
            _remove(old)
        else:
            os.replace(tmp, out)


@contextlib.contextmanager
def atomic_dir(out: str | Path, *, marker: str | None = None, kind: str = "output", inputs=()):
    """Yield a temporary folder beside `out`; swap it in as `out` only if the block succeeds.

    A failed run never leaves a half-written output (or its temporary folder) behind. An existing
    `out` is replaced only when empty or an earlier `kind` (it holds `marker`, default KINDS[kind]),
    and never when it is or holds one of `inputs`.
    """
    check_out_dir(out, marker, kind)
    check_out(out, inputs)
    # abspath: "." or "x/.." have no usable name to put a sibling beside; no symlinks followed,
    # so a link named as --out is replaced, not the folder it points to.
    out = Path(os.path.abspath(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_tmp_dir(out)
    try:
        yield tmp
        swap_in(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when the swap worked


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `path` through a temporary sibling renamed over it: never a half-written file."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    check_out_path(path, folder=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(tmp_name(path.name))
    try:
        with open(tmp, "xb") as f:  # open's 0o666 & ~umask, unlike mkstemp's 0600
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- training runs

CKPT = "checkpoint"  # fit's checkpoint folder inside a run's --out


def _step(folder: Path) -> int:
    try:
        return int(json.loads((folder / CKPT / "state.json").read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return -1


def _link_tree(src: Path, dst: Path) -> None:
    """Hard links where the file system allows (fit replaces checkpoint files by rename, never in
    place, so the earlier output's copy stays as it was); copies elsewhere."""
    def link(s, d):
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)
    shutil.copytree(src, dst, copy_function=link)


@contextlib.contextmanager
def run_dir(out: str | Path, *, kind: str, inputs=(), resume: bool = False):
    """A training run's --out, built in a temporary folder and swapped in as a unit.

    Checked before any work: path, name length, inputs, kind. With `resume`, the most advanced
    checkpoint is carried into the temporary: the one in `out`, or that of a run of this --out
    killed before its swap (its temporary is adopted instead of swept). Yields the temporary."""
    check_out_path(out)
    check_out(out, inputs)
    # A folder with only a checkpoint is a run interrupted by earlier versions (they trained in place).
    check_contents(out, kind=kind, also_ok=lambda f: kind_of(f) is None and (f / CKPT / "state.json").is_file())
    out = Path(os.path.abspath(out))
    has_ckpt = lambda p: _step(p) >= 0  # noqa: E731
    recover(out, spare=has_ckpt if resume else (lambda p: False))
    tmp = None
    if resume:
        recover(out / CKPT)  # a checkpoint save killed between its two renames left it aside
        found = [out] if has_ckpt(out) else []  # first: it wins a tie
        found += [p for p, what, pid in _leftovers(out) if what == "tmp" and not _alive(pid) and has_ckpt(p)]
        if not found:
            raise MlxLcError(f"nothing to resume: no {out / CKPT}/state.json")
        src = max(found, key=_step)
        if src != out:
            tmp = out.with_name(tmp_name(out.name))
            os.replace(src, tmp)  # adopt it: this run's temporary now
            for p in tmp.iterdir():
                if p.name != CKPT:
                    _remove(p)
            print(f"mlx-lc: resuming from the checkpoint of an interrupted run (step {_step(tmp)})", file=sys.stderr)
    recover(out)  # the other leftovers
    out.parent.mkdir(parents=True, exist_ok=True)
    if tmp is None:
        tmp = make_tmp_dir(out)
        if resume:
            _link_tree(out / CKPT, tmp / CKPT)
    try:
        try:
            yield tmp
        except MlxLcError as e:  # say --out where a message names the temporary
            raise MlxLcError(str(e).replace(str(tmp), str(out)), e.param, e.mentions) from None
        swap_in(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def move_into(folder: Path, writer) -> None:
    """Let `writer(path)` write a complete output at a new path inside `folder`, then move its
    files up into `folder` (which holds other parts of the run: checkpoint/, history.json)."""
    part = folder / ".part"
    writer(part)
    for f in part.iterdir():
        os.replace(f, folder / f.name)
    part.rmdir()
