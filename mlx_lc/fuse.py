"""Fuse an adapter into the base weights and save a full mlx-lm model folder.

Fusing happens in float: a small update added to a quantized weight can round away, so a
quantized base is dequantized, fused, and (optionally) re-quantized after.
"""

from __future__ import annotations

import glob
import shutil
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_unflatten

from .adapters import LoRA
from .errors import MlxLcError
from .generate import apply_lora, load_base, remove_adapters
from .io import atomic_dir, write_json
from .checks import and_more, non_finite


def fuse_into(model: nn.Module, lora: LoRA) -> nn.Module:
    """Replace every adapted linear by a float linear with W + scale * (a b)^T."""
    apply_lora(model, lora)
    fused = [(p, m.fuse(dequantize=True)) for p, m in model.named_modules() if hasattr(m, "fuse") and hasattr(m, "lora_a")]
    # W + update in the base's dtype: a float16 base overflows past 65504 where float32 did not
    bad = non_finite({p: m.weight for p, m in fused})
    if bad:
        remove_adapters(model)
        dtype = str(fused[0][1].weight.dtype).rsplit(".", 1)[-1]
        raise MlxLcError(f"the fused weights have non-finite values (NaN or Inf) in {bad[0]}{and_more(bad)}: "
                         f"the update overflows the model's {dtype}; nothing was written")
    model.update_modules(tree_unflatten(fused))
    return model


def save_model_folder(model: nn.Module, tokenizer, config: dict, src: str, out: str | Path,
                      extra: dict | None = None) -> Path:
    """Write weights, config and tokenizer (loadable by mlx_lm.load), atomically."""
    from mlx_lm.utils import hf_repo_to_path, save_config, save_model

    with atomic_dir(out, marker="config.json", kind="model folder") as tmp:
        save_model(tmp, model)
        save_config(dict(config), tmp / "config.json")
        tokenizer.save_pretrained(str(tmp))
        src_path = Path(src) if Path(src).exists() else Path(hf_repo_to_path(src))
        for f in glob.glob(str(src_path / "generation_config.json")):
            shutil.copy(f, tmp)
        if extra:
            write_json(tmp / "mlx_lc.json", extra)
    return Path(out)


def fuse(model_name: str, lora: LoRA, out: str | Path, extra: dict | None = None) -> Path:
    """Fuse `lora` into `model_name` and save a float model folder at `out`."""
    from mlx_lm.utils import dequantize_model, hf_repo_to_path, load_config

    model, tokenizer = load_base(model_name)
    fuse_into(model, lora)
    src = Path(model_name) if Path(model_name).exists() else Path(hf_repo_to_path(model_name))
    config = load_config(src)
    if config.pop("quantization", None) is not None:
        # The fused layers are float now; keep the whole model float (re-quantize with mlx_lm.convert -q).
        config.pop("quantization_config", None)
        model = dequantize_model(model)
    mx.eval(model.parameters())
    return save_model_folder(model, tokenizer, config, model_name, out, extra)
