"""`mlx-lc demo`: the paper's comparison on a synthetic world, trained and scored on this machine."""

from __future__ import annotations

import os
from pathlib import Path

import click

from mlx_lc import demo as lib
from mlx_lc.io import check_out_dir

from . import main
from .paths import out_folder


@main.command()
@click.option("--quick", "size", flag_value="quick",
              help="The default run's summarize+es only, from the LoRAs mlx-lc ships for it: trains LC++ alone and "
                   "scores it against merges and multi-step, 5 to 12 minutes on 2 CPU cores.")
@click.option("--default", "size", flag_value="default", default=True,
              help="One sub-task per task group (4): about 45 minutes on 2 CPU cores.")
@click.option("--full", "size", flag_value="full", help="All 14 sub-tasks: about 2.5 hours on 2 CPU cores.")
@click.option("--out", "-o", type=click.Path(path_type=Path), callback=out_folder(),
              help="Results folder (default: $MLX_LC_HOME/demo, or ./mlx-lc-demo).")
@click.option("--seed", default=0, show_default=True, help="Seed for the world, inits and data order.")
@click.option("--seeds", help="Several seeds, e.g. 0,1,2: results show mean ± std (overrides --seed).")
@click.option("--subtask", "subtasks", multiple=True, help="Sub-tasks to run instead of the preset's, e.g. reply+de.")
@click.option("--pretrain-base", is_flag=True,
              help="Pretrain the base here (about 45 minutes at the default size) and train every LoRA, even where "
                   "mlx-lc ships ones made for this world and these settings.")
@click.option("--jobs", "-j", type=click.IntRange(1), help="Adapters trained at once, one process each "
              "[default: 2 on a CPU with 2+ cores, 1 with a GPU].")
@click.option("--report-only", is_flag=True, help="Rewrite the results folder of a finished run in --out from its "
              "saved per-example scores; trains and generates nothing.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def demo(size, out, seed, seeds, subtasks, pretrain_base, jobs, report_only, quiet):
    """Build the world, pretrain a tiny base (or copy the one shipped for it), train the task LoRAs, and compare zero-shot, single
    LoRAs, merges, multi-step, joint expert, LC and LC++ on held-out compositional tests.

    Writes results.json, results.md (the paper's table beside ours), results.png and loss curves.
    Re-running with the same --out reuses finished artifacts made by the same version and settings.
    """
    if out is None:
        home = os.environ.get("MLX_LC_HOME")
        out = Path(home) / "demo" if home else Path("mlx-lc-demo")
    if report_only:
        if not (out / "results.json").exists():
            raise click.UsageError(f"--report-only: no finished run in {out} (no results.json)")
        lib.rewrite_report(out)
        click.echo(f"wrote {out / 'results.md'}")
        return
    check_out_dir(out, "work", "demo")  # new, empty or an earlier demo (holding work/), before any work
    try:
        seed_list = [int(s) for s in seeds.split(",")] if seeds else [seed]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {seeds!r}", param_hint="--seeds") from None
    cfg = lib.preset(size, subtasks=list(subtasks) or None, seed=seed_list[0], use_shipped_base=not pretrain_base)
    results = lib.run(cfg, out, seed_list, progress=not quiet, log=click.echo, label=size,
                       workers=jobs)
    click.echo(f"wrote {out / 'results.md'} ({results['wall_seconds'] / 60:.1f} min)")
