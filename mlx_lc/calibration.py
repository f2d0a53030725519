"""Learnable Calibration (Bohdal et al., EMNLP 2025): a tiny correction on top of a linear LoRA
merge, with parameters *shared by all layers* for each module type.

    lc, scale:  y = W0 x + s * diag(p) B'A' x                (p: d_out, init 1)
    lc, bias:   y = W0 x + s * B'A' x + p (1^T x)            (p: d_out, init 0)
    lc++:       y = W0 x + s * B'A' x + (x @ calib_a) @ calib_b   (calib_a: d_in x k, calib_b: k x d_out, init 0)

The calibration term is unscaled. Each variant folds into an ordinary LoRA of rank r, r+1 or r+k,
so a calibrated composition ships as a standard mlx-lm adapter (see `fold`).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten

from .adapters import LoRA, split_path
from .errors import MlxLcError
from .io import atomic_dir, load_safetensors, read_json, shape_mismatches, write_json
from .merge import MergeConfig, merge
from .merges import METHODS
from .checks import check_result, check_tensors, number, whole

WEIGHTS, CONFIG = "calibration.safetensors", "calibration_config.json"
VARIANTS = ("lc", "lc++")
MODES = ("scale", "bias")


@dataclass
class CalibrationConfig:
    variant: str = "lc"  # "lc" (vector per module type) or "lc++" (rank-k pair per module type)
    mode: str = "scale"  # lc only: "scale" (diag(p) B'A') or "bias" (B'A' + p 1^T)
    rank: int = 4  # lc++ only: k
    seed: int = 0  # init of calib_a

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise MlxLcError(f"unknown calibration variant {self.variant!r}; choose lc or lc++")
        if self.mode not in MODES:
            raise MlxLcError(f"unknown calibration mode {self.mode!r}; choose scale or bias")
        if self.variant == "lc++" and self.rank < 1:
            raise MlxLcError(f"lc++ rank must be positive, got {self.rank}")


def module_shapes(lora: LoRA) -> dict[str, tuple[int, int]]:
    """Module type (path inside a block) -> (d_in, d_out); every layer must agree."""
    shapes: dict[str, tuple[int, int]] = {}
    for path, (a, b) in lora.factors.items():
        rel = split_path(path)[2]
        shape = (a.shape[0], b.shape[1])
        if shapes.setdefault(rel, shape) != shape:
            raise MlxLcError(f"{rel} has different shapes across layers; a shared calibration needs one")
    return shapes


class Calibration(nn.Module):
    """The trainable parameters: one small set per module type, shared by every layer."""

    def __init__(self, cfg: CalibrationConfig, shapes: dict[str, tuple[int, int]]):
        super().__init__()
        self._cfg = cfg
        self._shapes = dict(shapes)
        keys = mx.random.split(mx.random.key(cfg.seed), max(len(shapes), 1))
        flat = []
        for i, (rel, (d_in, d_out)) in enumerate(sorted(shapes.items())):
            if cfg.variant == "lc":
                flat.append((f"{rel}.p", mx.ones((d_out,)) if cfg.mode == "scale" else mx.zeros((d_out,))))
            else:
                # calib_b = 0 so that step 0 is exactly the linear merge; calib_a as LoRA's a.
                bound = 1 / math.sqrt(d_in)
                flat.append((f"{rel}.calib_a", mx.random.uniform(-bound, bound, (d_in, cfg.rank), key=keys[i])))
                flat.append((f"{rel}.calib_b", mx.zeros((cfg.rank, d_out))))
        for name, value in tree_unflatten(flat).items():
            setattr(self, name, value)

    @property
    def config(self) -> CalibrationConfig:
        return self._cfg

    @property
    def shapes(self) -> dict[str, tuple[int, int]]:
        return self._shapes

    def term(self, rel: str) -> dict:
        node = self
        for part in rel.split("."):
            node = node[part]
        return node

    def tensors(self) -> dict[str, mx.array]:
        return dict(tree_flatten(self.parameters()))

    def num_params(self) -> int:
        return sum(v.size for v in self.tensors().values())


class CalibratedLoRALinear(nn.Module):
    """A linear layer with a merged LoRA (frozen) and a reference to the shared calibration."""

    def __init__(self, linear: nn.Module, a: mx.array, b: mx.array, scale: float,
                 calibration: Calibration, rel: str):
        super().__init__()
        self.linear = linear
        self.lora_a, self.lora_b = a, b
        self.scale = scale
        # Underscored: not a child, so the shared parameters appear once, under model.calibration.
        self._calibration, self._rel = calibration, rel

    def __call__(self, x):
        y = self.linear(x)
        cfg, t = self._calibration.config, self._calibration.term(self._rel)
        z = (x @ self.lora_a) @ self.lora_b
        if cfg.variant == "lc" and cfg.mode == "scale":
            z = z * t["p"]
        out = self.scale * z
        if cfg.variant == "lc" and cfg.mode == "bias":
            out = out + x.sum(axis=-1, keepdims=True) * t["p"]
        elif cfg.variant == "lc++":
            out = out + (x @ t["calib_a"]) @ t["calib_b"]
        return y + out.astype(x.dtype)


def module_type(path: str) -> str:
    """'model.layers.3.self_attn.q_proj' -> 'self_attn.q_proj': the key every layer shares."""
    return split_path(path)[2]


def apply(model: nn.Module, merged: LoRA, calibration: Calibration, key=module_type) -> nn.Module:
    """Wrap every module the merged adapter touches; attach the calibration as `model.calibration`.
    `key(path)` names the calibration term a module uses (the paper: its module type, so the
    term is shared by all layers; scripts/lc_sharing_probe.py also tries one per layer)."""
    modules = dict(model.named_modules())
    layers = []
    for path, (a, b) in merged.factors.items():
        base = modules[path]
        base = base.linear if hasattr(base, "lora_a") else base
        layers.append((path, CalibratedLoRALinear(base, a, b, merged.scale, calibration, key(path))))
    model.update_modules(tree_unflatten(layers))
    model.calibration = calibration
    return model


def fold(merged: LoRA, calibration: Calibration) -> LoRA:
    """Fold merge + calibration into one ordinary LoRA (same outputs, same scale)."""
    cfg, s = calibration.config, merged.scale
    out = {}
    for path, (a, b) in merged.factors.items():
        a, b = a.astype(mx.float32), b.astype(mx.float32)
        t = calibration.term(split_path(path)[2])
        if cfg.variant == "lc" and cfg.mode == "scale":  # diag(p) B'A'  ->  b * p
            out[path] = (a, b * t["p"][None, :])
        elif cfg.variant == "lc":  # B'A' + p 1^T  ->  rank r+1: [a | 1], [b ; p/s]
            out[path] = (mx.concatenate([a, mx.ones((a.shape[0], 1))], axis=1),
                         mx.concatenate([b, t["p"][None, :] / s], axis=0))
        else:  # B'A' + P2 P1  ->  rank r+k: [a | calib_a], [b ; calib_b/s]
            out[path] = (mx.concatenate([a, t["calib_a"]], axis=1),
                         mx.concatenate([b, t["calib_b"] / s], axis=0))
    mx.eval(out)
    check_result(out, s, f"the merge folded with the {cfg.variant} calibration")
    meta = {**merged.meta, "calibration": asdict(cfg)}
    return LoRA(out, s, base_model=merged.base_model, base_arch=merged.base_arch,
                source=f"folded {cfg.variant}", meta=meta)


# ---------------------------------------------------------------- files

def save(calibration: Calibration, merged: LoRA, out: str | Path, extra: dict | None = None) -> Path:
    tensors = calibration.tensors()
    cfg = calibration.config
    config = {
        **asdict(cfg),
        "modules": sorted(calibration.shapes),
        "shapes": {k: list(v) for k, v in sorted(calibration.shapes.items())},
        "merge": merged.meta.get("merge", {"method": "linear"}),
        "base_model": merged.base_model,
        "base_arch": merged.base_arch,
        "sources": merged.meta.get("sources", []),
        "num_params": calibration.num_params(),
        "bytes_fp16": 2 * calibration.num_params(),
        **(extra or {}),
    }
    with atomic_dir(out, marker=CONFIG, kind="calibration") as tmp:
        mx.save_safetensors(str(tmp / WEIGHTS), tensors, metadata={"format": "mlx"})
        write_json(tmp / CONFIG, config)
    return Path(out)


def resolve(ref: str | Path) -> Path:
    """A calibration folder, or a Hugging Face repo id holding one, downloaded with huggingface_hub
    as models are (only its two files), so a composition can be shared: -> a local folder."""
    local = Path(ref).expanduser()
    if local.is_dir():
        return local
    ref = str(ref)
    from huggingface_hub import snapshot_download  # here: ~0.3 s that local folders do not need
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        if ref.startswith((".", "/", "~")) or ref.count("/") != 1:
            raise HFValidationError(ref)
        validate_repo_id(ref)
    except HFValidationError:
        raise MlxLcError(f"calibration folder not found: {ref}") from None
    try:
        return Path(snapshot_download(ref, allow_patterns=[CONFIG, WEIGHTS, "README.md"]))
    except Exception as e:  # hub and network errors: one line is enough
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MlxLcError(f"calibration not found: {ref} (no such folder; Hugging Face download failed: {msg})") from None


def read_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_dir():
        raise MlxLcError(f"calibration folder not found: {path}")
    raw = read_json(path / CONFIG)
    # A hand-edited file with the wrong types would otherwise fail later as an internal error.
    where = f"{path / CONFIG}"
    if not isinstance(raw, dict):
        raise MlxLcError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    if not isinstance(raw.get("merge", {}), dict):
        raise MlxLcError(f"{where}: 'merge' must be an object")
    sources = raw.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(x, dict) for x in sources):
        raise MlxLcError(f"{where}: 'sources' must be a list of objects")
    for i, x in enumerate(sources, 1):
        for key in ("path", "sha256"):
            if x.get(key) is not None and not isinstance(x[key], str):
                raise MlxLcError(f"{where}: 'sources' entry {i}: {key!r} must be a string, got {x[key]!r}")
    _check_merge(raw.get("merge", {}), where)
    return raw


def _check_merge(m: dict, where: str) -> None:
    """The recorded merge, field by field: merge() would otherwise fail on a string where a
    number belongs as an internal error, or (unused by the method) carry it silently."""
    method = m.get("method", "linear")
    if not isinstance(method, str) or method not in METHODS:
        raise MlxLcError(f"{where}: 'merge.method' must be one of {', '.join(METHODS)}, got {method!r}")
    weights = m.get("weights")
    if weights is not None and not (isinstance(weights, list) and all(
            not isinstance(w, bool) and isinstance(w, (int, float)) and math.isfinite(w) for w in weights)):
        raise MlxLcError(f"{where}: 'merge.weights' must be a list of finite numbers (or null), got {weights!r}")
    if "density" in m:
        density = number(m["density"], "'merge.density'", where)
        if METHODS[method].uses_density and not 0.0 < density <= 1.0:
            raise MlxLcError(f"{where}: 'merge.density' must be in (0, 1] for {method}, got {density}")
    if m.get("rank") is not None and whole(m["rank"], "'merge.rank'", where) < 1:
        raise MlxLcError(f"{where}: 'merge.rank' must be at least 1 (or null), got {m['rank']}")
    if "seed" in m:
        whole(m["seed"], "'merge.seed'", where)


def check_sources(path: str | Path, loras: list[LoRA]) -> None:
    """The given adapters against those the calibration was trained on, before they are merged:
    merging other adapters with its recorded merge fails first, about weights or ranks."""
    recorded = read_config(path).get("sources", [])
    if recorded and len(recorded) != len(loras):
        raise MlxLcError(f"{path} was trained for {len(recorded)} adapters ({_names(recorded)}), got {len(loras)}")
    _same_adapters(path, recorded, [l.meta.get("sha256") for l in loras])


def _names(sources: list[dict]) -> str:
    return ", ".join(str(x.get("path") or "?") for x in sources)


def _same_adapters(path, recorded: list[dict], given_sha256: list) -> None:
    """The recorded source adapters' hashes against the given ones (order free; unknown skipped)."""
    rec = Counter(x.get("sha256") for x in recorded if x.get("sha256"))
    given = Counter(h for h in given_sha256 if h)
    if rec and given and rec != given:
        raise MlxLcError(f"{path} was trained for other adapters (sha256 of the sources differ): {_names(recorded)}")


