"""The task store: the user's tasks and compositions, as a plain folder of JSON files.

    $MLX_LC_HOME (default ~/.cache/mlx-lc, or $XDG_CACHE_HOME/mlx-lc)
        tasks/NAME.json            a task: instruction, kind, modifier, its LoRA folder, base model
        compositions/A+B.json      a composition: its calibration (folder or hub id), instruction, scores
        calibrations/A+B/          calibrations `mlx-lc calibrate --task A+B` writes by default

One file per record, each written through a temporary file renamed over it: two processes
adding tasks at once lose neither, and a reader never sees half a file. A record names its
adapter and calibration by path (or hub id); the store copies no weights.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import MlxLcError
from .outputs import atomic_write_text, tmp_name
from .tasks import KINDS, SINGLE, Composition, Task

HOME_ENV = "MLX_LC_HOME"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def default_root() -> Path:
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "mlx-lc"


def check_name(name: str) -> str:
    """A task name is a file name in the store and a part of A+B: letters, digits, - _ . only."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or name.endswith(".json"):
        raise MlxLcError(f"task name {name!r} is not usable: use 1 to 64 letters, digits, '-', '_' or '.', "
                         "starting with a letter or digit (no spaces, '/' or '+')")
    return name


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Resolved:
    """What a store composition (or task) runs with."""

    task: Task | Composition
    model: str
    adapters: list[str]
    calibration: str | None


