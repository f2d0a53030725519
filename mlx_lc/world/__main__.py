"""python -m mlx_lc.world OUT [--seed 0]: build the benchmark world and print its counts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import MlxLcError


@click.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True, type=int, help="World seed.")
@click.option("--n-single", default=1000, show_default=True, type=int, help="Train rows per single task.")
@click.option("--n-comp", default=500, show_default=True, type=int, help="Train rows per composition.")
@click.option("--n-valid", default=100, show_default=True, type=int, help="Valid rows per task.")
@click.option("--n-test", default=100, show_default=True, type=int, help="Test rows per task (held-out frames).")
@click.option("--n-corpus", default=2000, show_default=True, type=int, help="Pretraining corpus documents.")
@click.option("--subtask", "subtasks", multiple=True, help="Only these compositions (repeat); default all 14.")
def main(out, seed, n_single, n_comp, n_valid, n_test, n_corpus, subtasks):
    """Build the synthetic benchmark world into OUT."""
    from . import build_benchmark

    try:
        summary = build_benchmark(out, seed=seed, n_single=n_single, n_comp=n_comp, n_valid=n_valid,
                                  n_test=n_test, subtasks=list(subtasks) or None, n_corpus=n_corpus)
    except MlxLcError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(1)
    click.echo(json.dumps({k: summary[k] for k in ("counts", "corpus", "world")}, indent=1))
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
