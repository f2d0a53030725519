"""Bad input to train-lora, calibrate, pretrain and tiny-model: one-line errors, nothing written
(an existing OUT stays as it was), and --resume refuses a checkpoint made with other settings."""

import mlx_lc  # noqa: F401

import json
import math

import pytest
from click.testing import CliRunner

from mlx_lc.cli import main
from mlx_lc.errors import MlxLcError
from mlx_lc.training.fit import FitConfig, fit
from mlx_lc.tiny import TinyConfig, write_tiny_model
from mlx_lc.training.train import LoRAConfig, train_lora

import toy_data
from conftest import random_lora
from clirun import assert_error_last as assert_clean_error


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_untouched(parent, out, before):
    """`out` holds exactly what it held before, and no temporary folder is left beside it."""
    assert snapshot(out) == before
    assert not [p.name for p in parent.iterdir() if p.name.startswith(f".{out.name}")]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return toy_data.write(tmp_path_factory.mktemp("data") / "sum", "summarize", 16, 4)


@pytest.fixture(scope="module")
def other_base(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("other") / "m",
                            TinyConfig(hidden=32, layers=2, vocab=320, heads=2, kv_heads=1))


@pytest.fixture
def existing(tmp_path):
    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    # config.json: an earlier model folder, which pretrain may replace, so the refusal tested is
    # the bad option's and not the foreign-folder guard's (tests/test_bad_input_outputs.py)
    (out / "config.json").write_text("{}")
    return out


def check_refused(tmp_path, existing, cmd, opts, match):
    """Once into a new OUT (not created), once into an existing one (left alone)."""
    fresh = tmp_path / "fresh"
    assert_clean_error(run(*cmd, "-o", fresh, *opts), match)
    assert not fresh.exists() and not list(tmp_path.glob(".fresh*"))
    before = snapshot(existing)
    assert_clean_error(run(*cmd, "-o", existing, *opts), match)
    assert_untouched(tmp_path, existing, before)


IDS = lambda v: " ".join(v) if isinstance(v, list) else None  # noqa: E731
FIT_BAD = [(["--lr", "-1"], "--lr"), (["--lr", "nan"], "--lr"), (["--lr", "inf"], "--lr"),
           (["--patience", "0"], "--patience"), (["--patience", "-2"], "--patience"),
           (["--eval-every", "0"], "--eval-every"), (["--iters", "0"], "--iters"),
           (["--batch-size", "0"], "--batch-size"), (["--epochs", "nan"], "--epochs")]
LORA_BAD = [(["--alpha", "0"], "--alpha"), (["--alpha", "nan"], "--alpha"), (["--scale", "0"], "--scale"),
            (["--scale", "nan"], "--scale"), (["--scale", "-1"], "--scale")]


@pytest.mark.parametrize("opts,match", FIT_BAD + LORA_BAD, ids=IDS)
def test_train_lora_bad_numbers(tmp_path, existing, tiny_path, data, opts, match):
    check_refused(tmp_path, existing, ("train-lora", "-m", tiny_path, "-d", data, "-q"), opts, match)


@pytest.mark.parametrize("opts,match", FIT_BAD[:4], ids=IDS)
def test_calibrate_bad_numbers(tmp_path, existing, tiny_path, pair, data, opts, match):
    check_refused(tmp_path, existing, ("calibrate", "-m", tiny_path, "-a", pair[0], "-a", pair[1], "-d", data, "-q"),
                  opts, match)


PRETRAIN_BAD = FIT_BAD + [
    (["--layers", "0"], "--layers must be at least 1"), (["--hidden", "0"], "--hidden must be at least 1"),
    (["--heads", "0"], "--heads must be at least 1"), (["--kv-heads", "0"], "--kv-heads must be at least 1"),
    (["--heads", "3"], "must divide by heads 3"), (["--heads", "4", "--kv-heads", "3"], "heads by kv_heads 3"),
    (["--hidden", "8", "--heads", "8", "--kv-heads", "1"], "must be even"), (["--vocab", "10"], "vocab")]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n\n".join(toy_data.row("summarize", i)["input"] for i in range(60)))
    return path


SMALL = ("--hidden", 32, "--layers", 1, "--heads", 2, "--kv-heads", 1, "--vocab", 300, "--max-seq-len", 64)


@pytest.mark.parametrize("opts,match", PRETRAIN_BAD, ids=IDS)
def test_pretrain_bad_options_write_nothing(tmp_path, existing, corpus, opts, match):
    check_refused(tmp_path, existing, ("pretrain", "-c", corpus, "-q", *SMALL), opts, match)


@pytest.mark.parametrize("text,match", [("", "corpus is empty"), ("\n  \n", "corpus is empty"),
                                        ("one short line\n", "fewer than one batch"), (b"\xff\xfe\x00", "not UTF-8")])
def test_pretrain_unusable_corpus_writes_nothing(tmp_path, existing, text, match):
    corpus = tmp_path / "c.txt"
    corpus.write_bytes(text if isinstance(text, bytes) else text.encode())
    # the one-line corpus fails only in training: the model built for it must not reach OUT
    check_refused(tmp_path, existing, ("pretrain", "-c", corpus, "-q", "--iters", 2, *SMALL), [], match)


