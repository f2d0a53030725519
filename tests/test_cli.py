"""The CLI end to end on a tiny model: outputs, files, and one-line errors with no partial output."""

import mlx_lc  # noqa: F401

import mlx.core as mx
import mlx_lm
import numpy as np
import pytest
from click.testing import CliRunner

from mlx_lc import adapters, calibration
from mlx_lc.calibration import Calibration, CalibrationConfig
from mlx_lc.cli import main
from mlx_lc.merge import merge

from conftest import random_lora
from clirun import assert_error_last as assert_clean_error

TOKENS = mx.array([[1, 60, 61, 62, 63, 64]])


def run(*args, input=None, ok=True):
    result = CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def two_adapters(tmp_path, tiny_model):
    return [adapters.write_mlx(random_lora(tiny_model[0], seed=s, rank=4), tmp_path / f"task{s}") for s in (1, 2)]


@pytest.fixture
def calib_dir(tmp_path, tiny_model, two_adapters):
    merged = merge(adapters.load_for(tiny_model[0], two_adapters))
    calib = Calibration(CalibrationConfig("lc", "bias"), calibration.module_shapes(merged))
    calib.load_weights([(k, v + 0.05) for k, v in calib.tensors().items()])
    return calibration.save(calib, merged, tmp_path / "calib")


def test_help_lists_commands():
    out = run("--help").output
    for cmd in ("doctor", "tiny-model", "merge", "fold", "fuse", "generate"):
        assert cmd in out


def test_doctor():
    out = run("doctor").output
    assert "mlx " in out and "device" in out and "blas" in out


def test_tiny_model_is_loadable(tmp_path):
    run("tiny-model", tmp_path / "m", "--hidden", 32, "--layers", 1, "--vocab", 400, "--heads", 2, "--kv-heads", 1)
    model, tok = mlx_lm.load(str(tmp_path / "m"))
    assert model.args.hidden_size == 32 and tok.decode(tok.encode("Grüße, café!")).endswith("Grüße, café!")


@pytest.mark.parametrize("method", ["linear", "cat", "svd", "ties", "dare_ties", "magnitude_prune"])
def test_merge_writes_an_mlx_lm_adapter(tmp_path, tiny_path, two_adapters, method):
    out = tmp_path / f"merged-{method}"
    run("merge", "-m", tiny_path, "-a", two_adapters[0], "-a", two_adapters[1], "--method", method, "--out", out)
    model, _ = mlx_lm.load(str(tiny_path), adapter_path=str(out))
    assert np.isfinite(np.array(model(TOKENS))).all()
    lora = adapters.read(out)
    assert lora.rank == (4 if method == "linear" else 8)
    assert lora.meta["merge"]["method"] == method


def test_fold_and_fuse_match_the_calibrated_model(tmp_path, tiny_path, two_adapters, calib_dir):
    ref, _ = mlx_lc.load(str(tiny_path), adapters=two_adapters, calibration=calib_dir)
    expected = np.array(ref(TOKENS))
    run("fold", "-m", tiny_path, "-a", two_adapters[0], "-a", two_adapters[1], "-c", calib_dir, "--out", tmp_path / "folded")
    assert adapters.read(tmp_path / "folded").rank == 5  # lc bias: r + 1
    folded, _ = mlx_lm.load(str(tiny_path), adapter_path=str(tmp_path / "folded"))
    assert np.abs(np.array(folded(TOKENS)) - expected).max() < 1e-5
    run("fuse", "-m", tiny_path, "-a", two_adapters[0], "-a", two_adapters[1], "-c", calib_dir, "--out", tmp_path / "fused")
    fused, _ = mlx_lm.load(str(tmp_path / "fused"))
    assert np.abs(np.array(fused(TOKENS)) - expected).max() < 1e-4


