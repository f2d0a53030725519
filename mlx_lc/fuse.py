"""Fuse an adapter into the base weights and save a full mlx-lm model folder.

Fusing happens in float: a small update added to a quantized weight can round away, so a
quantized base is dequantized, fused, and (optionally) re-quantized after.
"""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_unflatten

from . import model_folder
from .adapters import LoRA
from .checks import and_more, non_finite
from .errors import MlxLcError
from .generate import apply_lora, remove_adapters


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


def fuse(model_name: str, lora: LoRA, out: str | Path, extra: dict | None = None) -> Path:
    """Fuse `lora` into `model_name` and save a float model folder at `out` (`extra` as mlx_lc.json)."""
    from mlx_lm.utils import dequantize_model  # here: mlx_lm costs ~1.1 s, which `mlx-lc --help` does not need

    model, tokenizer = model_folder.load(model_name)
    fuse_into(model, lora)
    src = model_folder.resolve(model_name, download=False)  # loaded just now, so local
    config = model_folder.read_config(src)
    if config.pop("quantization", None) is not None:
        # The fused layers are float now; keep the whole model float (re-quantize with mlx_lm.convert -q).
        config.pop("quantization_config", None)
        model = dequantize_model(model)
    mx.eval(model.parameters())
    return model_folder.save(out, model, tokenizer, config, {"mlx_lc.json": extra} if extra else None, source=src)
