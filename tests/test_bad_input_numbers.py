"""Non-finite and absurd numbers in adapters and calibrations, and malformed adapter/calibration
configs: merge, fold, fuse, generate and calibrate refuse them at load with one `Error:` line that
names the file (and the tensor or key), exit non-zero, and write nothing. Results that only go
wrong in the arithmetic (finite inputs, overflowing products) are refused before they are written.
Real tiny models and adapters on disk, no mocks."""

import mlx_lc  # noqa: F401

import json
import math
from pathlib import Path

import mlx.core as mx
import pytest
from click.testing import CliRunner

from mlx_lc import adapters, calibration
from mlx_lc.cli import main

import toy_data
from conftest import pair_with_calibration
from clirun import assert_one_line_error

MOD = "model.layers.0.self_attn.q_proj"  # the module every tensor edit below touches


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def fx(tmp_path_factory, tiny_path, tiny_model):
    """Two rank-4 adapters, a calibration of their merge that names no sources (so any adapter
    pair can be folded with it), and a little compositional data for calibrate."""
    root = tmp_path_factory.mktemp("bad_numbers")
    model = tiny_model[0]
    a1, a2, cal = pair_with_calibration(root, model)
    cfg = json.loads((cal / calibration.CONFIG).read_text())
    (cal / calibration.CONFIG).write_text(json.dumps({**cfg, "sources": []}))
    comp = toy_data.write(root / "comp", "summarize+es", 8, 4)
    return {"model": tiny_path, "a1": a1, "a2": a2, "cal": cal, "comp": comp}


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def nothing_written(folder: Path, keep):
    assert sorted(p.name for p in folder.iterdir()) == sorted(keep)


# ---------------------------------------------------------------- building bad adapters

def edited_copy(src: Path, dst: Path, weights: str, config_name: str, tensors=None, config=None) -> Path:
    """A copy of the folder `src` (weights file + JSON config) with its tensors and/or config edited."""
    dst.mkdir()
    t = dict(mx.load(str(src / weights)))
    mx.save_safetensors(str(dst / weights), tensors(t) if tensors else t)
    cfg = json.loads((src / config_name).read_text())
    (dst / config_name).write_text(json.dumps(config(cfg) if config else cfg))
    return dst


def mlx_copy(src: Path, dst: Path, tensors=None, config=None) -> Path:
    """A copy of the mlx-lm adapter `src` with its tensors and/or config edited."""
    return edited_copy(src, dst, adapters.MLX_WEIGHTS, adapters.MLX_CONFIG, tensors, config)


def peft_copy(src: Path, dst: Path, tensors=None, config=None) -> Path:
    """The mlx-lm adapter `src` in PEFT's layout (lora_A (r, in), lora_B (out, r), alpha/r = its scale)."""
    lora = adapters.read(src)
    t = {}
    for path, (a, b) in lora.factors.items():
        t[f"base_model.model.{path}.lora_A.weight"] = a.T
        t[f"base_model.model.{path}.lora_B.weight"] = b.T
    dst.mkdir()
    mx.save_safetensors(str(dst / adapters.PEFT_WEIGHTS), tensors(t) if tensors else t)
    cfg = {"peft_type": "LORA", "r": 4, "lora_alpha": 4 * lora.scale, "target_modules": ["q_proj"],
           "base_model_name_or_path": "tiny", "task_type": "CAUSAL_LM"}
    (dst / adapters.MLX_CONFIG).write_text(json.dumps(config(cfg) if config else cfg))
    return dst


def poke(key: str, value: float):
    """Set one entry of tensor `key` to `value`."""
    def edit(t):
        x = t[key].astype(mx.float32)
        flat = x.reshape(-1)
        flat[3] = value
        return {**t, key: flat.reshape(x.shape).astype(t[key].dtype)}
    return edit


def cast(dtype):
    return lambda t: {k: (v * 10).astype(dtype) for k, v in t.items()}


def rank0(t):
    return {k: v[:, :0] if k.endswith("lora_a") else v[:0] for k, v in t.items()}


def scale(value):
    return lambda c: {**c, "lora_parameters": {**c["lora_parameters"], "scale": value}}


PEFT_A, PEFT_B = f"base_model.model.{MOD}.lora_A.weight", f"base_model.model.{MOD}.lora_B.weight"