def mlx_swift_lm_problems(folder, config: dict) -> list[str]:
    """What would stop mlx-swift-lm's `LoRAContainer.from(directory:)` + `load(into:)` reading an
    adapter folder, as its source reads it (Libraries/MLXLMCommon/Adapters/LoRA/LoRAContainer.swift,
    which mirrors mlx-lm's Python `load_adapters`): adapter_config.json decodes into
    `LoRAConfiguration` (num_layers Int, fine_tune_type "lora"|"dora", lora_parameters {rank Int,
    scale Float, keys [String]?}: no defaults when decoding, so all but keys must be there); LoRALinear
    replaces the modules named by `keys` in the LAST num_layers layers, all with the one rank; the
    safetensors are applied with `verify: .noUnusedKeys`, so every tensor must be such a module's
    `lora_a` (in, rank) or `lora_b` (rank, out)."""
    import json
    import re

    cfg = json.loads((folder / "adapter_config.json").read_text())
    problems = []
    if cfg.get("fine_tune_type") not in ("lora", "dora"):
        problems.append(f"fine_tune_type {cfg.get('fine_tune_type')!r}")
    n, lp = cfg.get("num_layers"), cfg.get("lora_parameters") or {}
    rank, scale, keys = lp.get("rank"), lp.get("scale"), lp.get("keys")
    if type(n) is not int or type(rank) is not int or not isinstance(scale, (int, float)) or isinstance(scale, bool):
        return problems + [f"num_layers {n!r}, rank {rank!r}, scale {scale!r}: not Int, Int, Float"]
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        problems.append(f"keys {keys!r}: not [String] (without them only the default q/v projections get LoRA)")
        keys = []
    layers = config["num_hidden_layers"]
    covered = range(layers - n, layers)  # loraLayers.suffix(numLayers)
    d, hd = config["hidden_size"], config["hidden_size"] // config["num_attention_heads"]
    kv = config.get("num_key_value_heads", config["num_attention_heads"]) * hd
    dims = {"self_attn.q_proj": (d, d), "self_attn.k_proj": (d, kv), "self_attn.v_proj": (d, kv),
            "self_attn.o_proj": (d, d), "mlp.gate_proj": (d, config["intermediate_size"]),
            "mlp.up_proj": (d, config["intermediate_size"]), "mlp.down_proj": (config["intermediate_size"], d)}
    for name, t in mx.load(str(folder / "adapters.safetensors")).items():
        m = re.fullmatch(r"model\.layers\.(\d+)\.(.+)\.(lora_a|lora_b)", name)
        if not m:
            problems.append(f"{name}: not model.layers.N.<module>.lora_a/lora_b")
            continue
        layer, module, leaf = int(m[1]), m[2], m[3]
        if layer not in covered or module not in keys or module not in dims:
            problems.append(f"{name}: no LoRA layer there (layers {covered.start}..{layers - 1}, keys {keys})")
            continue
        d_in, d_out = dims[module]
        want = (d_in, rank) if leaf == "lora_a" else (rank, d_out)
        if tuple(t.shape) != want:
            problems.append(f"{name}: shape {tuple(t.shape)}, LoRALinear(rank {rank}) has {want}")
    return problems


@pytest.mark.parametrize("variant, mode", [("lc", "bias"), ("lc", "scale"), ("lc++", "scale")])
def test_folded_adapter_is_what_mlx_swift_lm_loads(tmp_path, tiny_path, tiny_model, two_adapters, variant, mode):
    """`mlx-lc fold` writes the adapter an iPhone app loads at run time with mlx-swift-lm's LoRA
    support: its loader's fields and tensor names, one rank for all modules, every module covered."""
    import json

    merged = merge(adapters.load_for(tiny_model[0], two_adapters))
    calib = Calibration(CalibrationConfig(variant, mode), calibration.module_shapes(merged))
    calib.load_weights([(k, v + 0.05) for k, v in calib.tensors().items()])
    cal = calibration.save(calib, merged, tmp_path / "calib")
    out = tmp_path / "folded"
    run("fold", "-m", tiny_path, "-a", two_adapters[0], "-a", two_adapters[1], "-c", cal, "--out", out)
    config = json.loads((tiny_path / "config.json").read_text())
    assert mlx_swift_lm_problems(out, config) == []
    cfg = json.loads((out / "adapter_config.json").read_text())
    names = set(mx.load(str(out / "adapters.safetensors")))
    # every projection the adapters touch, in every layer, with both factors
    assert cfg["num_layers"] == config["num_hidden_layers"]
    assert names == {f"model.layers.{i}.{k}.{ab}" for i in range(config["num_hidden_layers"])
                     for k in cfg["lora_parameters"]["keys"] for ab in ("lora_a", "lora_b")}
    assert set(cfg["lora_parameters"]["keys"]) == set(adapters.read(two_adapters[0]).keys)


def test_the_mlx_swift_lm_check_finds_what_its_loader_refuses(tmp_path, tiny_path, tiny_model):
    import json

    config = json.loads((tiny_path / "config.json").read_text())
    out = adapters.write_mlx(random_lora(tiny_model[0], rank=4), tmp_path / "a")
    assert mlx_swift_lm_problems(out, config) == []
    cfg = json.loads((out / "adapter_config.json").read_text())
    for broken, why in (({"num_layers": 1}, "no LoRA layer there"), ({"fine_tune_type": None}, "fine_tune_type"),
                        ({"lora_parameters": {**cfg["lora_parameters"], "rank": 2}}, "LoRALinear(rank 2)")):
        (out / "adapter_config.json").write_text(json.dumps({**cfg, **broken}))
        assert any(why in p for p in mlx_swift_lm_problems(out, config)), broken


