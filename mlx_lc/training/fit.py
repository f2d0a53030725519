"""One training loop for every trainable thing in mlx-lc: LoRAs, calibrations, a pretrained base.

Built from mlx-lm's tuner pieces (a compiled step over `model.state` and `optimizer.state`,
`nn.average_gradients` across `mx.distributed` ranks) plus what its `train()` lacks: early
stopping on the dev split with the best weights kept, resumable checkpoints, a tqdm bar and a
loss history. Data-parallel runs under `mlx.launch`: each rank takes its share of every global
batch and the loss is normalised by the *global* token count, so N ranks compute exactly the
gradient one process would on the same global batch.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten

from .. import plots
from ..errors import MlxLcError
from ..io import atomic_write_text
from ..outputs import CKPT, run_dir
from . import checkpoint
from .batches import check_rows, cut_note, evaluate_loss, iterate_batches, masked_loss
from .rows import Example


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

    def meta(self) -> dict:
        """The run's figures as its output's metadata records them (adapter config, calibration,
        pretrain.json)."""
        return {"steps": self.steps, "best_step": self.best_step, "best_val_loss": self.best_val,
                "stopped_early": self.stopped_early, "seconds": round(self.seconds, 2), "tokens": self.tokens,
                "tokens_per_s": round(self.tokens / max(self.seconds, 1e-9), 1), "rows": self.rows}

    def write_curves(self, out: Path, title: str) -> None:
        """history.json always; loss.png when matplotlib is installed."""
        atomic_write_text(out / "history.json", json.dumps(self.history))
        plots.loss_curve(self.history, out / "loss.png", title, warn=True)


def run_folder(out: Path, kind: str, inputs: list, resume: bool):
    """Where a training run writes: on rank 0 a temporary folder that replaces `out` as a unit when
    the run succeeded (outputs.run_dir: everything checked before any work); on the other ranks,
    which write nothing, `out` itself (a resume reads its checkpoint there)."""
    if mx.distributed.init().rank() == 0:
        return run_dir(out, kind=kind, inputs=inputs, resume=resume)
    return contextlib.nullcontext(out)


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


def fit(model: nn.Module, train: Sequence[Example], valid: Sequence[Example], cfg: FitConfig,
        out: Path | None = None, resume: bool = False, progress: bool = True, desc: str = "train",
        on_best: Callable[[dict, int], None] | None = None, setup: dict | None = None,
        loss: Callable = masked_loss, iterate_batches: Callable = iterate_batches) -> FitResult:
    """Train `model.trainable_parameters()` on `train`; keep the weights with the best dev loss.
    LoRAs, calibrations and pretraining all train here, each with its own `cfg` and trainable part.

    Checkpoints (current + best weights, optimizer and random state, history) go to out/checkpoint
    at every evaluation; `resume=True` continues from there, exactly as the run would have gone on.
    On return the model holds the best weights. A non-finite loss stops the run (`Diverged`).
    `on_best(weights, step)` runs at every new best dev loss (probes use it to watch a run).
    `setup` (JSON-able: base model, adapter or calibration settings) is saved with each checkpoint;
    a resume refuses one that differs, since the saved weights belong to that setup.

    As in mlx-lm's trainer, the loss and the batches can be replaced. `loss(model, inputs, targets,
    mask, norm, positions)` is the sum of token losses under `mask` over `norm` (`masked_loss`); it
    also scores the dev split, with norm 1 and the mask's sum as the count. `iterate_batches(train,
    cfg, start, group)` yields, for every step from `start` on, (the loss's arguments after the
    model, the step's token count) (`batches.iterate_batches`); a resumed run restarts it at the
    checkpoint's step, so batch `step` must not depend on the steps before it.
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
    data = {"train": checkpoint.data_hash(train), "valid": checkpoint.data_hash(valid)}

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
            raise MlxLcError(f"nothing to resume: no {ckpt or 'checkpoint'}/state.json{checkpoint.left_behind(ckpt)}")
        start, best_val, best_step, bad, history, best = checkpoint.load(ckpt, model, opt, cfg, setup, data)
    # What this run creates, removed again if it diverges: such a checkpoint resumes into the same
    # divergence (its settings cannot change on resume), and an adapter folder holding only it
    # would look like a run.
    new_out = out is not None and not out.exists()
    new_ckpt = ckpt is not None and not ckpt.exists()

    loss_and_grad = nn.value_and_grad(model, loss)
    state = [model.state, opt.state, mx.random.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(*args):
        value, grads = loss_and_grad(model, *args)
        opt.update(model, nn.average_gradients(grads))  # mean over ranks of (local sum * N / global count)
        return value

    def evaluate_now(it: int) -> bool:
        """Dev loss at step `it`; True when patience ran out."""
        nonlocal best_val, best_step, bad, best
        # a weight can overflow before the loss shows it (the last step's update, or no dev split)
        if not _all_finite(dict(tree_flatten(model.trainable_parameters()))):
            raise Diverged(f"training diverged: the weights hold non-finite values after step {it}; try a lower lr", mentions=("lr",))
        if not valid:
            best, best_step = _snapshot(model), it
            return False
        model.eval()
        val = evaluate_loss(model, valid, cfg.batch_size, cfg.max_seq_len, group, loss)
        model.train()
        if not math.isfinite(val):
            raise Diverged(f"training diverged: the dev loss is {val} at step {it}; try a lower lr", mentions=("lr",))
        history["valid"].append([it, val])
        if best_val is None or val < best_val - 1e-6:
            best_val, best_step, bad, best = val, it, 0, _snapshot(model)
            if on_best is not None:
                on_best(best, it)
        else:
            bad += 1
        if ckpt is not None and rank == 0:
            checkpoint.save(ckpt, model, opt, best, cfg, it, best_val, best_step, bad, history, setup, data)
        return bad >= cfg.patience

    bar = _bar(total, start, desc, progress and rank == 0)
    model.train()
    t0, tokens, window_tokens, window_t, window_loss, window_n = time.perf_counter(), 0, 0, time.perf_counter(), 0.0, 0
    stopped = False
    it = start
    batches = iterate_batches(train, cfg, start, group)
    try:
        if start == 0 and valid:
            stopped = evaluate_now(0)
        while it < total and not stopped:
            args, n_tok = next(batches)
            value = step(*args)
            mx.eval(state, value)
            it += 1
            tokens += n_tok
            window_tokens += n_tok
            local = value.item() / size  # this rank's share of the global mean
            step_loss = mx.distributed.all_sum(mx.array(local), stream=mx.cpu).item() if size > 1 else local
            if not math.isfinite(step_loss):  # the same on every rank, so all of them stop here
                raise Diverged(f"training diverged: the training loss is {step_loss} at step {it}; try a lower lr", mentions=("lr",))
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