# name -> (format, tensor edit, config edit, what the error line must say)
NUMBER_CASES = {
    "nan_in_a": ("mlx", poke(f"{MOD}.lora_a", math.nan), None, [f"{MOD}.lora_a", "NaN or Inf"]),
    "inf_in_b": ("mlx", poke(f"{MOD}.lora_b", math.inf), None, [f"{MOD}.lora_b", "NaN or Inf"]),
    "int32": ("mlx", cast(mx.int32), None, ["int32", "not a floating-point"]),
    "int8": ("mlx", cast(mx.int8), None, ["int8", "not a floating-point"]),
    "bool": ("mlx", cast(mx.bool_), None, ["bool", "not a floating-point"]),
    "rank_0": ("mlx", rank0, None, ["rank 0"]),
    "scale_nan": ("mlx", None, scale(math.nan), ["lora_parameters.scale", "nan"]),
    "scale_inf": ("mlx", None, scale(math.inf), ["lora_parameters.scale", "inf"]),
    "scale_1e308": ("mlx", None, scale(1e308), ["lora_parameters.scale", "1e+308"]),
    "scale_0": ("mlx", None, scale(0), ["lora_parameters.scale", "0"]),
    "scale_1e-30": ("mlx", None, scale(1e-30), ["lora_parameters.scale", "1e-30"]),
    "peft_nan_in_A": ("peft", poke(PEFT_A, math.nan), None, [PEFT_A, "NaN or Inf"]),
    "peft_int32": ("peft", cast(mx.int32), None, ["int32", "not a floating-point"]),
    "peft_alpha_nan": ("peft", None, lambda c: {**c, "lora_alpha": math.nan}, ["'lora_alpha'", "nan"]),
    "peft_alpha_1e308": ("peft", None, lambda c: {**c, "lora_alpha": 1e308}, ["'lora_alpha'", "1e+308"]),
    "peft_r_disagrees": ("peft", None, lambda c: {**c, "r": 8}, ["'r' is 8", "rank 4"]),
}

COMMANDS = ["merge", "fold", "fuse", "generate", "calibrate"]


def command(cmd: str, fx, bad: Path) -> list:
    """`cmd` on the good adapter and `bad`, with cheap settings."""
    pair = ["-m", fx["model"], "-a", fx["a1"], "-a", bad]
    return {"merge": ["merge", *pair, "-o", "out"],
            "fold": ["fold", *pair, "-c", fx["cal"], "-o", "out"],
            "fuse": ["fuse", *pair, "-o", "out"],
            "generate": ["generate", *pair, "--task", "summarize+es", "-p", "hi", "--max-tokens", 2],
            "calibrate": ["calibrate", *pair, "-d", fx["comp"], "--iters", 1, "--batch-size", 2, "-q", "-o", "out"],
            }[cmd]


@pytest.mark.parametrize("cmd", COMMANDS)
@pytest.mark.parametrize("case", list(NUMBER_CASES))
def test_bad_numbers_in_an_adapter(fx, work, case, cmd):
    fmt, tensors, config, match = NUMBER_CASES[case]
    bad = (mlx_copy if fmt == "mlx" else peft_copy)(fx["a2"], work / "bad", tensors, config)
    r = invoke(*command(cmd, fx, bad))
    assert_one_line_error(r, "bad/adapter", *match)
    nothing_written(work, ["bad"])


# ---------------------------------------------------------------- malformed adapter configs

MLX_CONFIGS = {
    "lora_parameters_list": (lambda c: {**c, "lora_parameters": [1, 2]}, "'lora_parameters' must be an object"),
    "model_number": (lambda c: {**c, "model": 5}, "'model' must be a string"),
    "base_arch_list": (lambda c: {**c, "mlx_lc": {**c["mlx_lc"], "base_arch": [1]}}, "'mlx_lc.base_arch' must be an object"),
    "base_arch_string": (lambda c: {**c, "mlx_lc": {**c["mlx_lc"], "base_arch": "llama"}}, "'mlx_lc.base_arch' must be"),
    "sha256_list": (lambda c: {**c, "mlx_lc": {**c["mlx_lc"], "sha256": [1]}}, "'mlx_lc.sha256' must be a string"),
}


@pytest.mark.parametrize("case", list(MLX_CONFIGS))
def test_malformed_mlx_adapter_config(fx, work, case):
    edit, match = MLX_CONFIGS[case]
    bad = mlx_copy(fx["a2"], work / "bad", config=edit)
    r = invoke(*command("fold", fx, bad))
    assert_one_line_error(r, "bad/adapter_config.json", match)
    nothing_written(work, ["bad"])


