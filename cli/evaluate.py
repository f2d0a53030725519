"""`mlx-lc eval`: score one method on a test JSONL the way the demo scores every method."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mlx_lc.evaluate import EvalConfig, evaluate as run_eval, markdown
from mlx_lc.io import atomic_dir, check_out, write_json
from mlx_lc.merges import METHODS
from mlx_lc.store import Store

from . import main
from .core import refuse_merge_options
from .paths import out_folder
from .tasks import from_store, store_option


@main.command("eval")
@click.option("--task", "-t", help="A task or composition of the task store: with no --model/--adapter/"
              "--calibration it names them all, and the scores are recorded there (mlx-lc tasks shows them).")
@click.option("--model", "-m", help="Base model: Hugging Face repo id or local folder.")
@click.option("--adapter", "-a", "adapters", multiple=True,
              help="LoRA folder; none = zero-shot, one = that LoRA, several = merged (or calibrated).")
@click.option("--merge", "method", default="linear", show_default=True, type=click.Choice(list(METHODS)),
              help="How to merge several adapters.")
@click.option("--calibration", "-c", type=click.Path(path_type=Path), help="Calibration folder (from calibrate).")
@click.option("--multi-step", is_flag=True, help="One pass per task: each adapter on the output of the one before.")
@click.option("--data", "-d", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Test JSONL: prompt, completion, task (+ input for --multi-step, frame for the judge).")
@click.option("--out", "-o", type=click.Path(path_type=Path), help="Folder for results.json and results.md.",
              callback=out_folder("results.json", "eval output"))
@click.option("--max-tokens", default=128, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1), help="Rows generated together.")
@click.option("--limit", type=int, help="Only the first N rows (N >= 1).")
@store_option
def evaluate(task, model, adapters, method, calibration, multi_step, data, out, max_tokens, batch_size, limit, store):
    """Generate greedily for every row and score it: ROUGE-L (summaries), weighted ROUGE
    (replies) and the judge (rows with a frame). Prints a Markdown table per sub-task."""
    stored = task is not None and model is None and not adapters and calibration is None
    if stored:
        model, adapters, calibration = from_store(task, store, note=not multi_step)
        calibration = None if multi_step else calibration
    elif model is None:
        raise click.UsageError("give --model (or --task of the task store alone)")
    if out is not None:
        check_out(out, [model, *adapters, calibration, data])
    refuse_merge_options(calibration)
    report = run_eval(model, data, adapters, method, calibration, multi_step, EvalConfig(max_tokens, batch_size, limit))
    table = markdown(report["per_task"], report["method"])
    if stored:
        label = "multi-step" if multi_step else "calibrated" if calibration else f"{method} merge"
        for name, summary in report["per_task"].items():
            if name == task:
                Store.default().record_scores(task, label, {k: v for k, v in summary.items()
                                                            if k in ("n", "metric", "score", "judge_pass")})
    click.echo(table, nl=False)
    if out is not None:
        with atomic_dir(out, marker="results.json", kind="eval output") as tmp:
            write_json(tmp / "results.json", report)
            (tmp / "results.md").write_text(table)
            with open(tmp / "examples.jsonl", "w") as f:
                for r in report["examples"]:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
        click.echo(f"wrote {out}")
