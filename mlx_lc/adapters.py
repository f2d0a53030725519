"""LoRA adapters in memory, and their files: mlx-lm's format (read/write) and PEFT's (read).

In memory every adapter uses mlx-lm's layout and scale convention:
    y = W0 x + scale * (x @ a) @ b,   a: (in, r), b: (r, out)
PEFT stores lora_A.weight (r, in) and lora_B.weight (out, r) with scale alpha/r
(alpha/sqrt(r) with rsLoRA); the reader transposes and rescales.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from .errors import MlxLcError
from .io import atomic_dir, load_safetensors, read_json, sha256, write_json
from .checks import check_scale, check_tensors, number, whole

MLX_WEIGHTS, MLX_CONFIG = "adapters.safetensors", "adapter_config.json"
PEFT_WEIGHTS = "adapter_model.safetensors"
_LAYER_RE = re.compile(r"^(?P<prefix>.*?\blayers)\.(?P<idx>\d+)\.(?P<rel>.+)$")
# Architecture fields that must match between an adapter's recorded base and the model.
ARCH_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "intermediate_size",
             "num_attention_heads", "num_key_value_heads", "vocab_size")


@dataclass
class LoRA:
    """A LoRA adapter: per-module factors keyed by full module path (model.layers.0.self_attn.q_proj)."""

    factors: dict[str, tuple[mx.array, mx.array]]  # path -> (a (in, r), b (r, out))
    scale: float
    base_model: str | None = None
    base_arch: dict | None = None  # ARCH_KEYS of the base the adapter was made for
    source: str | None = None  # folder it was read from
    meta: dict = field(default_factory=dict)

    @property
    def rank(self) -> int:
        ranks = {a.shape[1] for a, _ in self.factors.values()} | {b.shape[0] for _, b in self.factors.values()}
        if len(ranks) != 1:
            raise MlxLcError(f"adapter {self.source or ''} mixes ranks {sorted(ranks)}")
        return ranks.pop()

    @property
    def keys(self) -> list[str]:
        """Module paths inside a block (self_attn.q_proj, mlp.down_proj, ...)."""
        return sorted({split_path(p)[2] for p in self.factors})

    def delta(self, path: str) -> mx.array:
        """The exact update of one module in x-layout (in, out): scale * a @ b, fp32."""
        a, b = self.factors[path]
        return self.scale * (a.astype(mx.float32) @ b.astype(mx.float32))

    def num_params(self) -> int:
        return sum(a.size + b.size for a, b in self.factors.values())


def split_path(path: str) -> tuple[str, int, str]:
    """'model.layers.3.self_attn.q_proj' -> ('model.layers', 3, 'self_attn.q_proj')."""
    m = _LAYER_RE.match(path)
    if not m:
        raise MlxLcError(f"module {path!r} is not inside a transformer block (model.layers.N.*)")
    return m["prefix"], int(m["idx"]), m["rel"]


def model_arch(model: nn.Module) -> dict:
    args = getattr(model, "args", None)
    return {k: getattr(args, k, None) for k in ARCH_KEYS} if args is not None else {}


def linear_shapes(model: nn.Module) -> dict[str, tuple[int, int]]:
    """Every linear layer inside the blocks: path -> (in, out), quantized layers included."""
    shapes = {}
    for path, mod in model.named_modules():
        if isinstance(mod, (nn.Linear, nn.QuantizedLinear)) and _LAYER_RE.match(path):
            out_dims, in_dims = mod.weight.shape
            if isinstance(mod, nn.QuantizedLinear):
                in_dims = in_dims * 32 // mod.bits
            shapes[path] = (in_dims, out_dims)
    return shapes


def validate(lora: LoRA, model: nn.Module, model_name: str | None = None) -> None:
    """Check the adapter against the model; report every mismatch in one error."""
    name = lora.source or "adapter"
    arch = model_arch(model)
    if lora.base_arch and arch:
        diff = [f"{k} {lora.base_arch[k]} vs {arch.get(k)}" for k in ARCH_KEYS
                if k in lora.base_arch and lora.base_arch[k] != arch.get(k)]
        if diff:
            raise MlxLcError(
                f"{name} was made for base model {lora.base_model!r}, which differs from "
                f"{model_name or 'this model'}: " + ", ".join(diff))
    shapes = linear_shapes(model)
    errors = []
    for path, (a, b) in sorted(lora.factors.items()):
        if path not in shapes:
            errors.append(f"{path}: no such linear layer in the model")
            continue
        d_in, d_out = shapes[path]
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
            errors.append(f"{path}: lora_a {tuple(a.shape)} and lora_b {tuple(b.shape)} do not chain")
        elif a.shape[0] != d_in or b.shape[1] != d_out:
            errors.append(f"{path}: adapter maps {a.shape[0]}->{b.shape[1]}, model layer is {d_in}->{d_out}")
    if errors:
        more = f" (and {len(errors) - 8} more)" if len(errors) > 8 else ""
        raise MlxLcError(f"{name} does not fit {model_name or 'the model'}: {len(errors)} mismatch(es): "
                         + "; ".join(errors[:8]) + more)


# ---------------------------------------------------------------- mlx-lm format

def _config(path: Path) -> dict:
    cfg = read_json(path / MLX_CONFIG)
    if not isinstance(cfg, dict):  # hand-edited: say which file, not "'list' object has no attribute"
        raise MlxLcError(f"{path / MLX_CONFIG}: expected a JSON object, got {type(cfg).__name__}")
    return cfg


def _optional(cfg: dict, key: str, kind: type, what: str, where: Path, name: str | None = None):
    """cfg[key] when it is absent, null or of `kind`; else one line naming the file and the key
    (`name`: the key's full name where cfg is nested)."""
    value = cfg.get(key)
    if value is not None and not isinstance(value, kind):
        raise MlxLcError(f"{where}: {name or repr(key)} must be {what}, got {value!r}")
    return value


def _check_ranks(factors: dict, where: Path) -> None:
    """An empty pair (rank 0) would merge to "0 params" and change nothing."""
    for mod, (a, b) in sorted(factors.items()):
        if a.ndim == 2 and b.ndim == 2 and 0 in (a.shape[1], b.shape[0]):
            raise MlxLcError(f"{where}: {mod} has rank 0 (factors {tuple(a.shape)} and {tuple(b.shape)}), "
                             "an empty update")


def read_mlx(path: Path) -> LoRA:
    cfg = _config(path)
    where = path / MLX_CONFIG
    kind = cfg.get("fine_tune_type", "lora")
    if kind != "lora":
        raise MlxLcError(f"{path}: fine_tune_type {kind!r} is not supported (LoRA only)")
    params = _optional(cfg, "lora_parameters", dict, "an object", where) or {}
    if "scale" not in params:
        raise MlxLcError(f"{path}/{MLX_CONFIG}: lora_parameters.scale is missing")
    scale = check_scale(number(params["scale"], "lora_parameters.scale", where), "lora_parameters.scale", where)
    base_model = _optional(cfg, "model", str, "a string", where)
    meta = cfg.get("mlx_lc", {})
    if not isinstance(meta, dict):
        raise MlxLcError(f"{where}: 'mlx_lc' must be an object, got {type(meta).__name__}")
    base_arch = _optional(meta, "base_arch", dict, "an object", where, "'mlx_lc.base_arch'")
    _optional(meta, "sha256", str, "a string", where, "'mlx_lc.sha256'")
    tensors = load_safetensors(path / MLX_WEIGHTS)
    factors, stray = {}, []
    for key in tensors:
        mod, _, leaf = key.rpartition(".")
        if leaf not in ("lora_a", "lora_b"):
            stray.append(key)
    if stray:
        raise MlxLcError(f"{path}: not LoRA tensors: {', '.join(sorted(stray)[:5])}")
    for key in sorted(tensors):
        mod, _, leaf = key.rpartition(".")
        if leaf == "lora_a":
            if mod + ".lora_b" not in tensors:
                raise MlxLcError(f"{path}: {mod}.lora_b is missing")
            factors[mod] = (tensors[key], tensors[mod + ".lora_b"])
        elif mod + ".lora_a" not in tensors:
            raise MlxLcError(f"{path}: {mod}.lora_a is missing")
    if not factors:
        raise MlxLcError(f"{path}: no LoRA tensors in {MLX_WEIGHTS}")
    check_tensors(tensors, path / MLX_WEIGHTS)
    _check_ranks(factors, path / MLX_WEIGHTS)
    return LoRA(factors, scale, base_model=base_model, base_arch=base_arch, source=str(path), meta=meta)


def write_mlx(lora: LoRA, out: str | Path, extra_meta: dict | None = None) -> Path:
    """Write a standard mlx-lm adapter folder (loadable by mlx_lm --adapter-path and mlx_lm.fuse)."""
    out = Path(out)
    with atomic_dir(out, marker=MLX_CONFIG, kind="adapter") as tmp:
        layers = {split_path(p)[1] for p in lora.factors}
        n_total = (lora.base_arch or {}).get("num_hidden_layers") or (max(layers) + 1)
        config = {
            "fine_tune_type": "lora",
            "model": lora.base_model,
            # mlx-lm applies LoRA to the last `num_layers` blocks with the same keys in each.
            "num_layers": n_total - min(layers),
            "lora_parameters": {"rank": lora.rank, "scale": lora.scale, "dropout": 0.0, "keys": lora.keys},
            "mlx_lc": {**lora.meta, **(extra_meta or {}), "base_arch": lora.base_arch},
        }
        tensors = {}
        for p, (a, b) in lora.factors.items():
            tensors[f"{p}.lora_a"], tensors[f"{p}.lora_b"] = a, b
        mx.save_safetensors(str(tmp / MLX_WEIGHTS), tensors, metadata={"format": "mlx"})
        write_json(tmp / MLX_CONFIG, config)
    return out


# ---------------------------------------------------------------- PEFT format

_PEFT_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<mod>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")


def read_peft(path: Path) -> LoRA:
    """Read a PEFT LoRA (Llama/Qwen2 module names equal mlx-lm's after the prefix)."""
    cfg = _config(path)
    if cfg.get("peft_type", "LORA") != "LORA":
        raise MlxLcError(f"{path}: peft_type {cfg.get('peft_type')!r} is not supported (LORA only)")
    where = path / MLX_CONFIG
    for flag, why in (("use_dora", "DoRA"), ("fan_in_fan_out", "fan_in_fan_out (Conv1D) layers")):
        if _optional(cfg, flag, bool, "true or false", where):  # "false" (a string) would read as true
            raise MlxLcError(f"{path}: {why} adapters are not supported")
    if cfg.get("modules_to_save"):
        raise MlxLcError(f"{path}: modules_to_save {cfg['modules_to_save']} (full weights) are not supported")
    if "r" not in cfg:
        raise MlxLcError(f"{where}: the LoRA rank 'r' is missing")
    r = whole(cfg["r"], "'r'", where)
    if r < 1:
        raise MlxLcError(f"{where}: 'r' must be at least 1, got {r}")
    alpha = number(cfg.get("lora_alpha", r), "'lora_alpha'", where)
    rs = bool(_optional(cfg, "use_rslora", bool, "true or false", where))
    base_model = _optional(cfg, "base_model_name_or_path", str, "a string", where)
    rank_pattern = _optional(cfg, "rank_pattern", dict, "an object", where) or {}
    alpha_pattern = _optional(cfg, "alpha_pattern", dict, "an object", where) or {}
    for k, v in rank_pattern.items():
        if whole(v, f"'rank_pattern.{k}'", where) < 1:
            raise MlxLcError(f"{where}: 'rank_pattern.{k}' must be at least 1, got {v}")
    for k, v in alpha_pattern.items():
        number(v, f"'alpha_pattern.{k}'", where)

    def pattern(table: dict, mod: str):
        """PEFT's per-module override: the key that ends the module path, if any."""
        return next((k for k in table if re.search(rf"(^|\.){re.escape(k)}$", mod)), None)

    def module_rank(mod: str) -> tuple[int, str]:
        k = pattern(rank_pattern, mod)
        return (r, "'r'") if k is None else (int(rank_pattern[k]), f"'rank_pattern.{k}'")

    def module_scale(mod: str) -> float:
        rr, ka = module_rank(mod)[0], pattern(alpha_pattern, mod)
        aa = alpha if ka is None else float(alpha_pattern[ka])
        key = "'lora_alpha'" if ka is None else f"'alpha_pattern.{ka}'"
        return check_scale(aa / (rr ** 0.5 if rs else rr), key, where, given=aa)

    tensors = load_safetensors(path / PEFT_WEIGHTS)
    parts: dict[str, dict[str, mx.array]] = {}
    for key, t in tensors.items():
        m = _PEFT_KEY.match(key)
        if not m:
            raise MlxLcError(f"{path}: unsupported tensor {key} (only lora_A/lora_B of linear layers)")
        parts.setdefault(m["mod"], {})[m["ab"]] = t
    check_tensors(tensors, path / PEFT_WEIGHTS)
    scale = check_scale(alpha / (r ** 0.5 if rs else r), "'lora_alpha'", where, given=alpha)
    factors = {}
    for mod, ab in sorted(parts.items()):
        if set(ab) != {"A", "B"}:
            raise MlxLcError(f"{path}: {mod} lacks lora_{'B' if 'A' in ab else 'A'}")
        rr, said = module_rank(mod)
        A, B = ab["A"], ab["B"]
        if A.ndim == 2 and B.ndim == 2 and A.shape[0] == B.shape[1] and A.shape[0] != rr:
            # the scale is alpha / r: with the wrong r every update would be silently off
            raise MlxLcError(f"{where}: {said} is {rr} but {mod} has rank {A.shape[0]} in {PEFT_WEIGHTS}")
        # PEFT: W + s * B A with A (r, in), B (out, r); mlx-lm: a = A^T, b = B^T.
        ratio = module_scale(mod) / scale
        factors[mod] = (A.T, B.T * ratio if ratio != 1.0 else B.T)
    return LoRA(factors, scale, base_model=base_model, source=str(path), meta={"format": "peft"})


def read(path: str | Path) -> LoRA:
    """Read an adapter folder in mlx-lm or PEFT format."""
    path = Path(path)
    if not path.is_dir():
        raise MlxLcError(f"adapter folder not found: {path}")
    if (path / MLX_WEIGHTS).exists():
        lora = read_mlx(path)
    elif (path / PEFT_WEIGHTS).exists():
        lora = read_peft(path)
    elif any(path.glob("*.bin")) or any(path.glob("*.pt")):
        raise MlxLcError(f"{path}: pickle weights (.bin/.pt) are refused; convert them to safetensors")
    else:
        raise MlxLcError(f"{path}: no {MLX_WEIGHTS} (mlx-lm) or {PEFT_WEIGHTS} (PEFT) found")
    lora.meta.setdefault("sha256", sha256(weights_file(path)))
    return lora


def recorded_task(path: str | Path) -> str | None:
    """The one task an mlx-lc adapter was trained (or folded) for, from its config; None if unknown."""
    try:
        meta = read_json(Path(path) / MLX_CONFIG).get("mlx_lc", {})
        found = meta.get("task") or meta.get("train", {}).get("tasks")
    except (MlxLcError, AttributeError):  # PEFT folder, hand-made config: the task is unknown
        return None
    if isinstance(found, list):
        found = found[0] if len(found) == 1 else None
    return found if isinstance(found, str) else None


def weights_file(path: str | Path) -> Path:
    """An adapter folder's weights: mlx-lm's file where there is one, else PEFT's."""
    path = Path(path)
    return path / (MLX_WEIGHTS if (path / MLX_WEIGHTS).exists() else PEFT_WEIGHTS)


def load_for(model: nn.Module, paths, model_name: str | None = None) -> list[LoRA]:
    """Read adapters and validate each against the model."""
    loras = [read(p) for p in paths]
    for lora in loras:
        validate(lora, model, model_name)
    return loras


def trainable_count(model: nn.Module) -> int:
    return sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
