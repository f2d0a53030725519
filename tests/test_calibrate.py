"""Calibration training: only the calibration learns (base and LoRAs bit-identical), step 0 is
the linear merge, the dev loss drops, and the folder records what it was trained on."""

import mlx_lc  # noqa: F401

import json

import mlx.core as mx
import mlx_lm
import numpy as np
import pytest
from click.testing import CliRunner
from mlx.utils import tree_flatten

from mlx_lc import adapters, calibration
from mlx_lc.calibrate import CalibrateConfig, prepare
from mlx_lc.calibration import CalibrationConfig
from mlx_lc.cli import main
from mlx_lc.training.fit import FitConfig, fit
from mlx_lc.generate import apply_lora
from mlx_lc.io import sha256
from mlx_lc.merge import merge
from mlx_lc.training.rows import encode_rows, load_splits

import toy_data
from conftest import random_lora

TOKENS = mx.array([[1, 50, 51, 52, 53, 54, 55, 56]])
VARIANTS = [CalibrationConfig("lc", "scale"), CalibrationConfig("lc", "bias"), CalibrationConfig("lc++", rank=4)]


@pytest.fixture(scope="module")
def comp_data(tmp_path_factory):
    return toy_data.write(tmp_path_factory.mktemp("data") / "summarize+es", "summarize+es", 48, 16)


