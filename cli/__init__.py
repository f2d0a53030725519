"""The `mlx-lc` command: a thin click layer over the mlx_lc library.

Each command parses its options, calls one library function and prints. User errors
(MlxLcError, bad options) end in one line on stderr and exit code 1 or 2; set MLX_LC_DEBUG=1
to see the traceback of an unexpected error.
"""

from __future__ import annotations

import os
import sys

import click

import mlx_lc  # noqa: F401  (loads the optimised BLAS before anything imports mlx)
from mlx_lc import _blas
from mlx_lc.errors import MlxLcError

BLAS_HINT_AFTER_S = 10.0  # a command still running by then is one where a 30x slower BLAS matters


class Group(click.Group):
    """Turn library errors into one clean line instead of a traceback."""

    def invoke(self, ctx):
        timer = _blas.hint_after(BLAS_HINT_AFTER_S)
        try:
            return super().invoke(ctx)
        except MlxLcError as e:
            raise click.ClickException(str(e)) from None
        except (click.exceptions.Exit, click.ClickException, click.Abort, KeyboardInterrupt):
            raise
        except Exception as e:
            if os.environ.get("MLX_LC_DEBUG"):
                raise
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise click.ClickException(f"internal error: {type(e).__name__}: {first} "
                                       "(set MLX_LC_DEBUG=1 for the traceback)") from None
        finally:
            if timer is not None:
                timer.cancel()


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(mlx_lc.__version__, prog_name="mlx-lc")
def main():
    """mlx-lc: compose single-task LoRAs on MLX with Learnable Calibration.

    Merge two task adapters, calibrate the merge with a tiny learned correction, fold it into
    one ordinary LoRA, and generate compositional output ("summarise this, in Spanish") in one pass.
    """


# Each module registers its commands on `main`.
from . import core  # noqa: E402,F401
from . import train  # noqa: E402,F401
from . import evaluate  # noqa: E402,F401
from . import demo  # noqa: E402,F401
from . import data  # noqa: E402,F401
from . import export  # noqa: E402,F401
from . import bench  # noqa: E402,F401


if __name__ == "__main__":
    sys.exit(main())
