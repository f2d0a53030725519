"""Adapter files: mlx-lm round trip and compatibility, PEFT import semantics, validation errors."""

import json

import mlx_lc  # noqa: F401

import mlx.core as mx
import mlx_lm
import numpy as np
import pytest
from mlx.utils import tree_flatten

from mlx_lc import adapters
from mlx_lc.errors import MlxLcError
from mlx_lc.generate import apply_lora, generate, remove_adapters
from mlx_lc.tiny import TinyConfig, write_tiny_model

from conftest import random_lora

TOKENS = mx.array([[1, 40, 41, 42, 43, 44, 45, 46]])


def logits(model):
    return np.array(model(TOKENS).astype(mx.float32))


def test_mlx_roundtrip(tmp_path, tiny_model):
    lora = random_lora(tiny_model[0], rank=3)
    back = adapters.read(adapters.write_mlx(lora, tmp_path / "a"))
    assert back.scale == lora.scale and back.rank == 3 and set(back.factors) == set(lora.factors)
    for p, (a, b) in lora.factors.items():
        assert np.array_equal(np.array(a), np.array(back.factors[p][0]))
        assert np.array_equal(np.array(b), np.array(back.factors[p][1]))
    assert back.base_arch == lora.base_arch and len(back.meta["sha256"]) == 64


def test_mlx_lm_loads_what_we_write_and_decodes_the_same(tmp_path, tiny_path):
    model, tok = mlx_lm.load(str(tiny_path))
    lora = random_lora(model, rank=4, std=0.3)
    path = adapters.write_mlx(lora, tmp_path / "a")
    ref, _ = mlx_lm.load(str(tiny_path), adapter_path=str(path))  # mlx-lm's own loader
    base = logits(model)
    apply_lora(model, lora)
    ours = logits(model)
    assert np.allclose(ours, logits(ref), atol=1e-5)
    assert not np.allclose(ours, base, atol=1e-3)  # the adapter does something
    text_ours = generate(model, tok, "Anna: hello there", max_tokens=12)
    text_ref = mlx_lm.generate(ref, tok, "Anna: hello there", max_tokens=12)
    assert text_ours == text_ref
    remove_adapters(model)
    assert np.allclose(logits(model), base)


def write_peft(path, model, r=4, alpha=8.0, rslora=False, seed=0, targets=("q_proj", "v_proj", "down_proj")):
    """A PEFT LoRA folder with PEFT's names and layouts: lora_A (r, in), lora_B (out, r)."""
    path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    tensors, expected = {}, {}
    for name, (d_in, d_out) in adapters.linear_shapes(model).items():
        if name.rsplit(".", 1)[-1] not in targets:
            continue
        A = rng.normal(0, 0.3, (r, d_in)).astype(np.float32)
        B = rng.normal(0, 0.3, (d_out, r)).astype(np.float32)
        tensors[f"base_model.model.{name}.lora_A.weight"] = mx.array(A)
        tensors[f"base_model.model.{name}.lora_B.weight"] = mx.array(B)
        expected[name] = (A, B)
    mx.save_safetensors(str(path / "adapter_model.safetensors"), tensors)
    (path / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": r, "lora_alpha": alpha, "target_modules": list(targets),
        "use_rslora": rslora, "bias": "none", "base_model_name_or_path": "tiny", "task_type": "CAUSAL_LM"}))
    return expected


@pytest.mark.parametrize("rslora", [False, True])
def test_peft_import_matches_peft_semantics(tmp_path, tiny_path, rslora):
    """PEFT computes W + alpha/r * B @ A (alpha/sqrt(r) with rsLoRA); do it by hand and compare logits."""
    model, _ = mlx_lm.load(str(tiny_path))
    r, alpha = 4, 8.0
    expected = write_peft(tmp_path / "peft", model, r, alpha, rslora)
    lora = adapters.read(tmp_path / "peft")
    adapters.validate(lora, model)
    assert lora.scale == pytest.approx(alpha / (np.sqrt(r) if rslora else r))
    ref, _ = mlx_lm.load(str(tiny_path))
    mods = dict(ref.named_modules())
    s = alpha / (np.sqrt(r) if rslora else r)
    for name, (A, B) in expected.items():
        W = np.array(mods[name].weight)
        mods[name].weight = mx.array(W + s * B @ A)
    apply_lora(model, lora)
    assert np.allclose(logits(model), logits(ref), atol=1e-4)


