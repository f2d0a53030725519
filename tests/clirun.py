"""One way to run the CLI in tests and to check its errors: one `Error:` line, a non-zero exit,
no traceback, no "internal error"."""

from click.testing import CliRunner

from mlx_lc.cli import main


def invoke(*args, input=None, catch_exceptions=True):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=catch_exceptions)


def _lines(result):
    return [ln for ln in result.output.strip().splitlines() if ln.strip()]


def _clean(result, line, matches):
    out = result.output
    assert result.exit_code != 0, out
    assert line.startswith("Error:"), out
    for m in matches:
        assert m in line, out
    assert "Traceback" not in out and "internal error" not in out, out


def assert_one_line_error(result, *matches):
    """The whole output is one `Error:` line holding every one of `matches`."""
    lines = _lines(result)
    assert len(lines) == 1, result.output
    _clean(result, lines[0], matches)


def assert_error_last(result, *matches):
    """An `Error:` line ends the output; notes before it (a training run's stderr lines) are allowed."""
    lines = _lines(result)
    assert lines, result.output
    _clean(result, lines[-1], matches)
