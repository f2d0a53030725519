"""Learnable Calibration: shared parameters, exact folding into a plain LoRA, fusing, files."""

import mlx_lc  # noqa: F401

import mlx.core as mx
import mlx_lm
import numpy as np
import pytest
from mlx.utils import tree_flatten

from mlx_lc import adapters, calibration
from mlx_lc.calibration import Calibration, CalibrationConfig
from mlx_lc.errors import MlxLcError
from mlx_lc.fuse import fuse_into
from mlx_lc.generate import apply_lora, remove_adapters
from mlx_lc.merge import MergeConfig, merge

from conftest import random_lora

TOKENS = mx.array([[1, 50, 51, 52, 53, 54, 55, 56, 57]])
VARIANTS = [CalibrationConfig("lc", "scale"), CalibrationConfig("lc", "bias"), CalibrationConfig("lc++", rank=4)]


def logits(model):
    return np.array(model(TOKENS).astype(mx.float32))


@pytest.fixture
def merged(tiny_model):
    loras = [random_lora(tiny_model[0], seed=s, name=f"a{s}") for s in (1, 2)]
    for l in loras:
        l.meta["sha256"] = f"{l.source:0>64}"
    return merge(loras, MergeConfig("linear"))


def perturbed(calib: Calibration, seed=0) -> Calibration:
    """Non-zero calibration parameters, so that folding is actually exercised."""
    flat = calib.tensors()
    keys = mx.random.split(mx.random.key(seed), len(flat))
    calib.load_weights([(k, v + 0.3 * mx.random.normal(v.shape, key=keys[i])) for i, (k, v) in enumerate(sorted(flat.items()))])
    return calib


def test_parameters_are_shared_by_all_layers_and_sized_as_the_paper(tiny_model, merged):
    model = tiny_model[0]
    shapes = calibration.module_shapes(merged)
    lc = Calibration(CalibrationConfig("lc"), shapes)
    assert lc.num_params() == sum(d_out for _, d_out in shapes.values())
    lcpp = Calibration(CalibrationConfig("lc++", rank=4), shapes)
    assert lcpp.num_params() == 4 * sum(d_in + d_out for d_in, d_out in shapes.values())
    calibration.apply(model, merged, lc)
    try:
        # one vector per module type, under model.calibration, not one per layer
        names = [k for k, _ in tree_flatten(model.parameters()) if k.endswith(".p")]
        assert sorted(names) == sorted(f"calibration.{k}.p" for k in shapes)
    finally:
        remove_adapters(model)


@pytest.mark.parametrize("cfg", VARIANTS, ids=lambda c: f"{c.variant}-{c.mode}")
def test_step_zero_equals_the_linear_merge(tiny_model, merged, cfg):
    model = tiny_model[0]
    apply_lora(model, merged)
    ref = logits(model)
    remove_adapters(model)
    calibration.apply(model, merged, Calibration(cfg, calibration.module_shapes(merged)))
    try:
        assert np.allclose(logits(model), ref, atol=1e-5)
    finally:
        remove_adapters(model)


@pytest.mark.parametrize("cfg", VARIANTS, ids=lambda c: f"{c.variant}-{c.mode}")
def test_fold_equals_unfolded_and_fused(tmp_path, tiny_path, merged, cfg):
    model, _ = mlx_lm.load(str(tiny_path))
    base = logits(model)
    calib = perturbed(Calibration(cfg, calibration.module_shapes(merged)))
    calibration.apply(model, merged, calib)
    unfolded = logits(model)
    remove_adapters(model)
    folded = calibration.fold(merged, calib)
    expect_rank = {"lc": merged.rank + (cfg.mode == "bias"), "lc++": merged.rank + cfg.rank}[cfg.variant]
    assert folded.rank == expect_rank and folded.scale == merged.scale
    apply_lora(model, folded)
    assert np.abs(logits(model) - unfolded).max() < 1e-5
    remove_adapters(model)
    assert not np.allclose(unfolded, base, atol=1e-3)
    # the folded adapter is an ordinary mlx-lm adapter
    path = adapters.write_mlx(folded, tmp_path / "folded")
    ref, _ = mlx_lm.load(str(tiny_path), adapter_path=str(path))
    assert np.abs(logits(ref) - unfolded).max() < 1e-5
    # fused into the weights: same outputs again
    fuse_into(model, folded)
    assert np.abs(logits(model) - unfolded).max() < 1e-4
    assert not any(hasattr(m, "lora_a") for _, m in model.named_modules())


def test_zero_adapter_changes_nothing(tiny_model):
    model = tiny_model[0]
    base = logits(model)
    zero = random_lora(model, std=0.0)
    apply_lora(model, zero)
    try:
        assert np.allclose(logits(model), base, atol=1e-6)
    finally:
        remove_adapters(model)


def test_save_load_roundtrip_and_refusals(tmp_path, merged):
    cfg = CalibrationConfig("lc++", rank=2)
    calib = perturbed(Calibration(cfg, calibration.module_shapes(merged)))
    calibration.save(calib, merged, tmp_path / "c")
    raw = calibration.read_config(tmp_path / "c")
    assert raw["variant"] == "lc++" and raw["merge"]["method"] == "linear" and len(raw["sources"]) == 2
    assert raw["modules"] == sorted(calibration.module_shapes(merged))
    back = calibration.load(tmp_path / "c", merged)
    for k, v in calib.tensors().items():
        assert np.array_equal(np.array(v), np.array(back.tensors()[k]))
    other = merge([merged], MergeConfig("linear"))
    other.meta["sources"] = [{"path": "x", "sha256": "f" * 64}]
    with pytest.raises(MlxLcError, match="trained for other adapters"):
        calibration.load(tmp_path / "c", other)
    with pytest.raises(MlxLcError, match="unknown calibration variant"):
        CalibrationConfig("lc+++")


def test_fuse_into_a_quantized_base_fuses_in_float(tmp_path, tiny_path, tiny_model):
    """A quantized base is dequantized, fused in float and saved float (no rounding of the update)."""
    from mlx_lm import convert

    qpath = tmp_path / "q"
    convert(str(tiny_path), mlx_path=str(qpath), quantize=True, q_group_size=32, q_bits=4)
    lora = random_lora(tiny_model[0], std=0.05)
    qmodel, _ = mlx_lm.load(str(qpath))
    apply_lora(qmodel, lora)
    unfused = logits(qmodel)
    from mlx_lc.fuse import fuse

    fuse(str(qpath), lora, tmp_path / "fused")
    fused, _ = mlx_lm.load(str(tmp_path / "fused"))
    assert np.abs(logits(fused) - unfused).max() < 1e-4
    assert "quantization" not in (tmp_path / "fused" / "config.json").read_text()