@pytest.mark.parametrize("opts,match", PRETRAIN_BAD[-8:], ids=IDS)
def test_tiny_model_bad_sizes(tmp_path, opts, match):
    assert_clean_error(run("tiny-model", tmp_path / "m", *opts), match)
    assert list(tmp_path.iterdir()) == []


def test_library_entry_points_check_too(tmp_path, tiny_model, tiny_path, data):
    with pytest.raises(MlxLcError, match="patience must be at least 1"):
        fit(tiny_model[0], [([1, 2, 3], 1)], [], FitConfig(patience=0, batch_size=1))
    for cfg, match in ((LoRAConfig(rank=4, scale=0.0), "scale"), (LoRAConfig(rank=4, scale=math.nan), "scale"),
                       (LoRAConfig(rank=4, fit=FitConfig(lr=math.nan)), "lr"),
                       (LoRAConfig(rank=4, fit=FitConfig(eval_every=0)), "eval_every")):
        with pytest.raises(MlxLcError, match=match):
            train_lora(str(tiny_path), data, tmp_path / "o", cfg, progress=False)
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- resume

LORA = ("--iters", 2, "--eval-every", 1, "--batch-size", 4, "--lr", 1e-3, "-q")


@pytest.fixture
def lora_run(tmp_path, tiny_path, data):
    out = tmp_path / "lora"
    res = run("train-lora", "-m", tiny_path, "-d", data, "-o", out, "--rank", 4, *LORA)
    assert res.exit_code == 0, res.output
    return out


@pytest.mark.parametrize("change,match", [(["--rank", "8"], "rank 4 -> 8"), (["--alpha", "8"], "scale 4.0 -> 2.0"),
                                          (["--keys", "self_attn.q_proj"], "keys")])
def test_resume_refuses_changed_adapter_settings(tmp_path, tiny_path, data, lora_run, change, match):
    before = snapshot(lora_run)
    res = run("train-lora", "-m", tiny_path, "-d", data, "-o", lora_run, "--rank", 4, *change, *LORA, "--resume")
    assert_clean_error(res, match)
    assert snapshot(lora_run) == before


def test_resume_refuses_another_base(tmp_path, data, lora_run, other_base):
    before = snapshot(lora_run)
    res = run("train-lora", "-m", other_base, "-d", data, "-o", lora_run, "--rank", 4, *LORA, "--resume")
    assert_clean_error(res, "base_model")
    assert "base_arch.hidden_size 64 -> 32" in res.output
    assert snapshot(lora_run) == before


def test_resume_of_an_old_checkpoint_checks_tensor_shapes(tmp_path, tiny_path, data, lora_run):
    state = lora_run / "checkpoint" / "state.json"
    old = json.loads(state.read_text())
    del old["setup"]  # as written before the setup was recorded
    state.write_text(json.dumps(old))
    assert_clean_error(run("train-lora", "-m", tiny_path, "-d", data, "-o", lora_run, "--rank", 8, *LORA,
                           "--resume"), "does not fit the model")
    # same settings: an old checkpoint still resumes
    res = run("train-lora", "-m", tiny_path, "-d", data, "-o", lora_run, "--rank", 4, *LORA[:-1], "--iters", 3,
              "--resume")
    assert res.exit_code == 0 and ": 3 steps" in res.output, res.output


def test_resume_with_the_same_settings_continues(tmp_path, tiny_path, data, lora_run):
    res = run("train-lora", "-m", tiny_path, "-d", data, "-o", lora_run, "--rank", 4, "--iters", 4, *LORA[2:],
              "--resume")
    assert res.exit_code == 0 and ": 4 steps" in res.output, res.output
    cfg = json.loads((lora_run / "adapter_config.json").read_text())
    assert cfg["lora_parameters"]["rank"] == 4 and cfg["lora_parameters"]["scale"] == 4.0


CAL = ("--iters", 2, "--eval-every", 1, "--batch-size", 4, "-q")


def test_calibrate_resume_refuses_another_variant_and_continues_on_the_same(tmp_path, tiny_path, pair, data):
    out = tmp_path / "cal"
    base = ("calibrate", "-m", tiny_path, "-a", pair[0], "-a", pair[1], "-d", data, "-o", out, "--variant", "lc")
    assert run(*base, *CAL).exit_code == 0
    before = snapshot(out)
    assert_clean_error(run(*base, *CAL, "--variant", "lc++", "--resume"), "variant lc -> lc++")
    assert_clean_error(run(*base, *CAL, "--mode", "bias", "--resume"), "mode scale -> bias")
    swapped = ("calibrate", "-m", tiny_path, "-a", pair[1], "-a", pair[0], "-d", data, "-o", out, "--variant", "lc")
    assert_clean_error(run(*swapped, *CAL, "--resume"), "adapters")
    assert snapshot(out) == before
    res = run(*base, "--iters", 3, *CAL[2:], "--resume")
    assert res.exit_code == 0 and ": 3 steps" in res.output, res.output
