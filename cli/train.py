"""Training commands: train-lora, calibrate, pretrain. Run any of them under `mlx.launch` to train
data-parallel: mlx.launch --backend ring -n 2 $(which mlx-lc) train-lora ..."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import click
import mlx.core as mx

from mlx_lc.calibrate import DEFAULT_CALIBRATION, DEFAULT_FIT, CalibrateConfig, calibrate_task
from mlx_lc.calibrate import calibrate as run_calibrate
from mlx_lc.store import Store
from mlx_lc.targets import TargetsConfig
from mlx_lc.calibration import CalibrationConfig
from mlx_lc.errors import MlxLcError
from mlx_lc.training.fit import FitConfig
from mlx_lc.tiny import TinyConfig
from mlx_lc.training.pretrain import PretrainConfig, pretrain_new
from mlx_lc.training.train import LoRAConfig, train_lora as run_train_lora

from . import main
from .paths import out_folder
from .tasks import store_option


def fit_options(lr: float, batch_size: int, max_seq_len: int = 512, epochs: float = 1.0):
    opts = [
        click.option("--lr", default=lr, show_default=True, type=float, help="Learning rate (Adam)."),
        click.option("--iters", type=int, help="Optimizer steps (overrides --epochs)."),
        click.option("--epochs", default=epochs, show_default=True, type=float, help="Passes over the training data."),
        click.option("--batch-size", default=batch_size, show_default=True, type=int,
                     help="Global batch size (split across mlx.launch ranks)."),
        click.option("--max-seq-len", default=max_seq_len, show_default=True, type=int, help="Truncate longer rows."),
        click.option("--seed", default=0, show_default=True, type=int),
        click.option("--eval-every", type=int, help="Steps between dev-loss evaluations (default: ~8 per run)."),
        click.option("--patience", default=3, show_default=True, type=int,
                     help="Stop after this many evaluations without a better dev loss."),
        click.option("--group-by-length", is_flag=True,
                     help="Batch rows of similar length: less padding, faster steps. Hurts where length tracks "
                          "the kind of row (batches of one kind; docs/EXPERIMENTS.md)."),
        click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
    ]

    def deco(f):
        for o in reversed(opts):
            f = o(f)
        return f
    return deco


def _fit_config(lr, iters, epochs, batch_size, max_seq_len, seed, eval_every, patience, group_by_length,
                base: FitConfig | None = None):
    """The command's options over `base` (a library default, e.g. calibrate's), else FitConfig's."""
    fit = replace(base or FitConfig(), lr=lr, batch_size=batch_size, iters=iters, epochs=epochs,
                  max_seq_len=max_seq_len, seed=seed, eval_every=eval_every, patience=patience,
                  group_by_length=group_by_length)
    for name, what in fit.problems()[:1]:  # FitConfig's own checks, under the option's name
        raise click.BadParameter(what, param_hint="--" + name.replace("_", "-"))
    return fit


def _positive(value: float, hint: str) -> None:
    if not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"must be a positive number, got {value}", param_hint=hint)


def _report(result, out: Path, what: str) -> None:
    if mx.distributed.init().rank() != 0:
        return
    val = f"{result.best_val:.4f}" if result.best_val is not None else "n/a"
    stop = ", stopped early" if result.stopped_early else ""
    click.echo(f"wrote {what} {out}: {result.steps} steps{stop}, best dev loss {val} at step {result.best_step}, "
               f"{result.tokens / max(result.seconds, 1e-9):,.0f} tokens/s")


data_option = click.option("--data", "-d", required=True, type=click.Path(path_type=Path),
                           help="Folder with train.jsonl (+ valid.jsonl), or one .jsonl file (10% held out as dev).")
out_option = click.option("--out", "-o", required=True, type=click.Path(path_type=Path), callback=out_folder(),
                          help="Output folder.")


@main.command("train-lora")
@click.option("--model", "-m", required=True, help="Base model: Hugging Face repo id or local folder.")
@data_option
@out_option
@click.option("--rank", default=32, show_default=True, type=click.IntRange(min=1), help="LoRA rank r.")
@click.option("--alpha", default=16.0, show_default=True, type=float, help="LoRA alpha; mlx-lm scale = alpha / rank.")
@click.option("--scale", type=float, help="mlx-lm scale (overrides --alpha).")
@click.option("--dropout", default=0.05, show_default=True, type=float)
@click.option("--keys", help="Comma-separated modules inside a block (default: every linear layer).")
@fit_options(lr=5e-5, batch_size=4)
def train_lora(model, data, out, rank, alpha, scale, dropout, keys, lr, iters, epochs, batch_size, max_seq_len, seed,
               eval_every, patience, group_by_length, resume, quiet):
    """Train a LoRA on prompt/completion JSONL (loss on the completion only).

    Single-task data gives a task adapter; compositional data gives the joint-expert baseline.
    Writes an mlx-lm adapter folder (adapters.safetensors, adapter_config.json) with loss.png.
    """
    if not 0 <= dropout < 1:
        raise click.BadParameter(f"must be in [0, 1), got {dropout}", param_hint="--dropout")
    # scale 0 (or alpha 0) trains an adapter that changes nothing; nan poisons every weight
    if scale is not None:
        _positive(scale, "--scale")
    else:
        _positive(alpha, "--alpha")
    cfg = LoRAConfig(rank=rank, scale=scale if scale is not None else alpha / rank, dropout=dropout,
                     keys=[k.strip() for k in keys.split(",")] if keys else None,
                     fit=_fit_config(lr, iters, epochs, batch_size, max_seq_len, seed, eval_every, patience,
                                     group_by_length))
    _report(run_train_lora(model, data, out, cfg, resume=resume, progress=not quiet), out, "adapter")


