"""Benchmark data and judge commands: `mlx-lc data build`, `mlx-lc judge`, `mlx-lc judge-table`."""

from __future__ import annotations

from pathlib import Path

import click

from mlx_lc import judge as judge_lib
from mlx_lc.errors import MlxLcError
from mlx_lc.io import atomic_write_text, check_out, check_out_dir, read_json

from . import main
from .paths import out_file, out_folder


@main.group()
def data():
    """The paper's benchmark data (DialogSum, Synthetic Persona Chat, TED talks, tone)."""


def _sizes(value):
    return None if value is None or value < 0 else value


@data.command("build")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Output folder (replaced when done).",
              callback=out_folder("manifest.json", "data build"))
@click.option("--sources", "-s", default="dialogsum,spc,ted,tone", show_default=True,
              help="Comma-separated: dialogsum, spc, ted, tone.")
@click.option("--limit", type=int, help="Cap every split of every set at N rows (quick runs).")
@click.option("--translator", default=None, help="mlx-lm model (hub id or folder) that translates targets.")
@click.option("--rewriter", default=None, help="mlx-lm model (hub id or folder) that rewrites tone.")
@click.option("--rewriter-format", type=click.Choice(["instruct", "llm-toys"]), default="instruct", show_default=True,
              help="Prompt for the rewriter: an instruct model's chat, or the llm-toys tone prompt the paper used.")
@click.option("--tone-table", help="Tone rewrites to use instead of generating them: a .csv/.tsv/.json/.jsonl file "
              "(or owner/name:path on the hub) with text, tone, rewrite columns, or text plus one column per tone.")
@click.option("--no-compositional", is_flag=True, help="Only the single-task sets.")
@click.option("--comp-train", default=10_000, show_default=True, type=int, help="Compositional train examples per sub-task (-1: all).")
@click.option("--comp-valid", default=500, show_default=True, type=int, help="Compositional valid examples per sub-task (-1: all).")
@click.option("--comp-test", default=-1, show_default=True, type=int, help="Compositional test examples per sub-task (-1: all).")
@click.option("--ted-train", default=20_000, show_default=True, type=int, help="TED sentence pairs per language for training.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--batch-size", default=16, show_default=True, type=int, help="Generation batch size.")
@click.option("--max-tokens", default=256, show_default=True, type=int, help="Generation limit per target.")
@click.option("--cache", "cache_dir", type=click.Path(path_type=Path),
              help="Generation cache folder (default: $MLX_LC_HOME/generations).")
@click.option("--hub-cache", type=click.Path(path_type=Path), help="huggingface_hub cache folder (default: HF_HOME's).")
@click.option("--offline", is_flag=True, help="Use only files already in the hub cache (as HF_HUB_OFFLINE=1).")
def build_cmd(out, sources, limit, translator, rewriter, rewriter_format, tone_table, no_compositional, comp_train,
              comp_valid, comp_test, ted_train, seed, batch_size, max_tokens, cache_dir, hub_cache, offline):
    """Download the sources and write the 9 single-task and 14 compositional sets to OUT.

    Compositional targets come from running each single-task target through --translator or
    --rewriter (mlx-lm models; the paper's OpusMT translators are Marian models that mlx-lm cannot
    run). Generations are cached per example, so an interrupted build resumes where it stopped.
    """
    # here: mlx_lc.data costs 40-170 ms (urllib, email, ssl), which `mlx-lc --help` does not need
    from mlx_lc.data import DEFAULT_REWRITER, DEFAULT_TRANSLATOR, BuildConfig, build

    check_out(out, [tone_table, cache_dir, hub_cache, translator, rewriter])
    cfg = BuildConfig(out=out, sources=tuple(s.strip() for s in sources.split(",") if s.strip()), limit=limit,
                      translator=translator or DEFAULT_TRANSLATOR, rewriter=rewriter or DEFAULT_REWRITER,
                      rewriter_format=rewriter_format, tone_table=tone_table, compositional=not no_compositional,
                      comp_train=_sizes(comp_train), comp_valid=_sizes(comp_valid), comp_test=_sizes(comp_test),
                      ted_train=_sizes(ted_train), seed=seed, batch_size=batch_size, max_tokens=max_tokens,
                      cache_dir=cache_dir, hub_cache=hub_cache, offline=offline)
    manifest = build(cfg)
    for name, counts in manifest["counts"].items():
        click.echo(f"{name:<32} " + "  ".join(f"{s} {n:>6}" for s, n in counts.items()))
    skipped = manifest["skipped"]
    if skipped:
        click.echo(f"skipped {sum(skipped.values())} row(s) (details in {out / 'skipped.jsonl'}):", err=True)
        for reason, n in skipped.items():
            click.echo(f"  {n:>6}  {reason}", err=True)
    for note, n in manifest["notes"].items():
        click.echo(f"note: {note} ({n})", err=True)
    for model, st in manifest["generation"].items():
        click.echo(f"{'+'.join(st['roles'])} {model}: {st['generated']} generated, {st['cached']} from cache")
    click.echo(f"wrote {out} in {manifest['seconds']:.0f} s")


