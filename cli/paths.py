"""Click callbacks for --out options: a wrong output path fails at once, before any work."""

from __future__ import annotations

import click

from mlx_lc.errors import MlxLcError
from mlx_lc.io import check_out_dir, check_out_path

from . import flag_words


def out_folder(marker: str | None = None, kind: str | None = None):
    """Callback for an output folder. With `marker`, also refuse a non-empty folder that is not an
    earlier `kind` now, rather than when atomic_dir would refuse it after all the work."""
    def check(ctx, param, value):
        if value is not None:
            try:
                check_out_dir(value, marker, kind) if marker else check_out_path(value)
            except MlxLcError as e:
                raise click.ClickException(flag_words(e, ctx.command)) from None  # one line, no usage block
        return value
    return check


def out_file(ctx, param, value):
    """Callback for an output file (the mirror check: not an existing folder, no file as parent)."""
    if value is not None:
        try:
            check_out_path(value, folder=False)
        except MlxLcError as e:
            raise click.ClickException(flag_words(e, ctx.command)) from None
    return value
