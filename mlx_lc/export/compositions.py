"""Compositions for export: parse what the user names, and turn it into low-rank terms.

A composition is written `NAME[:TASK]=PATH[,PATH...]`: the paths are single-task adapter folders
and at most one calibration folder (recognised by its calibration_config.json), e.g.

    --composition sum_es:summarize+es=adapters/summarize,adapters/es,calib/sum_es
    --composition summarize+fr=adapters/summarize,adapters/fr,calib/sum_fr   (TASK defaults to NAME)
    --composition sum_es_folded:summarize+es=folded/sum_es                  (one adapter, used as is)

TASK names the prompt (tasks.Composition); it defaults to NAME when NAME is a task, else to the
task recorded in the calibration. Several adapters are merged as their calibration records (linear
when there is none). A linear or cat merge is kept factored: each single-task LoRA is stored once
and shared by every composition that uses it, and a composition adds only its calibration (p, or
the lc++ pair), a few kilobytes. Other merges are folded into one LoRA per composition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import adapters as adapters_io
from .. import calibration as calib_io
from .. import tasks
from ..adapters import LoRA, split_path
from ..errors import MlxLcError
from ..merge import MergeConfig, merge
from .graph import Composition, LowRankTerm, TensorStore

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+\-]*$")
FACTORED_MERGES = ("linear", "cat")


@dataclass
class CompositionSpec:
    name: str
    task: str | None = None
    adapters: list[Path] = field(default_factory=list)
    calibration: Path | None = None


@dataclass
class Resolved:
    """A composition ready to export, with what is needed to rebuild it in MLX for verification."""

    spec: CompositionSpec
    graph: Composition
    loras: list[LoRA]
    merged: LoRA | None
    calibration: calib_io.Calibration | None

    def apply_to_mlx(self, model) -> None:
        """Attach the same update to an MLX model (the reference the export is checked against)."""
        from ..generate import apply_lora

        if self.calibration is not None:
            calib_io.apply(model, self.merged, self.calibration)
        elif self.merged is not None:
            apply_lora(model, self.merged)


def function_id(name: str) -> str:
    """The identifier used in function names (summarize+es -> summarize_es)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def is_calibration(path: Path) -> bool:
    return (path / calib_io.CONFIG).is_file()


def parse(value: str) -> CompositionSpec:
    """Parse NAME[:TASK]=PATH[,PATH...]."""
    head, sep, paths = value.partition("=")
    if not sep or not head or not paths.strip(","):
        raise MlxLcError(f"composition {value!r}: expected NAME[:TASK]=ADAPTER[,ADAPTER...][,CALIBRATION]",
                         param="composition")
    name, _, task = head.partition(":")
    spec = CompositionSpec(name=name, task=task or None)
    for p in filter(None, (s.strip() for s in paths.split(","))):
        path = Path(p)
        if not path.is_dir():
            raise MlxLcError(f"composition {name}: folder not found: {path}", param="composition")
        if is_calibration(path):
            if spec.calibration is not None:
                raise MlxLcError(f"composition {name}: two calibrations given ({spec.calibration}, {path})",
                                 param="composition")
            spec.calibration = path
        else:
            spec.adapters.append(path)
    if not spec.adapters:
        raise MlxLcError(f"composition {name}: give at least one adapter folder", param="composition")
    return spec


def resolve_task(spec: CompositionSpec) -> str:
    candidates = [spec.task] if spec.task else []
    if not candidates and tasks.is_composition(spec.name):
        candidates = [spec.name]
    if not candidates and spec.calibration is not None:
        cfg = calib_io.read_config(spec.calibration)
        recorded = cfg.get("task") or cfg.get("tasks") or (cfg.get("train") or {}).get("tasks") or []
        recorded = [recorded] if isinstance(recorded, str) else list(recorded)
        candidates = [t for t in recorded if isinstance(t, str) and tasks.is_composition(t)]
        if len(candidates) > 1:
            raise MlxLcError(f"composition {spec.name}: calibration {spec.calibration} was trained on several "
                             f"tasks ({', '.join(candidates)}); name one as NAME:TASK=...")
    if not candidates:
        raise MlxLcError(f"composition {spec.name}: say which task it performs, e.g. summarize+es")
    task = tasks.get(candidates[0])
    if not isinstance(task, tasks.Composition):
        raise MlxLcError(f"composition {spec.name}: task {candidates[0]!r} is not a composition like summarize+es")
    return task.name