def test_peft_against_transformers_peft(tmp_path, tiny_path):
    """Where torch and peft are installed: logits equal transformers + PEFT on the same weights."""
    torch = pytest.importorskip("torch")
    peft = pytest.importorskip("peft")
    import transformers

    hf = transformers.AutoModelForCausalLM.from_pretrained(str(tiny_path), torch_dtype=torch.float32)
    model, _ = mlx_lm.load(str(tiny_path))
    write_peft(tmp_path / "peft", model)
    hf = peft.PeftModel.from_pretrained(hf, str(tmp_path / "peft")).eval()
    with torch.no_grad():
        ref = hf(torch.tensor(np.array(TOKENS))).logits.numpy()
    apply_lora(model, adapters.read(tmp_path / "peft"))
    assert np.allclose(logits(model), ref, atol=1e-4)


def test_validation_reports_every_mismatch_in_one_line(tmp_path, tiny_model):
    other = write_tiny_model(tmp_path / "other", TinyConfig(hidden=32, layers=2, heads=2, kv_heads=1))
    big, _ = mlx_lm.load(str(other))
    lora = random_lora(big, rank=2)
    lora.base_arch = None  # shapes only: every module must be reported
    with pytest.raises(MlxLcError) as e:
        adapters.validate(lora, tiny_model[0], "tiny")
    msg = str(e.value)
    assert "\n" not in msg and "14 mismatch" in msg and "more" in msg


def test_adapter_for_another_base_is_refused(tmp_path, tiny_model):
    lora = random_lora(tiny_model[0])
    lora.base_arch = {**lora.base_arch, "vocab_size": 32000}
    with pytest.raises(MlxLcError, match="was made for base model .*vocab_size 32000"):
        adapters.validate(lora, tiny_model[0])


def test_bad_folders(tmp_path):
    with pytest.raises(MlxLcError, match="not found"):
        adapters.read(tmp_path / "nope")
    (tmp_path / "pkl").mkdir()
    (tmp_path / "pkl" / "adapter_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(MlxLcError, match="pickle"):
        adapters.read(tmp_path / "pkl")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "adapters.safetensors").write_bytes(b"not a safetensors file")
    (bad / "adapter_config.json").write_text('{"lora_parameters": {"rank": 2, "scale": 1.0}}')
    with pytest.raises(MlxLcError, match="corrupt safetensors"):
        adapters.read(bad)
    half = tmp_path / "half"
    half.mkdir()
    mx.save_safetensors(str(half / "adapters.safetensors"), {"model.layers.0.self_attn.q_proj.lora_a": mx.zeros((4, 2))})
    (half / "adapter_config.json").write_text('{"lora_parameters": {"rank": 2, "scale": 1.0}}')
    with pytest.raises(MlxLcError, match="lora_b is missing"):
        adapters.read(half)


def test_peft_refuses_what_it_cannot_represent(tmp_path, tiny_model):
    write_peft(tmp_path / "p", tiny_model[0])
    cfg = json.loads((tmp_path / "p" / "adapter_config.json").read_text())
    (tmp_path / "p" / "adapter_config.json").write_text(json.dumps({**cfg, "use_dora": True}))
    with pytest.raises(MlxLcError, match="DoRA"):
        adapters.read(tmp_path / "p")


def test_write_is_atomic(tmp_path, tiny_model):
    lora = random_lora(tiny_model[0])
    lora.factors["model.layers.0.self_attn.q_proj"] = (mx.zeros((64, 4)), mx.zeros((3, 64)))  # ranks differ
    with pytest.raises(MlxLcError):
        adapters.write_mlx(lora, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