class Store:
    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()

    @classmethod
    def default(cls, root: str | Path | None = None) -> "Store":
        return cls(root if root is not None else default_root())

    # ------------------------------------------------------------ files

    def _file(self, name: str) -> Path:
        if "+" in name:
            for part in name.split("+"):
                check_name(part)
            return self.root / "compositions" / f"{name}.json"
        return self.root / "tasks" / f"{check_name(name)}.json"

    def calibration_dir(self, name: str) -> Path:
        self._file(name)  # the name's check
        return self.root / "calibrations" / name

    def _read(self, path: Path) -> dict | None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as e:
            raise MlxLcError(f"store file {path} cannot be read ({e}); fix or delete it") from None
        try:
            record = json.loads(text)
        except json.JSONDecodeError as e:
            raise MlxLcError(f"store file {path} is not valid JSON ({e.msg} at line {e.lineno}); "
                             "fix or delete it") from None
        if not isinstance(record, dict):
            raise MlxLcError(f"store file {path} must hold a JSON object; fix or delete it")
        return record

    def _write(self, path: Path, record: dict, create: bool = False) -> None:
        """temp + rename; with `create`, fail if the record exists (link(2) is atomic, so two
        processes adding one name at once: one wins, the other is told)."""
        text = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
        if not create:
            atomic_write_text(path, text)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(tmp_name(path.name))
        try:
            with open(tmp, "x", encoding="utf-8") as f:
                f.write(text)
            os.link(tmp, path)
        except FileExistsError:
            raise MlxLcError(f"task {record['name']} is already in the store ({path}); "
                             f"remove it first (mlx-lc task rm {record['name']})") from None
        finally:
            tmp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self):
        """Read-modify-write of a composition record (calibrate and eval both update one)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    # ------------------------------------------------------------ tasks

    def task(self, name: str) -> Task | None:
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            return None
        path = self._file(name)
        record = self._read(path)
        if record is None:
            return None
        try:
            return Task(**{k: record[k] for k in ("name", "kind", "instruction")},
                        modifier=record.get("modifier") or "", adapter=record.get("adapter") or "",
                        base_model=record.get("base_model") or "")
        except (KeyError, TypeError) as e:
            raise MlxLcError(f"store file {path} is not a task record (missing {e}); fix or delete it") from None

    def tasks(self) -> list[Task]:
        folder = self.root / "tasks"
        names = sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
        return [t for t in (self.task(n) for n in names if NAME_RE.fullmatch(n)) if t is not None]

    def add_task(self, task: Task, extra: dict | None = None) -> Path:
        check_name(task.name)
        if task.kind not in KINDS:
            raise MlxLcError(f"kind must be one of {', '.join(KINDS)}, got {task.kind!r}", param="kind")
        if not task.instruction.strip():
            raise MlxLcError("instruction is empty", param="instruction")
        path = self._file(task.name)
        record = {k: v for k, v in asdict(task).items() if k not in ("family", "metric")}
        self._write(path, {**record, **(extra or {}), "added": _now()}, create=True)
        return path

    # ------------------------------------------------------------ compositions

    def composition(self, name: str) -> dict | None:
        return self._read(self._file(name)) if "+" in name else None

    def compositions(self) -> list[dict]:
        folder = self.root / "compositions"
        out = []
        for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            record = self._read(p)
            if record is not None:
                out.append({**record, "name": p.stem})
        return out

    def update_composition(self, name: str, **fields) -> Path:
        """Set fields of a composition's record (made if new); None leaves a field as it was."""
        path = self._file(name)
        with self._locked():
            record = self._read(path) or {"name": name, "tasks": name.split("+"), "added": _now()}
            for k, v in fields.items():
                if v is not None:
                    record[k] = v
            record["updated"] = _now()
            self._write(path, record)
        return path

    def record_scores(self, name: str, method: str, scores: dict) -> None:
        with self._locked():
            record = self._read(self._file(name)) or {"name": name, "tasks": name.split("+"), "added": _now()}
            record.setdefault("scores", {})[method] = {**scores, "at": _now()}
            self._write(self._file(name), record)

    def remove(self, name: str) -> list[str]:
        """Remove a task or a composition record (and a calibration the store holds for it).
        A task that a composition uses stays until that composition is removed."""
        path = self._file(name)
        if not path.exists():
            raise MlxLcError(f"no task {name!r} in the store ({self.root})")
        removed = [str(path)]
        if "+" not in name:
            users = [c["name"] for c in self.compositions() if name in c["name"].split("+")]
            if users:
                raise MlxLcError(f"task {name} is used by {', '.join(users)}; remove "
                                 f"{'it' if len(users) == 1 else 'them'} first (mlx-lc task rm {users[0]})")
        else:
            calib = self.calibration_dir(name)
            if calib.is_dir():
                import shutil  # here: only a removal needs it

                shutil.rmtree(calib)
                removed.append(str(calib))
        path.unlink()
        return removed

    # ------------------------------------------------------------ use

    def resolve(self, name: str) -> Resolved:
        """The model, adapters (in order) and calibration a stored task or composition runs with;
        one line for what is missing, moved, or trained on another base."""
        from .tasks import get

        task = get(name, self)
        steps = task.steps if isinstance(task, Composition) else (task,)
        missing = [t.name for t in steps if not t.adapter]
        if missing:
            builtin = [m for m in missing if m in SINGLE]
            hint = (f" (the built-in task {builtin[0]} has no adapter here: mlx-lc task add {builtin[0]} "
                    "--adapter DIR)" if builtin else "")
            raise MlxLcError(f"task {missing[0]} has no adapter in the store{hint}", param="task")
        for t in steps:
            if not Path(t.adapter).is_dir():
                raise MlxLcError(f"the adapter of task {t.name} is not there: {t.adapter} "
                                 f"(moved or deleted? mlx-lc task rm {t.name}, then add it again)")
        bases = {t.base_model for t in steps}
        if len(bases) > 1:
            a, b = steps[0], next(t for t in steps if t.base_model != steps[0].base_model)
            raise MlxLcError(f"tasks {a.name} and {b.name} were trained on different base models "
                             f"({a.base_model}; {b.base_model}): they cannot be composed")
        record = self.composition(name) or {}
        calib = record.get("calibration")
        if calib is not None and not isinstance(calib, str):
            raise MlxLcError(f"store file {self._file(name)}: 'calibration' must be a string; fix or delete it")
        return Resolved(task, steps[0].base_model, [t.adapter for t in steps], calib)
