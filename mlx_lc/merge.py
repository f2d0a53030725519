"""Merge several LoRA adapters into one, module by module, with a method from `merges`."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

import mlx.core as mx

from .adapters import LoRA
from .checks import check_result, overflow_error
from .errors import MlxLcError
from .merges import METHODS, factorize


@dataclass
class MergeConfig:
    method: str = "linear"
    weights: list[float] | None = None  # default: 1/N each for linear, 1 each otherwise
    density: float = 0.5  # ties / dare / magnitude_prune: fraction of entries kept
    rank: int | None = None  # svd and delta-level methods: output rank (None: sum of ranks)
    seed: int = 0  # dare's random drops


def check_compatible(loras: list[LoRA]) -> None:
    if not loras:
        raise MlxLcError("no adapters given")
    archs = [l.base_arch for l in loras if l.base_arch]
    if any(a != archs[0] for a in archs):
        names = ", ".join(str(l.source) for l in loras)
        raise MlxLcError(f"adapters were made for different base models: {names}")


def default_weights(method: str, n: int) -> list[float]:
    return [1.0 / n] * n if method == "linear" else [1.0] * n


MIXED_RANK_HINT = "use method cat or svd"


def merge(loras: list[LoRA], cfg: MergeConfig | None = None, mixed_rank_hint: str = MIXED_RANK_HINT) -> LoRA:
    """Merge adapters into one LoRA. A single adapter with weight 1 comes back unchanged.
    `mixed_rank_hint` ends the error for a linear merge of mixed ranks: the way out depends on
    the caller (the CLI names its --method; fold and calibrate have none)."""
    cfg = cfg or MergeConfig()
    if cfg.method not in METHODS:
        raise MlxLcError(f"unknown merge method {cfg.method!r}; choose from {', '.join(METHODS)}")
    check_compatible(loras)
    method = METHODS[cfg.method]
    n = len(loras)
    weights = list(cfg.weights) if cfg.weights is not None else default_weights(cfg.method, n)
    if len(weights) != n:
        raise MlxLcError(f"{len(weights)} weights given for {n} adapters")
    if not all(math.isfinite(w) for w in weights):  # a NaN weight writes a NaN adapter
        raise MlxLcError(f"weights must be finite numbers, got {weights}", param="weights")
    if method.uses_density and not 0.0 < cfg.density <= 1.0:
        raise MlxLcError(f"density must be in (0, 1], got {cfg.density}", param="density")
    ranks = [l.rank for l in loras]
    if cfg.method == "linear" and len(set(ranks)) > 1:
        raise MlxLcError(f"linear merge needs adapters of one rank, got ranks {ranks}; {mixed_rank_hint}")
    if cfg.rank is not None and cfg.rank < 1:  # 0 used to mean "the default" silently
        raise MlxLcError(f"rank must be at least 1 (leave it out for the sum of ranks), got {cfg.rank}", param="rank")
    rank = cfg.rank or sum(ranks)
    if method.uses_rank and cfg.rank:
        # Past this every extra column is zero padding (--rank 100000 wrote 782 MB of zeros):
        # svd's exact merge has the sum of ranks; a dense update at most min(in, out) per layer.
        dims = [min(a.shape[0], b.shape[1]) for l in loras for a, b in l.factors.values()]
        most = min(sum(ranks), max(dims)) if method.level == "factor" else max(dims)
        if rank > most:
            raise MlxLcError(f"rank {rank} is more than {cfg.method} can use here (at most {most})", param="rank")
    scale = loras[0].scale  # output scale; other adapters' scales are absorbed into their b

    paths = sorted(set().union(*(l.factors for l in loras)))
    out, worst = {}, 0.0
    for path in paths:
        a_list, b_list = [], []
        for l, r in zip(loras, ranks):
            if path in l.factors:
                a, b = l.factors[path]
                a_list.append(a.astype(mx.float32))
                b_list.append(b.astype(mx.float32) * (l.scale / scale))
            else:  # an adapter that leaves this module alone contributes a zero update
                ref_a, ref_b = next(x.factors[path] for x in loras if path in x.factors)
                a_list.append(mx.zeros((ref_a.shape[0], r)))
                b_list.append(mx.zeros((r, ref_b.shape[1])))
        if method.level == "factor":
            args = (a_list, b_list, weights) + ((rank,) if method.uses_rank else ())
            a, b = method.fn(*args)
        else:
            deltas = [a @ b for a, b in zip(a_list, b_list)]  # unscaled; scale applies after
            kwargs = {"seed": cfg.seed} if method.random else {}
            delta = method.fn(deltas, weights, cfg.density, **kwargs)
            if not mx.isfinite(delta).all().item():  # the SVD below would fail on it, unexplained
                raise overflow_error(f"the {cfg.method} merge", [path])
            a, b = factorize(delta, rank)
            err = mx.linalg.norm(delta - a @ b) / mx.maximum(mx.linalg.norm(delta), 1e-12)
            worst = max(worst, err.item())
        if method.uses_rank and a.shape[1] < rank:  # mlx-lm needs one rank for every module
            pad = rank - a.shape[1]
            a = mx.concatenate([a, mx.zeros((a.shape[0], pad))], axis=1)
            b = mx.concatenate([b, mx.zeros((pad, b.shape[1]))], axis=0)
        out[path] = (a, b)
    mx.eval(out)
    check_result(out, scale, f"the {cfg.method} merge")
    meta = {
        "merge": {**asdict(cfg), "weights": weights, "rank": out[paths[0]][0].shape[1]},
        # absolute, so a calibration found later from another folder can name its adapters
        "sources": [{"path": _where(l.source), "sha256": l.meta.get("sha256")} for l in loras],
    }
    if method.level == "delta":
        meta["merge"]["refactor_max_rel_error"] = worst
    return LoRA(out, scale, base_model=loras[0].base_model, base_arch=loras[0].base_arch,
                source=f"{cfg.method} merge", meta=meta)


def _where(source: str | None) -> str | None:
    return os.path.abspath(source) if source and os.path.exists(source) else source
