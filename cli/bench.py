"""`mlx-lc bench`: speed and memory, measured side by side in one run."""

from __future__ import annotations

from pathlib import Path

import click

from . import main
from .paths import out_folder


@main.command()
@click.option("--model", "-m", help="mlx-lm model id or folder (default: a random model of --shape).")
@click.option("--shape", default="tiny", show_default=True,
              help="Random model to write when no --model: tiny, smollm2-135m, qwen2.5-0.5b, llama3.2-1b.")
@click.option("--dtype", default="float32", show_default=True, type=click.Choice(["float32", "bfloat16", "float16"]),
              help="Weights of a random --shape model.")
@click.option("--quick", is_flag=True, help="Smoke run: tiny model, few tokens, two rounds.")
@click.option("--only", help="Comma-separated groups: e2e, decode, generate, train, exp, blas (default: these "
              "six), and serve (mlx-lc serve vs mlx_lm.server, each in a process of its own: only when named).")
@click.option("--rank", default=32, show_default=True, help="Rank of the two random task LoRAs.")
@click.option("--max-tokens", type=int, help="Tokens per generation pass [64; quick 8].")
@click.option("--rounds", type=int, help="Interleaved timed rounds per comparison [7; quick 2].")
@click.option("--prompts", type=int, help="Compositional inputs per round, at most 3 [3; quick 1].")
@click.option("--train-batch", type=int, help="Sequences per training step [4; quick 2].")
@click.option("--train-seq", type=int, help="Tokens per training sequence [128; quick 16].")
@click.option("--copy-mb", type=int, help="Array size for the copy-bandwidth and exp tests [256; quick 8].")
@click.option("--blas-n", type=int, help="Matmul size for the BLAS test [1024; quick 128].")
@click.option("--seed", default=0, show_default=True)
@click.option("--out", "-o", default="bench_results", show_default=True, type=click.Path(path_type=Path),
              callback=out_folder("bench.json", "bench"),
              help="Folder for bench.json, bench.md and bench.png (replaced as a whole: new, empty or an earlier bench).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def bench(model, shape, dtype, quick, only, rank, max_tokens, rounds, prompts, train_batch, train_seq, copy_mb,
          blas_n, seed, out, no_progress):
    """Benchmark single pass vs multi-step, fused vs runtime adapters, mlx-lc vs mlx-lm generation,
    decode speed vs memory bandwidth, LoRA vs calibration training steps, the share of exponentials
    in a training step, the Linux BLAS, and (--only serve) mlx-lc serve vs mlx_lm.server.

    Every row is a ratio of two variants timed in turns in this one run, on the same model and
    inputs; adapters and calibrations are random (speed does not depend on what they learned).
    """
    # here, not at the top: the bench brings in mlx_lm (about 1.1 s), which `mlx-lc --help` does not need
    from mlx_lc.bench import report as bench_report
    from mlx_lc.bench import run as lib

    groups = tuple(g.strip() for g in only.split(",") if g.strip()) if only else lib.DEFAULT_GROUPS
    cfg = lib.BenchConfig(model=model, shape=shape, dtype=dtype, quick=quick, groups=groups, rank=rank,
                          max_tokens=max_tokens, rounds=rounds, prompts=prompts, train_batch=train_batch,
                          train_seq=train_seq, copy_mb=copy_mb, blas_n=blas_n, seed=seed)
    result = lib.run(cfg, progress=not no_progress)
    click.echo(bench_report.text_table(result))
    for path in bench_report.write(result, out):
        click.echo(f"wrote {path}")
