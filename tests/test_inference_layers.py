"""The fast inference paths compute what the slow ones did: LoRALayer against mlx-lm's LoRALinear,
and a calibration folded at load time against the training-time CalibratedLoRALinear."""

from __future__ import annotations

import mlx_lc  # noqa: F401  (OpenBLAS before mlx)

import mlx.core as mx
import mlx_lm
import numpy as np
import pytest
from mlx.utils import tree_unflatten
from mlx_lm.tuner.lora import LoRALinear

from mlx_lc import calibration as calib_io
from mlx_lc.adapters import LoRA, load_for, write_mlx
from mlx_lc.bench.setup import random_lora, randomize_calibration, shared_copy
from mlx_lc.fuse import fuse_into
from mlx_lc.generate import LoRALayer, apply_lora, compose, remove_adapters
from mlx_lc.merge import MergeConfig, merge
from mlx_lc.tiny import TinyConfig, write_tiny_model

TOKENS = mx.array([[1, 5, 9, 42, 7, 3, 100, 64]])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = write_tiny_model(tmp_path_factory.mktemp("m") / "tiny", TinyConfig(hidden=64, layers=2, seed=0))
    model, tok = mlx_lm.load(str(path))
    return path, model


def logits(model):
    out = model(TOKENS)
    mx.eval(out)
    return np.array(out)


def mlx_lm_reference(model, lora: LoRA):
    """The same adapter in mlx-lm's own layer (scale applied at call time)."""
    mods = dict(model.named_modules())
    layers = []
    for path, (a, b) in lora.factors.items():
        layer = LoRALinear.from_base(mods[path], r=a.shape[1], scale=lora.scale, dropout=0.0)
        layer.lora_a, layer.lora_b = a, b
        layers.append((path, layer))
    model.update_modules(tree_unflatten(layers))
    return model


def test_lora_layer_matches_mlx_lm_and_fuses(tiny):
    path, base = tiny
    lora = random_lora(base, rank=8, scale=0.5, seed=1, name="t")
    ref = logits(mlx_lm_reference(shared_copy(base, path), lora))
    ours = apply_lora(shared_copy(base, path), lora)
    assert any(isinstance(m, LoRALayer) for _, m in ours.named_modules())
    np.testing.assert_allclose(logits(ours), ref, rtol=1e-5, atol=1e-5)
    assert np.abs(ref - logits(base)).max() > 1e-3  # the adapter does something
    np.testing.assert_allclose(logits(fuse_into(shared_copy(base, path), lora)), ref, rtol=1e-4, atol=1e-4)
    zero = LoRA({p: (a, mx.zeros_like(b)) for p, (a, b) in lora.factors.items()}, lora.scale)
    np.testing.assert_allclose(logits(apply_lora(shared_copy(base, path), zero)), logits(base), atol=1e-6)
    np.testing.assert_array_equal(logits(remove_adapters(ours)), logits(base))


@pytest.mark.parametrize("variant,mode", [("lc", "scale"), ("lc", "bias"), ("lc++", "scale")])
def test_compose_folds_calibration_exactly(tiny, tmp_path, variant, mode):
    path, base = tiny
    folders = [write_mlx(random_lora(base, rank=8, seed=s, name=f"a{s}"), tmp_path / f"a{s}") for s in (1, 2)]
    merged = merge(load_for(base, folders), MergeConfig("linear"))
    calib = randomize_calibration(calib_io.Calibration(calib_io.CalibrationConfig(variant, mode, 4, 0),
                                                       calib_io.module_shapes(merged)), seed=0)
    calib_io.save(calib, merged, tmp_path / "calib")
    training_form = calib_io.apply(shared_copy(base, path), merged, calib)  # CalibratedLoRALinear
    loaded = shared_copy(base, path)
    compose(loaded, folders, calibration=tmp_path / "calib")
    assert not any(isinstance(m, calib_io.CalibratedLoRALinear) for _, m in loaded.named_modules())
    np.testing.assert_allclose(logits(loaded), logits(training_form), rtol=1e-4, atol=1e-5)
    plain = shared_copy(base, path)
    compose(plain, folders)  # the merge without calibration: the calibration must matter
    assert np.abs(logits(loaded) - logits(plain)).max() > 1e-4