PEFT_CONFIGS = {
    "r_fraction": (lambda c: {**c, "r": 4.5}, "'r' must be a whole number"),
    "alpha_zero": (lambda c: {**c, "lora_alpha": 0}, "'lora_alpha'"),
    "rslora_string": (lambda c: {**c, "use_rslora": "false"}, "'use_rslora' must be true or false"),
    "rank_pattern_list": (lambda c: {**c, "rank_pattern": ["q_proj"]}, "'rank_pattern' must be an object"),
    "rank_pattern_string": (lambda c: {**c, "rank_pattern": {"q_proj": "x"}}, "'rank_pattern.q_proj' must be a"),
    "rank_pattern_zero": (lambda c: {**c, "rank_pattern": {"q_proj": 0}}, "'rank_pattern.q_proj' must be at least 1"),
    "alpha_pattern_string": (lambda c: {**c, "alpha_pattern": {"q_proj": "x"}}, "'alpha_pattern.q_proj' must be a"),
    "alpha_pattern_nan": (lambda c: {**c, "alpha_pattern": {"q_proj": math.nan}}, "'alpha_pattern.q_proj'"),
    "dora_string": (lambda c: {**c, "use_dora": "false"}, "'use_dora' must be true or false"),
    "base_model_list": (lambda c: {**c, "base_model_name_or_path": ["x"]}, "'base_model_name_or_path' must be a string"),
}


@pytest.mark.parametrize("case", list(PEFT_CONFIGS))
def test_malformed_peft_adapter_config(fx, work, case):
    edit, match = PEFT_CONFIGS[case]
    bad = peft_copy(fx["a2"], work / "bad", config=edit)
    r = invoke(*command("merge", fx, bad))
    assert_one_line_error(r, "bad/adapter_config.json", match)
    nothing_written(work, ["bad"])


# ---------------------------------------------------------------- malformed calibrations

def calib_copy(src: Path, dst: Path, config=None, tensors=None) -> Path:
    return edited_copy(src, dst, calibration.WEIGHTS, calibration.CONFIG, tensors, config)


P = "self_attn.q_proj.p"  # one of the calibration's tensors (lc scale)


def merge_field(key, value):
    return lambda c: {**c, "merge": {**c["merge"], key: value}}


CALIB_CASES = {
    "variant_unknown": (lambda c: {**c, "variant": "lora"}, None, "'variant' must be lc or lc++"),
    "variant_list": (lambda c: {**c, "variant": ["lc"]}, None, "'variant' must be lc or lc++"),
    "mode_unknown": (lambda c: {**c, "mode": 3}, None, "'mode' must be scale or bias"),
    "rank_string": (lambda c: {**c, "rank": "abc"}, None, "'rank' must be a number"),
    "rank_fraction": (lambda c: {**c, "rank": 2.5}, None, "'rank' must be a whole number"),
    "rank_negative_lcpp": (lambda c: {**c, "variant": "lc++", "rank": -1}, None, "'rank' must be at least 1"),
    "merge_method_list": (merge_field("method", ["linear"]), None, "'merge.method' must be one of"),
    "merge_weights_string": (merge_field("weights", "ab"), None, "'merge.weights' must be a list of finite numbers"),
    "merge_weights_nan": (merge_field("weights", [math.nan, 1]), None, "'merge.weights' must be a list of"),
    "merge_density_string": (merge_field("density", "x"), None, "'merge.density' must be a number"),
    "merge_weights_short": (merge_field("weights", [1.0]), None, "'merge.weights' has 1 weights for 2 adapters"),
    "merge_density_5_ties": (lambda c: {**c, "merge": {**c["merge"], "method": "ties", "density": 5}}, None,
                             "'merge.density' must be in (0, 1] for ties"),
    "merge_rank_0": (lambda c: {**c, "merge": {**c["merge"], "method": "svd", "rank": 0}}, None,
                     "'merge.rank' must be at least 1"),
    "merge_rank_string": (merge_field("rank", "x"), None, "'merge.rank' must be a number"),
    "merge_seed_string": (merge_field("seed", "x"), None, "'merge.seed' must be a number"),
    "sources_sha_list": (lambda c: {**c, "sources": [{"sha256": [1]}, {}]}, None, "'sources' entry 1: 'sha256'"),
    "nan_tensor": (None, poke(P, math.nan), f"{P} has NaN or Inf"),
    "int_tensor": (None, cast(mx.int32), "not a floating-point"),
}