def merge_for(path: str | Path, loras: list[LoRA]):
    """-> (merge config, merged adapter, calibration): the adapters merged the way the calibration
    at `path` was trained on (its recorded merge), after checking they are its source adapters.
    What every user of a calibration (generate, fold/fuse, export) does first."""
    check_sources(path, loras)
    recorded = read_config(path).get("merge", {})
    weights = recorded.get("weights")
    if weights is not None and len(weights) != len(loras):
        raise MlxLcError(f"{Path(path) / CONFIG}: 'merge.weights' has {len(weights)} weights for {len(loras)} adapters")
    cfg = MergeConfig(**{k: v for k, v in recorded.items() if k in MergeConfig.__dataclass_fields__})
    merged = merge(loras, cfg)
    return cfg, merged, load(path, merged)


def load(path: str | Path, merged: LoRA) -> Calibration:
    """Load a calibration and check it belongs to this merge (modules, shapes, source adapters)."""
    path = Path(path)
    raw = read_config(path)
    cfg = _config(raw, path / CONFIG)
    _same_adapters(path, raw.get("sources", []), [s.get("sha256") for s in merged.meta.get("sources", [])])
    calib = Calibration(cfg, module_shapes(merged))
    tensors = load_safetensors(path / WEIGHTS)
    expected = calib.tensors()
    errors = shape_mismatches(expected, tensors)
    if errors:
        raise MlxLcError(f"{path} does not fit the merged adapters: " + "; ".join(errors))
    check_tensors(tensors, path / WEIGHTS)
    calib.load_weights(list(tensors.items()))
    return calib


def _config(raw: dict, where: Path) -> CalibrationConfig:
    """The calibration's form from its config file; each bad field named with the file."""
    if "variant" not in raw:
        raise MlxLcError(f"{where}: missing field 'variant'")
    variant, mode = raw["variant"], raw.get("mode", "scale")
    if not isinstance(variant, str) or variant not in VARIANTS:
        raise MlxLcError(f"{where}: 'variant' must be lc or lc++, got {variant!r}")
    if not isinstance(mode, str) or mode not in MODES:
        raise MlxLcError(f"{where}: 'mode' must be scale or bias, got {mode!r}")
    rank = whole(raw.get("rank", 4), "'rank'", where)
    if variant == "lc++" and rank < 1:
        raise MlxLcError(f"{where}: 'rank' must be at least 1, got {rank}")
    return CalibrationConfig(variant, mode, rank)
