"""Combine `mlx-lc demo` results folders of the same preset and settings, run with different
seeds, into one folder whose tables show mean ± std over all their seeds.

For seeds run one after another in separate invocations, or on several machines:

    python scripts/combine_demo_runs.py results/demo-seeds01 /tmp/seed2 -o results/demo-seeds012

Reads each folder's results.json (per-seed scores, training records, times) and curves/; writes
results.json, results.md, results.png, results-rouge.png and curves/ to the output folder. The
report notes which folder each seed came from and each run's own wall time.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click

import mlx_lc  # noqa: F401  (loads an optimised BLAS before mlx on Linux)
from mlx_lc.demo.report import combine, write_results
from mlx_lc.errors import MlxLcError
from mlx_lc.io import atomic_dir, read_json


@click.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path), help="Combined results folder.")
def cli(folders: tuple[Path, ...], out: Path) -> None:
    try:
        if any(out.resolve() == f.resolve() for f in folders):
            raise MlxLcError(f"--out {out} is one of the folders to combine; write to a new folder")
        runs = [read_json(f / "results.json") for f in folders]
        results = combine(runs, [str(f) for f in folders])
        # swapped in whole, replacing only an earlier results folder (the output rule)
        with atomic_dir(out, marker="results.json", kind="results folder", inputs=folders) as tmp:
            write_results(results, tmp)
            for f in folders:  # each run's loss curves, already named seedN-...
                for png in sorted((f / "curves").glob("seed*.png")):
                    (tmp / "curves").mkdir(exist_ok=True)
                    shutil.copyfile(png, tmp / "curves" / png.name)
    except MlxLcError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    click.echo(f"wrote {out / 'results.md'} (seeds {', '.join(map(str, results['seeds']))})")


if __name__ == "__main__":
    cli()