@pytest.mark.parametrize("cfg", VARIANTS, ids=lambda c: f"{c.variant}-{c.mode}")
def test_step_zero_is_the_linear_merge(tiny_path, pair, cfg):
    model, _ = mlx_lm.load(str(tiny_path))
    merged_ref = merge(adapters.load_for(model, pair))
    ref = apply_lora(model, merged_ref)(TOKENS)
    model2, _ = mlx_lm.load(str(tiny_path))
    prepare(model2, adapters.load_for(model2, pair), CalibrateConfig(calibration=cfg))
    np.testing.assert_allclose(np.array(model2(TOKENS)), np.array(ref), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cfg", VARIANTS, ids=lambda c: f"{c.variant}-{c.mode}")
def test_only_the_calibration_changes(tiny_path, pair, comp_data, cfg):
    model, tok = mlx_lm.load(str(tiny_path))
    prepare(model, adapters.load_for(model, pair), CalibrateConfig(calibration=cfg))
    trainable = [k for k, _ in tree_flatten(model.trainable_parameters())]
    assert trainable and all(k.startswith("calibration.") for k in trainable)
    before = {k: mx.array(v) for k, v in tree_flatten(model.parameters())}
    train, valid = load_splits(comp_data)
    r = fit(model, encode_rows(tok, train), encode_rows(tok, valid),
            FitConfig(lr=1e-2, batch_size=8, iters=12, eval_every=6), progress=False)
    after = dict(tree_flatten(model.parameters()))
    assert before.keys() == after.keys()
    frozen = [k for k in before if not k.startswith("calibration.")]
    assert len(frozen) > len(trainable)
    for k in frozen:  # base weights and both LoRAs' factors: bit-identical
        assert mx.array_equal(before[k], after[k]), k
    assert any(not mx.array_equal(before[k], after[k]) for k in trainable)
    assert r.best_val < r.history["valid"][0][1]  # the dev loss went down


def test_calibrate_cli_writes_a_loadable_calibration(tmp_path, tiny_path, pair, comp_data):
    hashes = [sha256(p / "adapters.safetensors") for p in pair]
    out = tmp_path / "lcpp"
    res = CliRunner().invoke(main, [str(a) for a in (
        "calibrate", "-m", tiny_path, "-a", pair[0], "-a", pair[1], "--variant", "lc++", "--rank", 2,
        "-d", comp_data, "-o", out, "--iters", 10, "--batch-size", 8, "--lr", 1e-2, "-q")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert [sha256(p / "adapters.safetensors") for p in pair] == hashes  # sources untouched
    cfg = json.loads((out / "calibration_config.json").read_text())
    assert cfg["variant"] == "lc++" and cfg["rank"] == 2 and cfg["merge"]["method"] == "linear"
    assert [s["sha256"] for s in cfg["sources"]] == hashes and cfg["base_arch"]
    assert cfg["train"]["fit"]["lr"] == 1e-2 and (out / "loss.png").exists()
    # what the CLI saved is what `generate` would load: the merge plus this calibration
    model, _ = mlx_lm.load(str(tiny_path))
    merged = merge(adapters.load_for(model, pair))
    calib = calibration.load(out, merged)
    assert any(float(mx.abs(v).max()) > 0 for k, v in calib.tensors().items() if k.endswith("calib_b"))


def test_calibrate_needs_two_adapters(tmp_path, tiny_path, pair, comp_data):
    res = CliRunner().invoke(main, [str(a) for a in (
        "calibrate", "-m", tiny_path, "-a", pair[0], "-d", comp_data, "-o", tmp_path / "c")])
    assert res.exit_code == 1 and "at least two adapters" in res.output
    assert not (tmp_path / "c").exists()


def test_a_calibration_alone_drives_generate_fold_and_fuse(tmp_path, tiny_path, pair, comp_data, monkeypatch):
    """calibrate records the base, the adapters (absolute) and the task; `generate -c CAL` needs
    nothing else, from any folder, and a flag that contradicts the record is refused."""
    runner = CliRunner()

    def run(*args):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    cal = tmp_path / "cal"
    r = run("calibrate", "-m", tiny_path, "-a", pair[0], "-a", pair[1], "-d", comp_data, "-o", cal,
            "--iters", 2, "--batch-size", 4, "-q")
    assert r.exit_code == 0, r.output
    full = run("generate", "-m", tiny_path, "-a", pair[0], "-a", pair[1], "-c", cal, "--task", "summarize+es",
               "--max-tokens", 6, "-p", "Anna: lunch at noon?")
    assert full.exit_code == 0, full.output
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    alone = run("generate", "-c", cal, "--max-tokens", 6, "-p", "Anna: lunch at noon?")
    assert alone.exit_code == 0 and alone.output == full.output, alone.output
    assert run("fold", "-c", cal, "-o", "folded").exit_code == 0
    assert adapters.recorded_task(elsewhere / "folded") == "summarize+es"
    other = tmp_path / "other_model"
    runner.invoke(main, ["tiny-model", str(other), "--hidden", "32", "--layers", "1", "--vocab", "400"])
    r = run("generate", "-m", other, "-c", cal, "-p", "hi")
    assert r.exit_code != 0 and "is not the base model" in r.output and len(r.output.strip().splitlines()) == 1
    r = run("fuse", "-c", cal, "-a", pair[0], "-a", pair[0], "-o", "fused")
    assert r.exit_code != 0 and "trained for other adapters" in r.output and not (elsewhere / "fused").exists()


def test_calibrate_cli_defaults_are_the_library_defaults(tmp_path, tiny_path, pair, comp_data):
    """No tuning flag: the run records exactly calibrate.DEFAULT_FIT (the demo's LC++ settings),
    apart from the step count given here, and the default variant and rank."""
    from dataclasses import asdict

    from mlx_lc.calibrate import DEFAULT_CALIBRATION, DEFAULT_FIT

    r = CliRunner().invoke(main, ["calibrate", "-m", str(tiny_path), "-a", str(pair[0]), "-a", str(pair[1]),
                                  "-d", str(comp_data), "-o", str(tmp_path / "c"), "--iters", "1", "-q"])
    assert r.exit_code == 0, r.output
    cfg = json.loads((tmp_path / "c" / calibration.CONFIG).read_text())
    assert cfg["train"]["fit"] == {**asdict(DEFAULT_FIT), "iters": 1}
    assert (cfg["variant"], cfg["rank"]) == (DEFAULT_CALIBRATION.variant, DEFAULT_CALIBRATION.rank)