def folded_terms(lora: LoRA, store: TensorStore) -> dict[str, list[LowRankTerm]]:
    """One term per module: scale * (x @ a) @ b."""
    out = {}
    for path, (a, b) in lora.factors.items():
        out[path] = [LowRankTerm(a=((store.add(a), 1.0),), b=((store.add(b), float(lora.scale)),))]
    return out


def factored_terms(loras: list[LoRA], method: str, weights: list[float], calib: calib_io.Calibration | None,
                   store: TensorStore) -> dict[str, list[LowRankTerm]]:
    """The merge (and calibration) as terms over the single-task factors, which stay shared.

    linear: s (x sum_i w_i a_i)(sum_i w_i (s_i/s) b_i) = (sum_i w_i x a_i)(sum_i w_i s_i b_i)
    cat:    sum_i w_i s_i (x a_i) b_i
    plus the calibration: * p (lc scale), + p (1^T x) (lc bias), + (x calib_a) calib_b (lc++).
    """
    out = {}
    paths = sorted(set().union(*(l.factors for l in loras)))
    for path in paths:
        users = [(l, w) for l, w in zip(loras, weights) if path in l.factors]
        a_terms = [(store.add(l.factors[path][0]), float(w)) for l, w in users]
        b_terms = [(store.add(l.factors[path][1]), float(w * l.scale)) for l, w in users]
        col = None
        if calib is not None and calib.config.variant == "lc" and calib.config.mode == "scale":
            col = store.add(calib.term(split_path(path)[2])["p"])
        if method == "linear":
            terms = [LowRankTerm(tuple(a_terms), tuple(b_terms), col)]
        else:
            terms = [LowRankTerm((a,), (b,), col) for a, b in zip(a_terms, b_terms)]
        if calib is not None and not (calib.config.variant == "lc" and calib.config.mode == "scale"):
            t = calib.term(split_path(path)[2])
            if calib.config.variant == "lc":  # bias: p (1^T x) is a rank-1 term [1] [p]
                d_in = users[0][0].factors[path][0].shape[0]
                terms.append(LowRankTerm(((store.add(np.ones((d_in, 1))), 1.0),), ((store.add(np.asarray(t["p"])[None, :]), 1.0),)))
            else:  # lc++: the unscaled low-rank pair shared by all layers
                terms.append(LowRankTerm(((store.add(t["calib_a"]), 1.0),), ((store.add(t["calib_b"]), 1.0),)))
        out[path] = terms
    return out


def resolve(spec: CompositionSpec, model, store: TensorStore, model_name: str) -> Resolved:
    """Read, validate and merge the adapters of one composition into low-rank terms."""
    if not _NAME.match(spec.name):
        raise MlxLcError(f"composition name {spec.name!r}: use letters, digits, _ + - (e.g. sum_es)")
    task = resolve_task(spec)
    if not spec.adapters:
        if spec.calibration is not None:
            raise MlxLcError(f"composition {spec.name}: a calibration needs the adapters it was trained on")
        return Resolved(spec, Composition(function_id(spec.name), task, {}, {"kind": "base"}), [], None, None)
    loras = adapters_io.load_for(model, spec.adapters, model_name)
    sources = [str(p) for p in spec.adapters]
    calib = None
    if spec.calibration is not None:
        cfg, merged, calib = calib_io.merge_for(spec.calibration, loras)
    elif len(loras) > 1:
        cfg = MergeConfig("linear")
        # export has no --method: the way out is a merged adapter from `mlx-lc merge`
        merged = merge(loras, cfg, "merge them first (mlx-lc merge --method cat or svd) and export that adapter")
    else:
        cfg, merged = None, loras[0]
    info = {"adapters": sources, "calibration": str(spec.calibration) if spec.calibration else None}
    if cfg is not None and cfg.method in FACTORED_MERGES and len(loras) > 1:
        weights = merged.meta["merge"]["weights"]
        updates = factored_terms(loras, cfg.method, weights, calib, store)
        info.update(kind="factored", merge=cfg.method, weights=weights)
    else:
        folded = calib_io.fold(merged, calib) if calib is not None else merged
        updates = folded_terms(folded, store)
        info.update(kind="folded", merge=cfg.method if cfg else None, rank=folded.rank)
    if calib is not None:
        info["calibration_config"] = {"variant": calib.config.variant, "mode": calib.config.mode,
                                      "rank": calib.config.rank}
    return Resolved(spec, Composition(function_id(spec.name), task, updates, info), loras, merged, calib)
