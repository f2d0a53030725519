"""Library errors name the Python argument (max_tokens); the CLI's the option's flag (--max-tokens)."""

import mlx_lc  # noqa: F401

import ast
from pathlib import Path

import click
import pytest

from mlx_lc import adapters
from mlx_lc.cli import flag_words
from mlx_lc.errors import MlxLcError
from mlx_lc.io import check_out
from mlx_lc.merge import MergeConfig, merge

from conftest import random_lora
from clirun import assert_one_line_error, invoke

LIBRARY = Path(mlx_lc.__file__).parent


def test_generate_from_python_names_the_argument(tiny_model):
    model, tok = tiny_model
    with pytest.raises(MlxLcError) as e:
        mlx_lc.generate(model, tok, "hi", max_tokens=0)
    assert str(e.value) == "max_tokens must be at least 1, got 0" and e.value.param == "max_tokens"
    with pytest.raises(MlxLcError, match=r"^top_p must be in \[0, 1\]"):
        mlx_lc.generate(model, tok, "hi", top_p=2.0)


def test_merge_and_outputs_from_python_name_the_argument(tmp_path, tiny_model):
    loras = [random_lora(tiny_model[0], seed=s) for s in (1, 2)]
    with pytest.raises(MlxLcError, match="^rank must be at least 1") as e:
        merge(loras, MergeConfig("svd", rank=0))
    assert "--" not in str(e.value)
    with pytest.raises(MlxLcError, match="^out .* is the input") as e:
        check_out(tmp_path, [tmp_path])
    assert "--" not in str(e.value)


def test_cli_names_the_flag(tmp_path, tiny_path, tiny_model):
    r = invoke("generate", "-m", tiny_path, "-p", "hi", "--max-tokens", 0)
    assert_one_line_error(r, "Error: --max-tokens must be at least 1, got 0")
    r = invoke("generate", "-m", tiny_path, "-p", "hi", "--top-p", 2)
    assert_one_line_error(r, "Error: --top-p must be in [0, 1]")
    a1, a2 = [adapters.write_mlx(random_lora(tiny_model[0], seed=s), tmp_path / f"a{s}") for s in (1, 2)]
    r = invoke("merge", "-m", tiny_path, "-a", a1, "-a", a2, "--method", "svd", "--rank", 0, "-o", tmp_path / "m")
    assert_one_line_error(r, "Error: --rank must be at least 1")
    # an option's callback (parsing), and the command's positional OUT
    assert_one_line_error(invoke("merge", "-m", tiny_path, "-a", a1, "-o", tmp_path), "Error: --out ")
    assert_one_line_error(invoke("tiny-model", tmp_path), "Error: OUT ")
    # --adapter declares the parameter `adapters`; a library message may say either
    r = invoke("export", "coreml", "-m", tiny_path, "--composition", "broken", "-o", tmp_path / "e")
    assert_one_line_error(r, "Error: --composition 'broken': expected NAME")


def test_counts_checked_by_click(tmp_path, tiny_path):
    r = invoke("eval", "-m", tiny_path, "-d", tmp_path / "rows.jsonl", "--batch-size", 0)
    assert r.exit_code == 2 and "Invalid value for '--batch-size'" in r.output
    assert not list(tmp_path.iterdir())


def test_flag_words_keeps_what_it_cannot_place():
    cmd = click.Command("c", params=[click.Option(["--max-tokens"]), click.Option(["--model", "-m"])])
    assert flag_words(MlxLcError("max_tokens must be at least 1", "max_tokens"), cmd) == \
        "--max-tokens must be at least 1"
    assert flag_words(MlxLcError("model x is not it", "model"), cmd) == "--model x is not it"
    assert flag_words(MlxLcError("top_p must be in [0, 1]", "top_p"), cmd) == "top_p must be in [0, 1]"  # no --top-p
    assert flag_words(MlxLcError("the model is bad", "model"), cmd) == "the model is bad"  # not at the start
    assert flag_words(MlxLcError("models are bad", "model"), cmd) == "models are bad"  # not the whole word
    assert flag_words(MlxLcError("model x"), cmd) == "model x"  # untagged


def test_flag_words_places_the_arguments_a_message_mentions():
    cmd = click.Command("c", params=[click.Option(["--max-tokens"]), click.Option(["--lr"])])
    e = MlxLcError("loss nan at step 3 in data/lr_runs/max_tokens.jsonl; try a lower lr or max_tokens",
                   mentions=("lr", "max_tokens", "top_p"))
    assert flag_words(e, cmd) == "loss nan at step 3 in data/lr_runs/max_tokens.jsonl; try a lower --lr or --max-tokens"
    assert str(e).endswith("try a lower lr or max_tokens")  # from Python: the arguments' names


def _leading_text(node):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return node.values[0].value
    return None


def test_every_tagged_message_starts_with_its_argument():
    """flag_words replaces only the leading name: a tagged message must start with it."""
    tagged = []
    for path in LIBRARY.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "MlxLcError":
                param = next((k.value for k in node.keywords if k.arg == "param"), None)
                if len(node.args) > 1:
                    param = node.args[1]
                if isinstance(param, ast.Constant) and isinstance(param.value, str):
                    text = _leading_text(node.args[0])
                    tagged.append(path.name)
                    assert text is not None and text.startswith(param.value + " "), (path, node.lineno)
    assert len(tagged) >= 15, tagged
