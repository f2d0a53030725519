"""Train single-task (or joint-expert) LoRAs with `fit.fit`.

`train_lora` writes a standard mlx-lm adapter folder (`mlx_lm.generate --adapter-path` loads it)
whose config records the base model, its architecture and the resolved training config, with a
loss-curve PNG beside it. Data are JSON lines with `prompt` and `completion` (mlx-lm's
completions format) plus `task`; the loss covers the completion only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from .. import adapters as adapters_io
from .. import model_folder
from ..adapters import LoRA
from ..checks import MAX_SCALE, MIN_SCALE
from ..errors import MlxLcError
from ..model_folder import model_id
from ..outputs import move_into
from .fit import FitConfig, FitResult, fit, run_folder
from .rows import encode_rows, load_splits

# METHOD.md: rank 32, alpha 16 (mlx-lm scale = alpha / rank = 0.5), dropout 0.05, Adam, lr 5e-5.
DEFAULT_RANK, DEFAULT_ALPHA, DEFAULT_DROPOUT, DEFAULT_LR = 32, 16.0, 0.05, 5e-5


@dataclass
class LoRAConfig:
    rank: int = DEFAULT_RANK
    scale: float = DEFAULT_ALPHA / DEFAULT_RANK
    dropout: float = DEFAULT_DROPOUT
    keys: list[str] | None = None  # module paths inside a block; default: every linear layer
    fit: FitConfig = field(default_factory=lambda: FitConfig(lr=DEFAULT_LR))

    def validate(self) -> None:
        if self.rank < 1:
            raise MlxLcError(f"LoRA rank must be at least 1, got {self.rank}")
        # scale 0 trains an adapter that changes nothing; nan/inf poison every weight
        if not (isinstance(self.scale, (int, float)) and math.isfinite(self.scale) and self.scale > 0):
            raise MlxLcError(f"LoRA scale must be a positive number, got {self.scale}")
        if not MIN_SCALE <= self.scale <= MAX_SCALE:  # an adapter every reader would refuse
            raise MlxLcError(f"LoRA scale must be between {MIN_SCALE:g} and {MAX_SCALE:g}, got {self.scale:g}")
        if not 0 <= self.dropout < 1:
            raise MlxLcError(f"LoRA dropout must be in [0, 1), got {self.dropout}")
        self.fit.validate()


# ---------------------------------------------------------------- LoRA

def block_keys(model: nn.Module) -> list[str]:
    """Every linear layer inside a transformer block (q, k, v, o, gate, up, down for Llama)."""
    return sorted({adapters_io.split_path(p)[2] for p in adapters_io.linear_shapes(model)})


def add_lora(model: nn.Module, cfg: LoRAConfig) -> list[str]:
    """Freeze the model and put trainable LoRA layers on `cfg.keys` of every block."""
    from mlx_lm.tuner.utils import linear_to_lora_layers  # here: mlx_lm costs ~1.1 s, which `mlx-lc --help` does not need

    keys = cfg.keys or block_keys(model)
    missing = sorted(set(keys) - set(block_keys(model)))
    if missing:
        raise MlxLcError(f"no linear layer {', '.join(missing)} in the model's blocks; "
                         f"available: {', '.join(block_keys(model))}")
    model.freeze()
    linear_to_lora_layers(model, len(model.layers),
                          {"rank": cfg.rank, "scale": cfg.scale, "dropout": cfg.dropout, "keys": keys})
    return keys


def lora_from_model(model: nn.Module, scale: float, base_model: str | None, meta: dict) -> LoRA:
    params = dict(tree_flatten(model.trainable_parameters()))
    factors = {p[: -len(".lora_a")]: (v, params[p[: -len(".lora_a")] + ".lora_b"])
               for p, v in params.items() if p.endswith(".lora_a")}
    return LoRA(factors, scale, base_model=base_model, base_arch=adapters_io.model_arch(model), meta=meta)


def train_lora(model_path: str, data: str | Path, out: str | Path, cfg: LoRAConfig | None = None,
               resume: bool = False, progress: bool = True) -> FitResult:
    """Train one LoRA on `data` and write an mlx-lm adapter folder to `out` (rank 0 only)."""
    cfg = cfg or LoRAConfig()
    cfg.validate()
    out = Path(out)
    with run_folder(out, "adapter", [model_path, data], resume) as tmp:
        model, tok = model_folder.load(model_path)
        train_rows, valid_rows = load_splits(data, seed=cfg.fit.seed)
        mx.random.seed(cfg.fit.seed)  # LoRA's `a` init
        cfg.keys = add_lora(model, cfg)
        result = fit(model, encode_rows(tok, train_rows), encode_rows(tok, valid_rows), cfg.fit, out=tmp,
                     resume=resume, progress=progress, desc=f"lora {out.name}",
                     setup={"kind": "lora", "base_model": model_id(model_path),
                            "base_arch": adapters_io.model_arch(model), "rank": cfg.rank, "scale": cfg.scale,
                            "keys": cfg.keys})
        meta = {"train": {**asdict(cfg), "data": str(data), "n_train": len(train_rows), "n_valid": len(valid_rows),
                          "tasks": sorted({r.get("task", "?") for r in train_rows}),
                          "world_size": mx.distributed.init().size()},
                "result": result.meta(), "kind": "lora"}
        if mx.distributed.init().rank() == 0:
            lora = lora_from_model(model, cfg.scale, model_path, meta)
            move_into(tmp, lambda part: adapters_io.write_mlx(lora, part))
            result.write_curves(tmp, f"LoRA {out.name}")
    return result
