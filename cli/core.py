"""Core commands: doctor, tiny-model, merge, fold, fuse, generate."""

from __future__ import annotations

import importlib.metadata
import platform
import shutil
import sys
from pathlib import Path

import click
import mlx.core as mx
from click.core import ParameterSource

from mlx_lc import _blas
from mlx_lc import adapters as adapters_io
from mlx_lc import calibration as calib_io
from mlx_lc import model_folder
from mlx_lc.errors import MlxLcError
from mlx_lc.fuse import fuse as fuse_model
from mlx_lc.generate import calibration_inputs, check_sampling, load, recorded_task, resolve_task, stream
from mlx_lc.generate import multi_step as two_passes
from mlx_lc.io import check_out
from mlx_lc.merge import MergeConfig, merge as merge_loras
from mlx_lc.merges import METHODS
from mlx_lc.tiny import TinyConfig, write_tiny_model

from . import main
from .paths import out_folder
from .tasks import from_store, store_option


def parse_weights(value: str | None) -> list[float] | None:
    if not value:
        return None
    try:
        return [float(x) for x in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {value!r}") from None


model_option = click.option("--model", "-m", required=True, help="Base model: Hugging Face repo id or local folder.")
# With --calibration, the model and the adapters default to the ones it records.
calibrated_model_option = click.option("--model", "-m", help="Base model: Hugging Face repo id or local folder "
                                       "(default with --calibration: the one it was trained on).")
adapter_option = click.option("--adapter", "-a", "adapters", multiple=True,
                              help="Single-task LoRA folder (mlx-lm or PEFT format); repeat for each task.")
merge_options = [
    click.option("--method", "--merge", "method", default="linear", show_default=True,
                  type=click.Choice(list(METHODS)), help="How to merge several adapters."),
    click.option("--weights", callback=lambda c, p, v: parse_weights(v), help="Per-adapter weights, e.g. 0.5,0.5."),
    click.option("--density", default=0.5, show_default=True, type=float, help="ties/dare/magnitude_prune: fraction kept."),
    click.option("--rank", type=int, help="svd and delta-level merges: output rank, at least 1 (default: sum of ranks)."),
    click.option("--seed", default=0, show_default=True, type=int, help="Random seed (dare)."),
]


def with_merge_options(f):
    for opt in reversed(merge_options):
        f = opt(f)
    return f


def refuse_merge_options(calibration) -> None:
    """With -c the merge is the one the calibration was trained with; a --method beside it used to
    be ignored without a word, so say so instead."""
    if calibration is None:
        return
    ctx = click.get_current_context()
    given = [f"--{n}" for n in ("method", "weights", "density", "rank")
             if n in ctx.params and ctx.get_parameter_source(n) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)]
    if given:
        raise MlxLcError(f"{', '.join(given)} cannot go with --calibration, which uses the merge it was trained with "
                         f"(recorded in {Path(calibration) / calib_io.CONFIG})")


def inputs_for(model, adapters, calibration):
    """(model, adapters): as given, or, with a calibration, completed from what it records."""
    if calibration is not None:
        return calibration_inputs(model, adapters, calibration)
    if model is None:
        raise MlxLcError("give --model (or a --calibration, which records it)")
    return model, list(adapters)


def stored(task, model, adapters, calibration, need_calibration=False):
    """(model, adapters, calibration): as given, or, with --task alone, the task store's."""
    if task is None:
        if need_calibration and calibration is None:
            raise click.UsageError("give --calibration (or --task of the task store)")
        return model, adapters, calibration
    if model is not None or adapters or calibration is not None:
        raise click.UsageError("--task takes the model, adapters and calibration from the task store: "
                               "give it alone, or give --model/--adapter/--calibration without it")
    model, adapters, calibration = from_store(task, None, note=not need_calibration)
    if need_calibration and calibration is None:
        raise MlxLcError(f"{task} has no calibration in the task store (mlx-lc calibrate --task {task} ...)")
    return model, adapters, calibration


def merged_adapter(model: str, adapters, method, weights, density, rank, seed, calibration=None):
    """Load the model lazily, validate adapters, merge (and fold a calibration) -> LoRA."""
    if not adapters:
        raise MlxLcError("give at least one --adapter")
    m, _ = model_folder.load(model, lazy=True)
    loras = adapters_io.load_for(m, adapters, model)
    if calibration is not None:
        _, merged, calib = calib_io.merge_for(calibration, loras)
        return calib_io.fold(merged, calib)
    return merge_loras(loras, MergeConfig(method, weights, density, rank, seed), "use --method cat or svd")