@main.command()
@click.option("--model", "-m", default=None, help="Judge: any mlx-lm model (default: a small instruct model).")
@click.option("--data", "-d", "data_path", required=True, type=click.Path(path_type=Path),
              help="Outputs to judge: JSON lines (or a JSON list) with task, input, output and optionally reference.")
@click.option("--out", "-o", type=click.Path(path_type=Path), help="Output folder (default: DATA's folder/judge).",
              callback=out_folder("judge_summary.json", "judge output"))
@click.option("--task", help="Sub-task for rows without a task field, e.g. summarize+es.")
@click.option("--method", help="Label for the table (default: the rows' method field).")
@click.option("--batch-size", default=8, show_default=True, type=int)
@click.option("--max-tokens", default=64, show_default=True, type=int)
@click.option("--cache", "cache_dir", type=click.Path(path_type=Path), help="Verdict cache folder.")
def judge(model, data_path, out, task, method, batch_size, max_tokens, cache_dir):
    """Score compositional outputs with an LLM judge: a binary pass/fail per example.

    Writes verdicts.jsonl, judge_summary.json and judge_table.md. Verdicts the parser cannot read
    (refusals, both or neither of PASS/FAIL) are counted as unparseable, not as passes or fails.
    """
    out = out or data_path.parent / "judge"
    check_out_dir(out, "judge_summary.json", "judge output")  # the default skipped the callback
    check_out(out, [data_path, model, cache_dir])
    cfg = judge_lib.JudgeConfig(model=model or judge_lib.DEFAULT_JUDGE, max_tokens=max_tokens,
                                batch_size=batch_size, cache_dir=cache_dir, task=task, method=method)
    rows = judge_lib.read_outputs(data_path)
    if not rows:
        raise MlxLcError(f"{data_path}: no examples")
    records, summary = judge_lib.judge(rows, cfg)
    judge_lib.write(out, records, summary)
    o = summary["overall"]
    click.echo(f"{o['n']} judged: {o['pass']} pass, {o['fail']} fail, {o['unparseable']} unparseable "
               f"(pass rate {o['pass_rate']}%)")
    for group, b in summary["by_group"].items():
        click.echo(f"  {group:<12} {b['pass_rate']:>6}%  (n={b['n']}, unparseable {b['unparseable']})")
    click.echo(f"wrote {out}")


@main.command("judge-table")
@click.argument("runs", nargs=-1, required=True)
@click.option("--out", "-o", type=click.Path(path_type=Path), help="Also write the table to this Markdown file.",
              callback=out_file)
@click.option("--png", type=click.Path(path_type=Path), help="Also write a bar chart (needs matplotlib).")
def judge_table(runs, out, png):
    """Table of judge pass rates per task group beside the paper's Table 1.

    RUNS are METHOD=FOLDER pairs, each FOLDER a `mlx-lc judge` output (judge_summary.json).
    """
    png = judge_lib.png_path(png) if png else None  # a bad suffix fails before any output
    summaries, inputs = {}, []
    for run in runs:
        method, sep, folder = run.partition("=")
        if not sep or not method or not folder:
            raise click.BadParameter(f"expected METHOD=FOLDER, got {run!r}")
        where = Path(folder) / "judge_summary.json"
        summaries[method] = judge_lib.check_summary(read_json(where), where)  # hand-edited or another tool's
        inputs += [folder, Path(folder) / "judge_summary.json"]
    if out:
        check_out(out, inputs)
    text = judge_lib.table(summaries)
    click.echo(text, nl=False)
    if out:
        atomic_write_text(out, text)
        click.echo(f"wrote {out}")
    if png:
        click.echo(f"wrote {judge_lib.plot(summaries, png)}")