@main.command()
@click.option("--task", "-t", help="A composition, A+B: with no --model/--adapter, its tasks' adapters and base "
              "model come from the task store, and the calibration is registered there.")
@click.option("--model", "-m", help="Base model the adapters were trained on (default with --task: the store's).")
@click.option("--adapter", "-a", "adapters", multiple=True,
              help="Task LoRA folder; repeat, in the order the tasks apply (default with --task: the store's).")
@click.option("--variant", default=DEFAULT_CALIBRATION.variant, show_default=True, type=click.Choice(["lc", "lc++"]))
@click.option("--mode", default="scale", show_default=True, type=click.Choice(["scale", "bias"]),
              help="lc only: diag(p) B'A' (scale) or B'A' + p 1^T (bias).")
@click.option("--rank", default=DEFAULT_CALIBRATION.rank, show_default=True, type=int,
              help="lc++ only: rank of the shared correction.")
@click.option("--data", "-d", type=click.Path(path_type=Path),
              help="Compositional rows (prompt, completion): a folder with train.jsonl (+ valid.jsonl), or one "
                   ".jsonl file (10% held out as dev).")
@click.option("--inputs", type=click.Path(path_type=Path, dir_okay=False),
              help="Inputs only, no labels: JSONL with an 'input' per row. The composition's multi-step chain "
                   "writes the targets (kept in OUT/targets.jsonl); needs --task.")
@click.option("--teacher-model", help="With --inputs: this model runs the chain instead, prompted with each "
              "task's instruction (no adapters).")
@click.option("--targets-max-tokens", default=256, show_default=True, type=click.IntRange(min=1),
              help="With --inputs: tokens per step of the chain.")
@click.option("--keep", default=1.0, show_default=True, type=click.FloatRange(0, 1, min_open=True),
              help="With --inputs: the fraction of inputs whose targets train, those the chain is surest of "
                   "first (it pays where many of the chain's answers are wrong).")
@click.option("--out", "-o", type=click.Path(path_type=Path), callback=out_folder(),
              help="Output folder (default with --task: the store's calibrations/A+B).")
@fit_options(lr=DEFAULT_FIT.lr, batch_size=DEFAULT_FIT.batch_size, epochs=DEFAULT_FIT.epochs)
@store_option
def calibrate(task, model, adapters, variant, mode, rank, data, inputs, teacher_model, targets_max_tokens, keep, out,
              lr, iters, epochs, batch_size, max_seq_len, seed, eval_every, patience, group_by_length, resume,
              quiet, store):
    """Learn a calibration for the linear merge of task LoRAs.

    Base model and LoRAs stay frozen; only the calibration (shared by all layers) trains. On
    compositional rows (--data), or on inputs alone (--inputs): then the chain of the single-task
    LoRAs writes the targets.

    \b
    mlx-lc calibrate --task action-items+japanese --inputs chats.jsonl
    mlx-lc calibrate -m MODEL -a lora/summarize -a lora/es -d data/summarize+es -o cal/sum_es
    """
    cfg = CalibrateConfig(calibration=CalibrationConfig(variant, mode, rank, seed),
                          fit=_fit_config(lr, iters, epochs, batch_size, max_seq_len, seed, eval_every, patience,
                                          group_by_length, DEFAULT_FIT))
    if (data is None) == (inputs is None):
        raise click.UsageError("give --data (compositional rows) or --inputs (inputs alone), one of them")
    if inputs is None and (teacher_model or keep != 1.0):
        raise click.UsageError("--teacher-model and --keep go with --inputs")
    if task is not None:
        targets = TargetsConfig(targets_max_tokens, teacher=teacher_model, keep=keep)
        result, out, registered = calibrate_task(Store.default(), task, data, inputs, out, cfg, targets, resume,
                                                 not quiet, model, list(adapters))
        _report(result, out, "calibration")
        if registered:
            click.echo(f"registered {task} in the task store: mlx-lc generate --task {task} TEXT")
        return
    if inputs is not None:
        raise click.UsageError("--inputs needs --task A+B: the tasks whose instructions the chain runs")
    if not adapters or model is None or out is None:
        raise click.UsageError("give --model, --adapter (one per task) and --out, or --task A+B of the task store")
    _report(run_calibrate(model, list(adapters), data, out, cfg, resume=resume, progress=not quiet), out, "calibration")


@main.command()
@click.option("--corpus", "-c", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Plain text; documents separated by blank lines, each kept whole in one window when it fits.")
@out_option
@click.option("--hidden", default=128, show_default=True)
@click.option("--layers", default=4, show_default=True)
@click.option("--heads", default=4, show_default=True)
@click.option("--kv-heads", default=2, show_default=True)
@click.option("--vocab", default=1024, show_default=True, help="BPE vocabulary trained on the corpus.")
@fit_options(lr=3e-3, batch_size=16, max_seq_len=128)
def pretrain(corpus, out, hidden, layers, heads, kv_heads, vocab, lr, iters, epochs, batch_size, max_seq_len, seed,
             eval_every, patience, group_by_length, resume, quiet):
    """Pretrain a tiny Llama from scratch on CORPUS (tokenizer too); every weight trains."""
    if resume:
        raise MlxLcError("pretrain does not resume; run it again")
    fit = _fit_config(lr, iters, epochs, batch_size, max_seq_len, seed, eval_every, patience, group_by_length)
    fit.warmup, fit.schedule, fit.weight_decay = min(50, (iters or 1000) // 10), "cosine", 0.01
    tiny = TinyConfig(hidden=hidden, layers=layers, vocab=vocab, heads=heads, kv_heads=kv_heads, seed=seed)
    _report(pretrain_new(out, tiny, corpus, PretrainConfig(fit=fit), progress=not quiet), out, "model")