@main.command()
def doctor():
    """Print versions, device, the BLAS in use and optional parts."""
    def version(dist):  # metadata only: importing coremltools on Linux prints warnings
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    click.echo(f"mlx-lc           {sys.modules['mlx_lc'].__version__}")
    click.echo(f"python           {platform.python_version()} ({platform.system()} {platform.machine()})")
    for dist in ("mlx", "mlx-lm", "numpy", "huggingface-hub", "transformers", "click"):
        click.echo(f"{dist:<16} {version(dist)}")
    metal = mx.metal.is_available() if hasattr(mx, "metal") else False
    click.echo(f"device           {mx.default_device()} ({'Metal' if metal else 'CPU backend'})")
    click.echo(f"blas             {_blas.LOADED or 'bundled reference BLAS'}{' (' + _blas.REASON + ')' if _blas.REASON else ''}")
    for dist, extra in (("coremltools", "coreml"), ("rouge-score", "eval"), ("matplotlib", "eval")):
        click.echo(f"{dist:<16} {version(dist)}  (optional: pip install 'mlx-lc[{extra}]')")
    click.echo(f"{'swift':<16} {shutil.which('swift') or 'not found'}")


@main.command("tiny-model")
@click.argument("out", type=click.Path(path_type=Path), callback=out_folder("config.json", "model folder"))
@click.option("--seed", default=0, show_default=True)
@click.option("--hidden", default=64, show_default=True)
@click.option("--layers", default=2, show_default=True)
@click.option("--vocab", default=512, show_default=True, help="Tokenizer vocabulary size (BPE).")
@click.option("--heads", default=4, show_default=True)
@click.option("--kv-heads", default=2, show_default=True)
@click.option("--corpus", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Text file to train the tokenizer on (default: a small built-in corpus).")
def tiny_model(out, seed, hidden, layers, vocab, heads, kv_heads, corpus):
    """Write a tiny random Llama model with a locally trained tokenizer to OUT (offline)."""
    texts = corpus.read_text().splitlines() if corpus else None
    write_tiny_model(out, TinyConfig(hidden=hidden, layers=layers, vocab=vocab, heads=heads,
                                     kv_heads=kv_heads, seed=seed), texts)
    click.echo(f"wrote {out}")


@main.command()
@model_option
@adapter_option
@with_merge_options
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Output adapter folder.",
              callback=out_folder(adapters_io.MLX_CONFIG, "adapter"))
def merge(model, adapters, method, weights, density, rank, seed, out):
    """Merge single-task LoRAs into one mlx-lm adapter."""
    check_out(out, [model, *adapters])
    lora = merged_adapter(model, adapters, method, weights, density, rank, seed)
    adapters_io.write_mlx(lora, out)
    info = lora.meta.get("merge", {})
    err = info.get("refactor_max_rel_error")
    click.echo(f"wrote {out} ({method}, rank {lora.rank}, {lora.num_params():,} params"
               + (f", re-factor error {err:.2e}" if err is not None else "") + ")")


@main.command()
@calibrated_model_option
@adapter_option
@click.option("--calibration", "-c", type=click.Path(path_type=Path), help="Calibration folder.")
@click.option("--task", "-t", help="A calibrated composition of the task store (instead of -m/-a/-c).")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Output adapter folder.",
              callback=out_folder(adapters_io.MLX_CONFIG, "adapter"))
@store_option
def fold(model, adapters, calibration, task, out, store):
    """Fold merge + calibration into one ordinary mlx-lm LoRA adapter."""
    model, adapters, calibration = stored(task, model, adapters, calibration, need_calibration=True)
    model, adapters = inputs_for(model, adapters, calibration)
    check_out(out, [model, *adapters, calibration])
    lora = merged_adapter(model, adapters, None, None, None, None, 0, calibration)
    task = recorded_task(calibration=calibration)  # so `mlx-lc generate -a OUT` prompts for it
    adapters_io.write_mlx(lora, out, extra_meta={"task": task} if task else None)
    click.echo(f"wrote {out} (rank {lora.rank}, {lora.num_params():,} params)")


