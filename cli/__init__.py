"""The `mlx-lc` command: a thin click layer over the mlx_lc library.

Each command parses its options, calls one library function and prints. User errors
(MlxLcError, bad options) end in one line on stderr and exit code 1 or 2; set MLX_LC_DEBUG=1
to see the traceback of an unexpected error.
"""

from __future__ import annotations

import os
import re
import sys

import click

import mlx_lc  # noqa: F401  (loads the optimised BLAS before anything imports mlx)
from mlx_lc import _blas
from mlx_lc.errors import MlxLcError

BLAS_HINT_AFTER_S = 10.0  # a command still running by then is one where a 30x slower BLAS matters


def _flag(param: str, command: click.Command) -> str | None:
    """How `command` spells the Python argument `param`: its parameter's own name first, then an
    option whose flag spells the argument (--adapter: adapters); None if it has neither."""
    for p in sorted(command.params, key=lambda p: p.name != param):
        if isinstance(p, click.Argument) and p.name == param:
            return p.human_readable_name  # OUT
        if isinstance(p, click.Option) and (p.name == param or
                                            param in (o.lstrip("-").replace("-", "_") for o in p.opts)):
            return next((o for o in p.opts if o.startswith("--")), p.opts[0])
    return None


def flag_words(e: MlxLcError, command: click.Command) -> str:
    """The library's message with the flag `command` declares in place of the Python argument the
    message starts with (MlxLcError.param): "max_tokens must be ..." -> "--max-tokens must be ...",
    and of each argument it mentions further on (MlxLcError.mentions, whole words only). A message
    about an argument the command has no parameter for stays as the library wrote it."""
    text, param = str(e), getattr(e, "param", None)
    if param and re.match(rf"{re.escape(param)}\b", text) and (flag := _flag(param, command)):
        text = flag + text[len(param):]
    for name in getattr(e, "mentions", ()):
        if flag := _flag(name, command):
            text = re.sub(rf"(?<![\w./-]){re.escape(name)}(?![\w/-])", flag, text)
    return text


class Command(click.Command):
    """A command whose library errors name its options as it declares them (flag_words), whether
    they come from an option's callback (parsing) or from the command's body."""

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except MlxLcError as e:
            raise click.ClickException(flag_words(e, self)) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MlxLcError as e:
            raise click.ClickException(flag_words(e, self)) from None


class Group(click.Group):
    """Turn library errors into one clean line instead of a traceback."""

    command_class = Command
    group_class = type  # `export`, `data`: this class too, so their commands are Commands

    def invoke(self, ctx):
        timer = _blas.hint_after(BLAS_HINT_AFTER_S) if ctx.parent is None else None
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
from . import tasks  # noqa: E402,F401
from . import serve  # noqa: E402,F401


if __name__ == "__main__":
    sys.exit(main())
