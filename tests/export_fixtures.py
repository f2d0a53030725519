"""Tiny models, adapters and calibrations on disk for the export tests (offline, seeded)."""

from __future__ import annotations

import importlib
from pathlib import Path

import mlx_lc  # noqa: F401  (BLAS before mlx)
import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten

from mlx_lc import adapters as adapters_io
from mlx_lc import calibration as calib_io
from mlx_lc import model_folder
from mlx_lc.adapters import LoRA
from mlx_lc.merge import MergeConfig, merge
from mlx_lc.tiny import DEFAULT_CORPUS, train_tokenizer

PROJ = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def write_model(out: Path, arch: str = "llama", tie: bool = True, rope_scaling: dict | None = None,
                hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2, seed: int = 0,
                embed_scale: float = 0.3) -> Path:
    """A random llama/qwen2 model. Embeddings at 0.3 (not 0.02) give decisive logits (std ~2), so
    greedy tokens do not flip on fp16 rounding ties; norms are perturbed so their weights matter."""
    tok = train_tokenizer(DEFAULT_CORPUS.splitlines(), 400)
    config = {"model_type": arch, "hidden_size": hidden, "num_hidden_layers": layers,
              "intermediate_size": 2 * hidden, "num_attention_heads": heads, "num_key_value_heads": kv_heads,
              "rms_norm_eps": 1e-5, "vocab_size": len(tok), "rope_theta": 10000.0, "max_position_embeddings": 256,
              "tie_word_embeddings": tie, "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id}
    if rope_scaling:
        config["rope_scaling"] = rope_scaling
    mx.random.seed(seed)
    module = importlib.import_module(f"mlx_lm.models.{arch}")
    model = module.Model(module.ModelArgs.from_dict(config))
    params = dict(tree_flatten(model.parameters()))
    for k, v in params.items():
        if k.endswith("embed_tokens.weight"):
            params[k] = embed_scale * mx.random.normal(v.shape)
        elif "norm" in k:
            params[k] = 1.0 + 0.2 * mx.random.normal(v.shape)
    model.update(tree_unflatten(list(params.items())))
    mx.eval(model.parameters())
    return model_folder.save(out, model, tok, config)


def write_adapter(out: Path, model_dir: Path, rank: int = 4, seed: int = 1, scale: float = 0.5,
                  keys=PROJ, b_std: float = 0.3) -> Path:
    """A random, clearly non-zero LoRA on every projection of every layer."""
    from mlx_lm.utils import load_config

    cfg = load_config(model_dir)
    d, hd = cfg["hidden_size"], cfg["hidden_size"] // cfg["num_attention_heads"]
    dims = {"self_attn.q_proj": (d, d), "self_attn.k_proj": (d, cfg["num_key_value_heads"] * hd),
            "self_attn.v_proj": (d, cfg["num_key_value_heads"] * hd), "self_attn.o_proj": (d, d),
            "mlp.gate_proj": (d, cfg["intermediate_size"]), "mlp.up_proj": (d, cfg["intermediate_size"]),
            "mlp.down_proj": (cfg["intermediate_size"], d)}
    rng = np.random.default_rng(seed)
    factors = {}
    for layer in range(cfg["num_hidden_layers"]):
        for k in keys:
            d_in, d_out = dims[k]
            factors[f"model.layers.{layer}.{k}"] = (mx.array(rng.normal(0, d_in ** -0.5, (d_in, rank)), dtype=mx.float32),
                                                    mx.array(rng.normal(0, b_std, (rank, d_out)), dtype=mx.float32))
    return adapters_io.write_mlx(LoRA(factors, scale, base_model=str(model_dir)), out)


def write_calibration(out: Path, adapter_dirs, variant: str = "lc", mode: str = "scale", seed: int = 2,
                      task: str | None = None) -> Path:
    """A calibration with random (non-initial) parameters for the linear merge of `adapter_dirs`."""
    loras = [adapters_io.read(p) for p in adapter_dirs]
    merged = merge(loras, MergeConfig("linear"))
    calib = calib_io.Calibration(calib_io.CalibrationConfig(variant, mode, rank=2, seed=seed),
                                 calib_io.module_shapes(merged))
    rng = np.random.default_rng(seed)
    new = {}
    for k, v in calib.tensors().items():
        base = 1.0 if (variant == "lc" and mode == "scale") else 0.0
        # lc++ pairs multiply two random factors: keep each small so the network stays tame.
        new[k] = mx.array(base + rng.normal(0, 0.3 if variant == "lc" else 0.1, v.shape), dtype=mx.float32)
    calib.load_weights(list(new.items()))
    return calib_io.save(calib, merged, out, extra={"task": task} if task else None)