@main.command()
@calibrated_model_option
@adapter_option
@with_merge_options
@click.option("--calibration", "-c", type=click.Path(path_type=Path), help="Calibration folder to fold in first.")
@click.option("--task", "-t", help="A composition of the task store (instead of -m/-a/-c).")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Output model folder.",
              callback=out_folder("config.json", "model folder"))
@store_option
def fuse(model, adapters, method, weights, density, rank, seed, calibration, task, out, store):
    """Fuse the (merged, calibrated) update into the weights; write a full model folder."""
    refuse_merge_options(calibration)
    model, adapters, calibration = stored(task, model, adapters, calibration)
    model, adapters = inputs_for(model, adapters, calibration)
    check_out(out, [model, *adapters, calibration])
    lora = merged_adapter(model, adapters, method, weights, density, rank, seed, calibration)
    fuse_model(model, lora, out, extra={"fused_from": lora.meta})
    click.echo(f"wrote {out}")


@main.command()
@click.argument("text", required=False)
@calibrated_model_option
@adapter_option
@with_merge_options
@click.option("--calibration", "-c", type=click.Path(path_type=Path),
              help="Calibration folder; alone, it names the model, the adapters and the task.")
@click.option("--task", "-t", help="Task or composition, e.g. summarize+es. Alone, a task or composition in the "
              "task store names the model, the adapters and the calibration (default: the one the calibration or "
              "the adapters were trained for).")
@click.option("--multi-step", is_flag=True, help="One pass per task: each adapter on the output of the one before.")
@click.option("--prompt", "-p", help="Input text, or - to read stdin (same as TEXT).")
@click.option("--max-tokens", default=256, show_default=True)
@click.option("--temp", default=0.0, show_default=True, help="Sampling temperature, >= 0 (0: greedy).")
@click.option("--top-p", default=0.0, show_default=True, help="Nucleus sampling, in [0, 1] (0: off).")
@click.option("--min-p", default=0.0, show_default=True, help="Min-p sampling, in [0, 1] (0: off).")
@click.option("--top-k", default=0, show_default=True, help="Top-k sampling, >= 0 (0: off).")
@store_option
def generate(text, model, adapters, method, weights, density, rank, seed, calibration, task, multi_step, prompt,
             max_tokens, temp, top_p, min_p, top_k, store):
    """Generate in one pass with merged (and calibrated) adapters; streams tokens.

    TEXT is the input (or give -p; - or no text reads stdin):

    \b
    mlx-lc generate --task summarize+es "$(cat chat.txt)"
    mlx-lc generate --task summarize+es < chat.txt
    """
    refuse_merge_options(calibration)
    check_sampling(temp, top_p, min_p, top_k, max_tokens)  # before minutes of loading, not after
    if text is not None and prompt is not None:
        raise MlxLcError("give the input as TEXT or as --prompt, not both")
    text = text if text is not None else prompt
    if text is None and sys.stdin.isatty():
        raise MlxLcError("no input: give TEXT, --prompt, or pipe it on stdin")
    if text is None or text == "-":
        try:  # bytes, then strict UTF-8: binary input otherwise reaches the tokenizer as surrogates
            text = sys.stdin.buffer.read().decode("utf-8")
        except UnicodeDecodeError as e:
            raise MlxLcError(f"stdin is not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not text.strip():
        raise MlxLcError("empty prompt")
    if task and model is None and not adapters and calibration is None:
        model, adapters, calibration = from_store(task, store, note=not multi_step)
        if multi_step:
            calibration = None
    model, adapters = inputs_for(model, adapters, calibration)
    task = resolve_task(task, adapters, calibration)
    sampling = dict(max_tokens=max_tokens, temp=temp, top_p=top_p, min_p=min_p, top_k=top_k, seed=seed)
    if multi_step:
        if len(adapters) < 2 or calibration:
            raise MlxLcError("--multi-step takes an adapter per task, in order (at least two), and no calibration")
        if not task:
            raise MlxLcError("--multi-step needs --task A+B (the tasks in the order they apply)")
        m, tok = model_folder.load(model)
        click.echo(two_passes(m, tok, adapters_io.load_for(m, adapters, model), text, task, **sampling)[-1])
        return
    m, tok = load(model, adapters, method, weights, calibration, density, rank, seed)
    for piece in stream(m, tok, text, task, **sampling):
        click.echo(piece, nl=False)
    click.echo()
