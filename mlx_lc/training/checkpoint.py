"""`fit`'s checkpoints: the current and best weights, optimizer and random state and the history,
saved at each evaluation as one unit, and loaded back only into the run they belong to (same
settings, setup, data and files as when saved), so a resumed run goes on exactly as the
uninterrupted one would have."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten

from ..errors import MlxLcError
from ..io import atomic_dir, load_safetensors, read_json, sha256, shape_mismatches
from .rows import Example


def data_hash(examples: Sequence[Example]) -> str:
    """Of the token ids and prompt lengths: a resumed run must see the rows the checkpoint saw."""
    shape = np.array([(len(ids), skip) for ids, skip in examples], np.int64).reshape(-1, 2)
    tokens = np.fromiter(itertools.chain.from_iterable(ids for ids, _ in examples), np.int64, int(shape[:, 0].sum()))
    return hashlib.sha256(shape.tobytes() + tokens.tobytes()).hexdigest()[:16]


FILES = ("current", "best", "optimizer")


def save(ckpt: Path, model, opt, best, cfg, it, best_val, best_step, bad, history, setup, data):
    """Weights and optimizer state as safetensors, counters, random key and each file's sha256 in
    state.json, all written to a temporary folder that then replaces the previous checkpoint: a
    crash mid-save leaves that one whole, never a mix of two steps' files."""
    tensors = {"current": dict(tree_flatten(model.trainable_parameters())), "best": best,
               "optimizer": dict(tree_flatten(opt.state))}
    with atomic_dir(ckpt, marker="state.json", kind="checkpoint") as tmp:
        files = {}
        for name in FILES:
            path = Path(tmp) / f"{name}.safetensors"
            mx.save_safetensors(str(path), tensors[name])
            files[path.name] = sha256(path)
        # the key dropout draws from next: without it a resumed run draws other masks than the
        # uninterrupted one (mx.random.key(s) is [s >> 32, s & 0xffffffff], so a seed restores it)
        hi, lo = (int(v) for v in np.array(mx.random.state[0]).tolist())
        (Path(tmp) / "state.json").write_text(json.dumps({
            "step": it, "best_val": best_val, "best_step": best_step, "bad_evals": bad,
            "history": history, "fit": asdict(cfg), "setup": setup, "data": data,
            "rng_seed": (hi << 32) | lo, "files": files}))


def left_behind(ckpt: Path | None) -> str:
    """A hint at the checkpoint a save stopped between its two renames (atomic_dir moves the
    previous one aside, then the new one in) had left beside the missing one."""
    old = sorted(p for p in ckpt.parent.glob(f".{ckpt.name}.*old-*") if (p / "state.json").is_file()) if ckpt else []
    return f" ({old[0]} holds the checkpoint a stopped save moved aside: rename it to {ckpt.name} to resume)" if old else ""


def load(ckpt: Path, model, opt, cfg, setup: dict, data: dict):
    """Load the checkpoint's current weights, optimizer state and random key into `model`, `opt`
    and mlx; -> (step, best_val, best_step, bad_evals, history, best weights). Refuses one saved
    with other settings (`cfg`), `setup` or data, or whose files are damaged, before touching either."""
    state = read_json(ckpt / "state.json")
    saved = state.get("fit", {})
    keys = ("lr", "batch_size", "seed", "max_seq_len", "group_by_length")  # what decides the next batches and steps
    changed = [f"{k} {saved.get(k)} -> {getattr(cfg, k)}" for k in keys if saved.get(k, False) != getattr(cfg, k)]
    # Checkpoints written before "setup" existed have none: the tensor check below still applies.
    changed += changes(state.get("setup", {}), setup)
    if changed:
        raise MlxLcError(f"cannot resume {ckpt}: {', '.join(changed)}")
    # Checkpoints written before these were recorded have no "data" or "files": not checked.
    for split, name in (("train", "training"), ("valid", "dev")):
        if split in state.get("data", {}) and state["data"][split] != data[split]:
            raise MlxLcError(f"cannot resume {ckpt}: the {name} data (as tokenized) differ from the data it was "
                             "trained on; resume with the same data, or start over without resuming")
    if "files" in state:
        for name in FILES:
            path = ckpt / f"{name}.safetensors"
            if not path.is_file() or sha256(path) != state["files"].get(path.name):
                what = "is missing" if not path.is_file() else "does not match the sha256 its state.json records"
                raise MlxLcError(f"cannot resume {ckpt}: {path.name} {what} (a damaged or mixed checkpoint); "
                                 "start over without resuming")
    current, best = load_safetensors(ckpt / "current.safetensors"), load_safetensors(ckpt / "best.safetensors")
    # load_weights(strict=False) would take tensors of any shape (or none): a mismatch then
    # surfaced as a matmul error mid-run, or trained on silently.
    want = dict(tree_flatten(model.trainable_parameters()))
    for name, tensors in (("current", current), ("best", best)):
        wrong = shape_mismatches(want, tensors)
        if wrong:
            more = f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else ""
            raise MlxLcError(f"cannot resume {ckpt}: {name}.safetensors does not fit the model: "
                             f"{'; '.join(wrong[:3])}{more}")
    try:
        counters = (int(state["step"]), state["best_val"], int(state["best_step"]), int(state["bad_evals"]),
                    state["history"])
        rng = state.get("rng_seed")
        if rng is not None and not (isinstance(rng, int) and 0 <= rng < 2**64):
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise MlxLcError(f"cannot resume {ckpt}: its state.json is incomplete or damaged; "
                         "start over without resuming") from None
    model.load_weights(list(current.items()), strict=False)
    opt.state = tree_unflatten(list(load_safetensors(ckpt / "optimizer.safetensors").items()))
    if rng is not None:
        mx.random.seed(rng)
    mx.eval(model.parameters(), opt.state)
    return (*counters, best)


def changes(saved: dict, now: dict, prefix: str = "") -> list[str]:
    """'key old -> new' for each entry of the saved setup that differs now. Keys only `now` has
    are skipped: a checkpoint from before they were recorded still resumes."""
    out = []
    for k, old in saved.items():
        new = now.get(k)
        if isinstance(old, dict) and isinstance(new, dict):
            out += changes(old, new, f"{prefix}{k}.")
        elif old != new:
            out.append(f"{prefix}{k} {old} -> {new}")
    return out
