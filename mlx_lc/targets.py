"""Calibration targets without compositional labels: the multi-step chain writes them.

Users have inputs (chats), not "the summary, in Spanish". The composition's chain of single-task
LoRAs (summarize, then translate the summary) writes a target for each input, in batches; the
calibration then learns to give in one pass what the chain gives in several. `--teacher-model`
runs the chain on another (larger) model instead, prompted with each task's instruction.

The targets are written in chunks beside the calibration's --out (`.NAME.mlx-lc-targets/`), each
chunk file through temp + rename, so a killed run resumes at its first missing chunk; the finished
calibration keeps them all as targets.jsonl, so a person can read what it learned from, with the
chain's confidence in each.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from . import adapters as adapters_io
from . import model_folder, tasks
from .errors import MlxLcError
from .evaluate import EvalConfig, chain
from .io import sha256
from .model_folder import model_id
from .outputs import atomic_write_text
from .training.rows import json_lines

CHUNK = 256  # inputs per cached file: what a killed run can lose
FILE = "targets.jsonl"


@dataclass
class TargetsConfig:
    max_tokens: int = 256  # per step
    batch_size: int = 32
    teacher: str | None = None  # a model that runs the chain from the instructions alone (no adapters)
    # The fraction of inputs whose targets train, the ones the chain is surest of first (by its
    # least confident step's mean token log-probability). A calibration copies the chain's errors;
    # keeping its surer answers trades them for a narrower set of inputs. On the benchmark world
    # (docs/EXPERIMENTS.md) that paid where most of the chain's answers were wrong (reply+fr) and
    # cost where most were right (summarize+es), so it is off by default.
    keep: float = 1.0


def read_inputs(path: str | Path) -> list[str]:
    """JSON Lines with a string 'input' (or 'text') per row; empty ones are skipped."""
    out = []
    for n, row, hint in json_lines(path, "inputs file"):
        value = row.get("input", row.get("text")) if isinstance(row, dict) else None
        if not isinstance(value, str):
            raise MlxLcError(f"{path}:{n}: each row needs a string field 'input' (the text to run the tasks on){hint}")
        if value.strip():
            out.append(value)
    if not out:
        raise MlxLcError(f"{path}: no usable rows (each row needs a non-empty string 'input')")
    return out


def cache_dir(out: str | Path) -> Path:
    out = Path(out).absolute()
    return out.with_name(f".{out.name}.mlx-lc-targets")


def _key(model: str, comp: tasks.Composition, adapter_paths, inputs: Path, cfg: TargetsConfig) -> dict:
    """What the cached chunks were made from; a rerun with any of it changed starts again."""
    teacher = cfg.teacher is not None
    return {"composition": comp.name, "instructions": [t.instruction for t in comp.steps],
            "prompt": comp.instruction, "model": model_id(cfg.teacher if teacher else model),
            "adapters": [] if teacher else [sha256(adapters_io.weights_file(p))[:16] for p in adapter_paths],
            "inputs": sha256(inputs)[:16], "max_tokens": cfg.max_tokens}


def write_targets(model: str, comp: tasks.Composition, adapter_paths, inputs: str | Path, out: str | Path,
                  cfg: TargetsConfig | None = None, progress: bool = True) -> Path:
    """Run the chain on every input, or reuse the chunks a killed run finished. -> the targets
    file (rows of prompt, completion, task, input and every step's output)."""
    cfg = cfg or TargetsConfig()
    inputs = Path(inputs)
    texts = read_inputs(inputs)
    cache = cache_dir(out)
    key = _key(model, comp, adapter_paths, inputs, cfg)
    meta = cache / "meta.json"
    if cache.is_dir():
        try:
            same = json.loads(meta.read_text()) == key
        except (OSError, ValueError):
            same = False
        if not same:
            print(f"mlx-lc: {cache} holds targets of other inputs or settings; writing new ones", file=sys.stderr)
            shutil.rmtree(cache)
    cache.mkdir(parents=True, exist_ok=True)
    atomic_write_text(meta, json.dumps(key, indent=2) + "\n")
    chunks = [(i, texts[i:i + CHUNK]) for i in range(0, len(texts), CHUNK)]
    todo = [(i, part) for i, part in chunks if not (cache / f"part-{i // CHUNK:05d}.jsonl").exists()]
    if todo:
        _run(model, comp, adapter_paths, cache, todo, cfg, len(texts), progress)
    rows = []
    for i, _ in chunks:
        rows += [json.loads(line) for line in (cache / f"part-{i // CHUNK:05d}.jsonl").read_text().splitlines()]
    usable = [r for r in rows if r["completion"].strip()]
    if not usable:
        raise MlxLcError(f"the chain {comp.name} gave no output for any of the {len(rows)} inputs in {inputs}")
    if len(usable) < len(rows):
        print(f"mlx-lc: {len(rows) - len(usable)} of {len(rows)} inputs got no output from the chain; "
              "they are left out", file=sys.stderr)
    if not 0 < cfg.keep <= 1:
        raise MlxLcError(f"keep must be in (0, 1], got {cfg.keep}", param="keep")
    if cfg.keep < 1:
        n = max(1, round(cfg.keep * len(usable)))
        surest = set(sorted(range(len(usable)), key=lambda i: -usable[i]["confidence"])[:n])
        usable = [r for i, r in enumerate(usable) if i in surest]  # in input order
    atomic_write_text(cache / FILE, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in usable))
    return cache / FILE


def _run(model: str, comp, adapter_paths, cache: Path, todo, cfg: TargetsConfig, total: int, progress: bool):
    from tqdm import tqdm  # here: only a run that generates needs it

    teacher = cfg.teacher is not None
    m, tok = model_folder.load(cfg.teacher if teacher else model)
    m.eval()
    loras = [None] * len(comp.steps) if teacher else adapters_io.load_for(m, adapter_paths, model)
    steps = list(zip(comp.steps, loras))
    ecfg = EvalConfig(cfg.max_tokens, cfg.batch_size)
    done = (total - sum(len(p) for _, p in todo)) * len(steps)
    bar = tqdm(total=total * len(steps), initial=done, desc=f"targets {comp.name}", unit="row",
               disable=not progress, dynamic_ncols=True)
    for i, part in todo:
        conf: list = []
        outs = chain(m, tok, steps, part, ecfg, progress=bar.update, confidence=conf)
        lines = [json.dumps({"prompt": tasks.prompt_text(comp, x), "completion": o[-1], "task": comp.name,
                             "input": x, "steps": o,
                             "confidence": round(min(c), 4) if all(map(math.isfinite, c)) else None}, ensure_ascii=False) + "\n"
                 for x, o, c in zip(part, outs, conf)]
        atomic_write_text(cache / f"part-{i // CHUNK:05d}.jsonl", "".join(lines))
    bar.close()


def describe(cfg: TargetsConfig, inputs: str | Path, n_rows: int) -> dict:
    """What the calibration's config records about its targets."""
    return {"label_free": True, "inputs": str(inputs), "rows": n_rows, **asdict(cfg)}