@pytest.mark.parametrize("cmd", ["fold", "generate"])
@pytest.mark.parametrize("case", list(CALIB_CASES))
def test_malformed_calibration(fx, work, case, cmd):
    config, tensors, match = CALIB_CASES[case]
    bad = calib_copy(fx["cal"], work / "cal", config, tensors)
    tail = ["-o", "out"] if cmd == "fold" else ["--task", "summarize+es", "-p", "hi", "--max-tokens", 2]
    r = invoke(cmd, "-m", fx["model"], "-a", fx["a1"], "-a", fx["a2"], "-c", bad, *tail)
    assert_one_line_error(r, "cal/calibration", match)
    nothing_written(work, ["cal"])


# ---------------------------------------------------------------- finite inputs, non-finite results

def huge(t):
    """Finite factors whose products overflow float32 (|a b| ~ 1e40)."""
    return {k: v * 1e20 for k, v in t.items()}


@pytest.mark.parametrize("cmd, extra", [("merge", ["--method", "ties"]), ("fuse", [])])
def test_an_overflowing_result_is_not_written(fx, work, cmd, extra):
    bad = mlx_copy(fx["a2"], work / "bad", tensors=huge)
    r = invoke(cmd, "-m", fx["model"], "-a", fx["a1"], "-a", bad, *extra, "-o", "out")
    assert_one_line_error(r, "non-finite")
    nothing_written(work, ["bad"])


def test_merge_weights_that_overflow_the_update(fx, work):
    # each factor stays finite (1e20 * 0.2); their product, the update, does not
    r = invoke("merge", "-m", fx["model"], "-a", fx["a1"], "-a", fx["a2"], "--weights", "1e20,1e20", "-o", "out")
    assert_one_line_error(r, "the linear merge has non-finite values", "overflows")
    nothing_written(work, [])


def test_fuse_into_a_float16_base_that_overflows(fx, work):
    """Finite in float32, past float16's 65504 once added to a float16 base's weights."""
    src, f16 = Path(fx["model"]), work / "f16"
    f16.mkdir()
    for f in src.iterdir():
        (f16 / f.name).write_bytes(f.read_bytes())
    w = mx.load(str(src / "model.safetensors"))
    mx.save_safetensors(str(f16 / "model.safetensors"), {k: v.astype(mx.float16) for k, v in w.items()})
    bad = mlx_copy(fx["a2"], work / "bad", tensors=lambda t: {k: v * 3000 for k, v in t.items()})
    r = invoke("fuse", "-m", f16, "-a", bad, "-o", "out")
    assert_one_line_error(r, "the fused weights have non-finite values", "float16")
    nothing_written(work, ["bad", "f16"])


def test_a_fold_that_overflows_is_not_written(fx, work):
    # lc bias folds to [b ; p / scale]: p = 3e38 is finite, p / 0.5 is not
    bad = calib_copy(fx["cal"], work / "cal", config=lambda c: {**c, "mode": "bias"},
                     tensors=lambda t: {k: mx.full(v.shape, 3e38) for k, v in t.items()})
    r = invoke("fold", "-m", fx["model"], "-a", fx["a1"], "-a", fx["a2"], "-c", bad, "-o", "out")
    assert_one_line_error(r, "non-finite")
    nothing_written(work, ["cal"])


# ---------------------------------------------------------------- export --verify

@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy, on the overflow this test makes
def test_export_verify_fails_on_non_finite_output(fx, work):
    """Finite in float32 (MLX's reference), past float16's range in the package: the report is
    printed and written, and the command fails."""
    pytest.importorskip("coremltools")
    big = mlx_copy(fx["a2"], work / "big", tensors=lambda t: {k: v * 3000 for k, v in t.items()})
    r = invoke("export", "coreml", "-m", fx["model"], "-a", big, "-t", "summarize+es", "-q", "none",
               "--context", 64, "--verify", "--verify-steps", 2, "-o", "e")
    assert r.exit_code != 0, r.output
    assert "NON-FINITE OUTPUT" in r.output, r.output
    last = r.output.strip().splitlines()[-1]
    assert last.startswith("Error: --verify: the package gives non-finite logits") and "summarize+es" in last, r.output
    assert "Traceback" not in r.output and "internal error" not in r.output, r.output
    assert json.loads((work / "e" / "export.json").read_text())["verify"]["summarize+es"]["finite"] is False


@pytest.mark.parametrize("opt", [["--scale", "1e5"], ["--alpha", "1e9"], ["--scale", "1e-9"]])
def test_train_lora_does_not_write_an_adapter_no_reader_takes(fx, work, opt):
    r = invoke("train-lora", "-m", fx["model"], "-d", fx["comp"], *opt, "--iters", 1, "-q", "-o", "out")
    assert_one_line_error(r, "LoRA scale must be between 1e-06 and 10000")
    nothing_written(work, [])