def test_generate_single_pass_multi_step_and_stdin(tiny_path, two_adapters, calib_dir):
    out = run("generate", "-m", tiny_path, "-a", two_adapters[0], "-a", two_adapters[1], "-c", calib_dir,
              "--task", "summarize+es", "--max-tokens", 8, "--prompt", "Anna: see you at the café?").output
    assert out.strip()
    out2 = run("generate", "-m", tiny_path, "-a", two_adapters[0], "-a", two_adapters[1], "-c", calib_dir,
               "--task", "summarize+es", "--max-tokens", 8, "--prompt", "-", input="Anna: see you at the café?").output
    assert out2 == out  # greedy, same input via stdin
    run("generate", "-m", tiny_path, "-a", two_adapters[0], "-a", two_adapters[1], "--multi-step",
        "--task", "summarize+es", "--max-tokens", 6, "--prompt", "Anna: hi")


def test_errors_are_one_line_without_partial_output(tmp_path, tiny_path, tiny_model, two_adapters, calib_dir):
    out = tmp_path / "out"
    assert_clean_error(run("merge", "-m", tiny_path, "-a", tmp_path / "missing", "--out", out, ok=False), "not found")
    assert_clean_error(run("merge", "-m", tmp_path / "nomodel", "-a", two_adapters[0], "--out", out, ok=False),
                       "model not found")
    r8 = adapters.write_mlx(random_lora(tiny_model[0], rank=8), tmp_path / "r8")
    assert_clean_error(run("merge", "-m", tiny_path, "-a", two_adapters[0], "-a", r8, "--out", out, ok=False),
                       "one rank")
    assert_clean_error(run("merge", "-m", tiny_path, "-a", two_adapters[0], "--method", "nope", "--out", out, ok=False),
                       "nope")
    assert_clean_error(run("generate", "-m", tiny_path, "--prompt", "  ", ok=False), "empty prompt")
    assert_clean_error(run("generate", "-m", tiny_path, "--task", "summarize+klingon", "--prompt", "x", ok=False),
                       "unknown task")
    # the calibration's recorded sources are checked before the merge that would fail on ranks
    assert_clean_error(run("fold", "-m", tiny_path, "-a", two_adapters[0], "-a", r8, "-c", calib_dir, "--out", out, ok=False),
                       "trained for other adapters")
    assert_clean_error(run("fold", "-m", tiny_path, "-a", two_adapters[0], "-a", two_adapters[0], "-c", calib_dir,
                           "--out", out, ok=False), "trained for other adapters")
    assert_clean_error(run("merge", "-m", tiny_path, "-a", two_adapters[0], "--weights", "a,b", "--out", out, ok=False),
                       "comma-separated")
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_generate_takes_the_task_the_calibration_was_trained_for(tmp_path, tiny_path, tiny_model, two_adapters):
    merged = merge(adapters.load_for(tiny_model[0], two_adapters))
    calib = Calibration(CalibrationConfig("lc", "bias"), calibration.module_shapes(merged))
    calib.load_weights([(k, v + 0.05) for k, v in calib.tensors().items()])
    cal = calibration.save(calib, merged, tmp_path / "cal", extra={"train": {"tasks": ["summarize+es"]}})
    a = ["-a", two_adapters[0], "-a", two_adapters[1]]
    common = ["--max-tokens", 8, "--prompt", "Anna: see you at the café?"]
    given = run("generate", "-m", tiny_path, *a, "-c", cal, "--task", "summarize+es", *common).output
    assert run("generate", "-m", tiny_path, *a, "-c", cal, *common).output == given
    assert_clean_error(run("generate", "-m", tiny_path, *a, "-c", cal, "--task", "reply+fr", *common, ok=False),
                       "does not match the calibration")
    # the folded adapter records the composition, so plain `generate -a folded` prompts for it
    run("fold", "-m", tiny_path, *a, "-c", cal, "--out", tmp_path / "folded")
    assert adapters.recorded_task(tmp_path / "folded") == "summarize+es"
    assert run("generate", "-m", tiny_path, "-a", tmp_path / "folded", *common).output == given


def test_generate_refuses_adapters_that_record_no_task(tiny_path, two_adapters):
    # raw text through an instruction-trained adapter prints an empty line; say what is missing
    assert_clean_error(run("generate", "-m", tiny_path, "-a", two_adapters[0], "-p", "hi", ok=False), "--task not given")
