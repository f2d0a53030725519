"""One training loop for every trainable thing in mlx-lc: LoRAs, calibrations, a pretrained base.

Built from mlx-lm's tuner pieces (a compiled step over `model.state` and `optimizer.state`,
`nn.average_gradients` across `mx.distributed` ranks) plus what its `train()` lacks: early
stopping on the dev split with the best weights kept, resumable checkpoints, a tqdm bar and a
loss history. Data-parallel runs under `mlx.launch`: each rank takes its share of every global
batch and the loss is normalised by the *global* token count, so N ranks compute exactly the
gradient one process would on the same global batch.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten

from .errors import MlxLcError
from .io import atomic_dir, load_safetensors, read_json, sha256, shape_mismatches

Example = tuple[list[int], int]  # token ids, number of leading tokens without loss (the prompt)
CKPT = "checkpoint"


@dataclass
class FitConfig:
    lr: float = 5e-5
    batch_size: int = 4  # global batch: split across ranks under mlx.launch
    iters: int | None = None  # optimizer steps; default: `epochs` passes over the data
    epochs: float = 1.0
    max_seq_len: int = 512
    seed: int = 0
    eval_every: int | None = None  # steps between dev evaluations (default: ~8 per run, at most every 200)
    patience: int = 3  # stop after this many evaluations without a better dev loss
    val_examples: int = 0  # cap on dev examples per evaluation (0: all)
    warmup: int = 0  # linear warm-up steps
    schedule: str = "constant"  # "constant" or "cosine" (decays to lr/10)
    weight_decay: float = 0.0  # > 0 switches Adam to AdamW
    # Batch rows of similar length (see batch_order): less padding, so faster steps on the same
    # rows; the batches then differ from ungrouped ones, and so does the trajectory.
    group_by_length: bool = False

    def problems(self) -> list[tuple[str, str]]:
        """(field, what is wrong with it) for each setting no run can use; empty when all are fine.
        A list rather than an exception so the CLI can name its own option for the field."""
        bad = []

        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                bad.append((name, f"must be {what}, got {getattr(self, name)}"))

        need(_finite(self.lr) and self.lr > 0, "lr", "a positive number")  # nan > 0 is False too
        need(self.batch_size >= 1, "batch_size", "at least 1")
        need(self.iters is None or self.iters >= 1, "iters", "at least 1")
        need(_finite(self.epochs) and self.epochs > 0, "epochs", "a positive number")
        need(self.max_seq_len >= 1, "max_seq_len", "at least 1")
        need(self.eval_every is None or self.eval_every >= 1, "eval_every", "at least 1")
        # fit stops once `bad >= patience`: patience 0 would stop at the step-0 evaluation, untrained
        need(self.patience >= 1, "patience", "at least 1")
        need(self.val_examples >= 0, "val_examples", "0 (all) or more")
        need(self.warmup >= 0, "warmup", "0 or more")
        need(self.schedule in ("constant", "cosine"), "schedule", "constant or cosine")
        need(_finite(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "0 or more")
        return bad

    def validate(self) -> None:
        for name, what in self.problems()[:1]:
            raise MlxLcError(f"{name} {what}")

    def total_steps(self, n_examples: int) -> int:
        if self.iters is not None:
            return max(1, self.iters)
        return max(1, math.ceil(self.epochs * n_examples / self.batch_size))


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


# ---------------------------------------------------------------- batches and loss

MEGABATCH = 50  # batches per length-sorted group (the factor of Hugging Face's LengthGroupedSampler)


def batch_order(n: int, batch_size: int, seed: int, step: int, lengths: Sequence[int] | None = None) -> np.ndarray:
    """Example indices of global batch `step`: a fresh seeded shuffle each epoch, so any step
    (and so a resumed run) is reproducible without replaying the ones before it.

    With `lengths`, rows are grouped by length the way Hugging Face's `group_by_length` does it:
    the epoch's shuffle is cut into groups of MEGABATCH batches, each group sorted by length and
    cut into batches, and the batches shuffled again. Each batch then pads to a length close to
    its rows' (padding is wasted compute, quadratic in attention), while every epoch still sees
    new batch compositions, unlike mlx-lm's fixed sort of the whole set."""
    per_epoch = max(1, n // batch_size)
    epoch, i = divmod(step, per_epoch)
    rng = np.random.RandomState((seed * 7919 + epoch) % (2**32))
    perm = rng.permutation(n)
    if lengths is None:
        return perm[i * batch_size:(i + 1) * batch_size]
    used = perm[: per_epoch * batch_size]  # the rows this epoch's full batches take, as without grouping
    lengths = np.asarray(lengths)
    group = MEGABATCH * batch_size
    parts = [g[np.argsort(-lengths[g], kind="stable")] for g in np.split(used, range(group, len(used), group))]
    batches = np.concatenate(parts).reshape(per_epoch, batch_size)
    return batches[rng.permutation(per_epoch)[i]]


def collate(examples: Sequence[Example], max_seq_len: int, pad_to: int = 16):
    """-> inputs, targets (B, L), loss mask (B, L) float32. Length rounds up to `pad_to` so the
    compiled step sees few distinct shapes."""
    seqs = [ids[: max_seq_len + 1] for ids, _ in examples]
    longest = max(len(s) for s in seqs) - 1
    length = max(1, min(max_seq_len, pad_to * math.ceil(longest / pad_to)))
    arr = np.zeros((len(seqs), length + 1), np.int32)
    mask = np.zeros((len(seqs), length), np.float32)
    for j, (s, (_, skip)) in enumerate(zip(seqs, examples)):
        arr[j, : len(s)] = s
        # target position t predicts token t+1: loss on tokens skip .. len(s)-1
        mask[j, max(skip - 1, 0): len(s) - 1] = 1.0
    return mx.array(arr[:, :-1]), mx.array(arr[:, 1:]), mx.array(mask)


def scored_positions(mask: mx.array, pad_to: int = 8) -> mx.array | None:
    """(B, C) indices of each row's scored positions (padded with one of its unscored positions,
    whose mask then zeroes it), or None when most positions are scored anyway (pretraining). With a completion-only loss the
    prompt needs no logits: the vocabulary projection and its softmax, a large part of a tiny
    model's step on CPU, then run on C ~ completion length positions instead of the whole row."""
    m = np.array(mask) > 0
    counts = m.sum(axis=1)
    width = pad_to * math.ceil(max(1, counts.max()) / pad_to)
    if width * 2 > m.shape[1] or m.all(axis=1).any():
        return None
    pos = np.zeros((m.shape[0], width), np.int32)
    for j in range(m.shape[0]):
        idx = np.nonzero(m[j])[0]
        pos[j] = np.nonzero(~m[j])[0][0]
        pos[j, : len(idx)] = idx
    return mx.array(pos)


# Architectures whose __call__ is exactly `lm_head(model.model(x))` (tied or not), so the head
# can run on selected positions only.
_SPLIT_HEAD = ("llama", "qwen2", "qwen3")


def _head(model):
    if getattr(model, "model_type", None) not in _SPLIT_HEAD or not hasattr(model, "model"):
        return None
    if getattr(model.args, "tie_word_embeddings", False):
        return model.model.embed_tokens.as_linear
    return model.lm_head


def masked_loss(model, inputs, targets, mask, norm, pos=None):
    """Sum of token cross-entropies under `mask`, divided by `norm` (see `fit`). `pos` (from
    `scored_positions`) restricts the vocabulary projection to the positions that are scored."""
    head = _head(model) if pos is not None else None
    if head is None:
        logits = model(inputs)
    else:
        h = mx.take_along_axis(model.model(inputs), pos[..., None], axis=1)  # (B, C, D)
        logits = head(h)
        targets, mask = mx.take_along_axis(targets, pos, axis=1), mx.take_along_axis(mask, pos, axis=1)
    ce = nn.losses.cross_entropy(logits.astype(mx.float32), targets) * mask
    return ce.sum() / norm


def shard(batch: Sequence, rank: int, size: int) -> list:
    """This rank's rows of a global batch (strided, like mlx-lm's iterate_batches)."""
    return list(batch[rank::size])


# ---------------------------------------------------------------- what the data give to train on

def scored_tokens(example: Example, max_seq_len: int) -> int:
    """Tokens of `example` the loss covers once `collate` cuts it at max_seq_len + 1 tokens."""
    ids, skip = example
    return max(0, min(len(ids), max_seq_len + 1) - max(skip, 1))


def row_counts(examples: Sequence[Example], max_seq_len: int) -> dict:
    """rows; cut (longer than a training window); unscored (no loss token left after the cut)."""
    return {"rows": len(examples), "cut": sum(len(ids) > max_seq_len + 1 for ids, _ in examples),
            "unscored": sum(scored_tokens(e, max_seq_len) == 0 for e in examples)}


def check_rows(train: Sequence[Example], valid: Sequence[Example], max_seq_len: int) -> dict:
    """Row counts of both splits; refuses a split the loss sees none of. A row whose completion
    lies beyond max_seq_len adds nothing to the loss: with every row so, training would
    "succeed" at loss 0 and change nothing, and a dev loss of 0 would pick any weights."""
    counts = {"train": row_counts(train, max_seq_len), "valid": row_counts(valid, max_seq_len), "max_seq_len": max_seq_len}
    for split, name in (("train", "training"), ("valid", "dev")):
        c = counts[split]
        if c["rows"] and c["unscored"] == c["rows"]:
            rows = train if split == "train" else valid
            shortest = min(skip for _, skip in rows)
            raise MlxLcError(f"none of the {c['rows']} {name} rows has a completion token within --max-seq-len "
                             f"{max_seq_len} (the shortest prompt has {shortest} tokens): nothing to "
                             f"{'train' if split == 'train' else 'measure'} on; raise --max-seq-len or shorten the prompts")
    return counts


def cut_note(counts: dict) -> str | None:
    """The one line that says how many rows were cut at max_seq_len, or None when none was."""
    cut = counts["train"]["cut"] + counts["valid"]["cut"]
    if not cut:
        return None
    rows = counts["train"]["rows"] + counts["valid"]["rows"]
    lost = counts["train"]["unscored"] + counts["valid"]["unscored"]
    verb = "has" if lost == 1 else "have"
    tail = f"; {lost} of them {verb} no completion token left and add{'s' if lost == 1 else ''} no loss" if lost else ""
    return f"{cut} of {rows} rows were cut at --max-seq-len {counts['max_seq_len']} tokens{tail}"


def data_hash(examples: Sequence[Example]) -> str:
    """Of the token ids and prompt lengths: a resumed run must see the rows the checkpoint saw."""
    shape = np.array([(len(ids), skip) for ids, skip in examples], np.int64).reshape(-1, 2)
    tokens = np.fromiter(itertools.chain.from_iterable(ids for ids, _ in examples), np.int64, int(shape[:, 0].sum()))
    return hashlib.sha256(shape.tobytes() + tokens.tobytes()).hexdigest()[:16]


def _all_finite(tensors: dict[str, mx.array]) -> bool:
    if not tensors:
        return True
    return mx.stack([mx.isfinite(v).all() for v in tensors.values()]).all().item()  # one sync, not one per tensor


# ---------------------------------------------------------------- the loop

@dataclass
class FitResult:
    steps: int
    best_step: int
    best_val: float | None
    stopped_early: bool
    history: dict  # {"train": [[step, loss, tokens/s]], "valid": [[step, loss]]}
    seconds: float
    tokens: int
    rows: dict = field(default_factory=dict)  # per split: rows, cut at max_seq_len, left without a scored token


def _lr_schedule(cfg: FitConfig, total: int):
    if cfg.schedule == "constant" and not cfg.warmup:
        return cfg.lr
    if cfg.schedule == "cosine":
        main = optim.cosine_decay(cfg.lr, max(1, total - cfg.warmup), cfg.lr / 10)
    elif cfg.schedule == "constant":
        main = lambda _: mx.array(cfg.lr)  # noqa: E731
    else:
        raise MlxLcError(f"unknown schedule {cfg.schedule!r}; choose constant or cosine")
    if not cfg.warmup:
        return main
    return optim.join_schedules([optim.linear_schedule(cfg.lr / 100, cfg.lr, cfg.warmup), main], [cfg.warmup])


def evaluate_loss(model, examples: Sequence[Example], batch_size: int, max_seq_len: int, group) -> float:
    """Mean token loss over `examples`, sharded across ranks and summed."""
    total, count = mx.array(0.0), mx.array(0.0)
    rank, size = group.rank(), group.size()
    for i in range(0, len(examples), batch_size):
        part = shard(examples[i:i + batch_size], rank, size)
        if not part:
            continue
        x, y, m = collate(part, max_seq_len)
        total = total + masked_loss(model, x, y, m, 1.0, scored_positions(m))
        count = count + m.sum()
        mx.eval(total, count)
    if size > 1:
        total, count = mx.distributed.all_sum(total, stream=mx.cpu), mx.distributed.all_sum(count, stream=mx.cpu)
    return (total / mx.maximum(count, 1.0)).item()


def fit(model: nn.Module, train: Sequence[Example], valid: Sequence[Example], cfg: FitConfig,
        out: Path | None = None, resume: bool = False, progress: bool = True, desc: str = "train",
        on_best: Callable[[dict, int], None] | None = None, setup: dict | None = None) -> FitResult:
    """Train `model.trainable_parameters()` on `train`; keep the weights with the best dev loss.

    Checkpoints (current + best weights, optimizer and random state, history) go to out/checkpoint
    at every evaluation; `resume=True` continues from there, exactly as the run would have gone on.
    On return the model holds the best weights. A non-finite loss stops the run (`Diverged`).
    `on_best(weights, step)` runs at every new best dev loss (probes use it to watch a run).
    `setup` (JSON-able: base model, adapter or calibration settings) is saved with each checkpoint;
    a resume refuses one that differs, since the saved weights belong to that setup.
    """
    cfg.validate()
    setup = json.loads(json.dumps(setup or {}))  # as it reads back from state.json (tuples -> lists)
    group = mx.distributed.init()
    rank, size = group.rank(), group.size()
    if cfg.batch_size % size:
        raise MlxLcError(f"batch size {cfg.batch_size} must divide by the {size} ranks")
    if len(train) < cfg.batch_size:
        raise MlxLcError(f"{len(train)} training examples is fewer than one batch ({cfg.batch_size})")
    total = cfg.total_steps(len(train))
    eval_every = cfg.eval_every or max(1, min(200, total // 8))
    valid = list(valid)[: cfg.val_examples or None]
    rows = check_rows(train, valid, cfg.max_seq_len)
    note = cut_note(rows)
    if note and rank == 0:
        print(f"mlx-lc: {note}", file=sys.stderr)
    data = {"train": data_hash(train), "valid": data_hash(valid)}

    mx.random.seed(cfg.seed)
    sched = _lr_schedule(cfg, total)
    opt = optim.AdamW(sched, weight_decay=cfg.weight_decay) if cfg.weight_decay else optim.Adam(sched)
    opt.init(model.trainable_parameters())
    history = {"train": [], "valid": []}
    start, best_val, best_step, bad = 0, None, 0, 0
    best = _snapshot(model)
    ckpt = out / CKPT if out is not None else None
    if resume:  # before compiling: the compiled step captures these very state objects
        if ckpt is None or not (ckpt / "state.json").exists():
            raise MlxLcError(f"nothing to resume: no {ckpt or 'checkpoint'}/state.json{_left_behind(ckpt)}")
        start, best_val, best_step, bad, history, best = _load_checkpoint(ckpt, model, opt, cfg, setup, data)
    # What this run creates, removed again if it diverges: such a checkpoint resumes into the same
    # divergence (its settings cannot change on resume), and an adapter folder holding only it
    # would look like a run.
    new_out = out is not None and not out.exists()
    new_ckpt = ckpt is not None and not ckpt.exists()

    loss_and_grad = nn.value_and_grad(model, masked_loss)
    state = [model.state, opt.state, mx.random.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(x, y, m, norm, pos):
        loss, grads = loss_and_grad(model, x, y, m, norm, pos)
        opt.update(model, nn.average_gradients(grads))  # mean over ranks of (local sum * N / global count)
        return loss


    def evaluate_now(it: int) -> bool:
        """Dev loss at step `it`; True when patience ran out."""
        nonlocal best_val, best_step, bad, best
        # a weight can overflow before the loss shows it (the last step's update, or no dev split)
        if not _all_finite(dict(tree_flatten(model.trainable_parameters()))):
            raise Diverged(f"training diverged: the weights hold non-finite values after step {it}; try a lower --lr")
        if not valid:
            best, best_step = _snapshot(model), it
            return False
        model.eval()
        val = evaluate_loss(model, valid, cfg.batch_size, cfg.max_seq_len, group)
        model.train()
        if not math.isfinite(val):
            raise Diverged(f"training diverged: the dev loss is {val} at step {it}; try a lower --lr")
        history["valid"].append([it, val])
        if best_val is None or val < best_val - 1e-6:
            best_val, best_step, bad, best = val, it, 0, _snapshot(model)
            if on_best is not None:
                on_best(best, it)
        else:
            bad += 1
        if ckpt is not None and rank == 0:
            _save_checkpoint(ckpt, model, opt, best, cfg, it, best_val, best_step, bad, history, setup, data)
        return bad >= cfg.patience

    bar = _bar(total, start, desc, progress and rank == 0)
    model.train()
    t0, tokens, window_tokens, window_t, window_loss, window_n = time.perf_counter(), 0, 0, time.perf_counter(), 0.0, 0
    stopped = False
    lengths = [len(ids) for ids, _ in train] if cfg.group_by_length else None
    it = start
    try:
        if start == 0 and valid:
            stopped = evaluate_now(0)
        while it < total and not stopped:
            batch = [train[i] for i in batch_order(len(train), cfg.batch_size, cfg.seed, it, lengths)]
            global_count = sum(scored_tokens(e, cfg.max_seq_len) for e in batch)
            x, y, m = collate(shard(batch, rank, size), cfg.max_seq_len)
            loss = step(x, y, m, mx.array(max(global_count, 1) / size, mx.float32), scored_positions(m))
            mx.eval(state, loss)
            it += 1
            n_tok = sum(min(len(ids), cfg.max_seq_len + 1) - 1 for ids, _ in batch)
            tokens += n_tok
            window_tokens += n_tok
            local = loss.item() / size  # this rank's share of the global mean
            step_loss = mx.distributed.all_sum(mx.array(local), stream=mx.cpu).item() if size > 1 else local
            if not math.isfinite(step_loss):  # the same on every rank, so all of them stop here
                raise Diverged(f"training diverged: the training loss is {step_loss} at step {it}; try a lower --lr")
            window_loss += step_loss
            window_n += 1
            if it % max(1, min(10, eval_every)) == 0 or it == total:
                now = time.perf_counter()
                tps = window_tokens / max(now - window_t, 1e-9)
                history["train"].append([it, window_loss / window_n, tps])
                bar.set_postfix(loss=f"{window_loss / window_n:.3f}",
                                val=f"{best_val:.3f}" if best_val is not None else "-", tok_s=f"{tps:,.0f}")
                window_tokens, window_t, window_loss, window_n = 0, now, 0.0, 0
            bar.update(1)
            if it % eval_every == 0 or it == total:
                stopped = evaluate_now(it)
    except Diverged:
        if new_ckpt and ckpt.exists():
            shutil.rmtree(ckpt, ignore_errors=True)
        if new_out and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise
    finally:
        bar.close()
    model.load_weights(list(best.items()), strict=False)
    mx.eval(model.parameters())
    return FitResult(it, best_step, best_val, stopped, history, time.perf_counter() - t0, tokens, rows)


# ---------------------------------------------------------------- helpers

class Diverged(MlxLcError):
    """A non-finite loss or weight: the run stops there, since every later step is non-finite too."""


def _snapshot(model) -> dict[str, mx.array]:
    snap = {k: mx.array(v) for k, v in tree_flatten(model.trainable_parameters())}
    mx.eval(snap)
    return snap


class _NoBar:
    def update(self, n=1): ...
    def set_postfix(self, **kw): ...
    def close(self): ...


def _bar(total: int, start: int, desc: str, show: bool):
    if not show:
        return _NoBar()
    # here: tqdm.auto costs ~80 ms (it brings in asyncio), and `mlx-lc --help` imports this module
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc=desc, unit="step", dynamic_ncols=True, leave=True)


CKPT_FILES = ("current", "best", "optimizer")


def _save_checkpoint(ckpt: Path, model, opt, best, cfg, it, best_val, best_step, bad, history, setup, data):
    """Weights and optimizer state as safetensors, counters, random key and each file's sha256 in
    state.json, all written to a temporary folder that then replaces the previous checkpoint: a
    crash mid-save leaves that one whole, never a mix of two steps' files."""
    tensors = {"current": dict(tree_flatten(model.trainable_parameters())), "best": best,
               "optimizer": dict(tree_flatten(opt.state))}
    with atomic_dir(ckpt, marker="state.json", kind="checkpoint") as tmp:
        files = {}
        for name in CKPT_FILES:
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


def _left_behind(ckpt: Path | None) -> str:
    """A hint at the checkpoint a save stopped between its two renames (atomic_dir moves the
    previous one aside, then the new one in) had left beside the missing one."""
    old = sorted(p for p in ckpt.parent.glob(f".{ckpt.name}.*old-*") if (p / "state.json").is_file()) if ckpt else []
    return f" ({old[0]} holds the checkpoint a stopped save moved aside: rename it to {ckpt.name} to resume)" if old else ""


def _load_checkpoint(ckpt: Path, model, opt, cfg: FitConfig, setup: dict, data: dict):
    state = read_json(ckpt / "state.json")
    saved = state.get("fit", {})
    keys = ("lr", "batch_size", "seed", "max_seq_len", "group_by_length")  # what decides the next batches and steps
    changed = [f"{k} {saved.get(k)} -> {getattr(cfg, k)}" for k in keys if saved.get(k, False) != getattr(cfg, k)]
    # Checkpoints written before "setup" existed have none: the tensor check below still applies.
    changed += _changes(state.get("setup", {}), setup)
    if changed:
        raise MlxLcError(f"cannot resume {ckpt}: {', '.join(changed)}")
    # Checkpoints written before these were recorded have no "data" or "files": not checked.
    for split, name in (("train", "training"), ("valid", "dev")):
        if split in state.get("data", {}) and state["data"][split] != data[split]:
            raise MlxLcError(f"cannot resume {ckpt}: the {name} data (as tokenized) differ from the data it was "
                             "trained on; resume with the same data, or start over without --resume")
    if "files" in state:
        for name in CKPT_FILES:
            path = ckpt / f"{name}.safetensors"
            if not path.is_file() or sha256(path) != state["files"].get(path.name):
                what = "is missing" if not path.is_file() else "does not match the sha256 its state.json records"
                raise MlxLcError(f"cannot resume {ckpt}: {path.name} {what} (a damaged or mixed checkpoint); "
                                 "start over without --resume")
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
                         "start over without --resume") from None
    model.load_weights(list(current.items()), strict=False)
    opt.state = tree_unflatten(list(load_safetensors(ckpt / "optimizer.safetensors").items()))
    if rng is not None:
        mx.random.seed(rng)
    mx.eval(model.parameters(), opt.state)
    return (*counters, best)


def _changes(saved: dict, now: dict, prefix: str = "") -> list[str]:
    """'key old -> new' for each entry of the saved setup that differs now. Keys only `now` has
    are skipped: a checkpoint from before they were recorded still resumes."""
    out = []
    for k, old in saved.items():
        new = now.get(k)
        if isinstance(old, dict) and isinstance(new, dict):
            out += _changes(old, new, f"{prefix}{k}.")
        elif old != new:
            out.append(f"{prefix}{k} {old} -> {new}")
    return out
