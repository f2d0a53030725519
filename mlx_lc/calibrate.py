"""Train a Learnable Calibration on compositional data: base model and task LoRAs frozen,
only `model.calibration` (shared by all layers) learns.

Start: the linear (factor-mean) merge of the task LoRAs, wrapped by `calibration.apply`; every
variant starts as exactly that merge (p = 1, p = 0, or calib_b = 0), so step 0 is the merge.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn

from . import adapters as adapters_io
from . import calibration as calib_io
from . import model_folder
from .calibration import Calibration, CalibrationConfig
from .errors import MlxLcError
from .training.fit import FitConfig, FitResult, fit, run_folder
from .io import sha256
from .merge import MergeConfig, merge
from .model_folder import model_id
from .outputs import move_into
from .training.rows import encode_rows, load_splits
from .outputs import check_out, check_out_dir, check_out_path
from .store import Store
from .targets import FILE as TARGETS_FILE
from .targets import TargetsConfig, cache_dir, describe, write_targets
from .tasks import Composition, get

# The settings the demo measured LC++ with (rank 4; README, results/): on its summarize+es task,
# 4 epochs at lr 5e-3, batch 16, scored judge 76%, where lc at 1 epoch, lr 5e-4, batch 4 scored 0%.
DEFAULT_CALIBRATION = CalibrationConfig("lc++", rank=4)
DEFAULT_FIT = FitConfig(lr=5e-3, batch_size=16, epochs=4.0, patience=3, val_examples=100)


@dataclass
class CalibrateConfig:
    calibration: CalibrationConfig = field(default_factory=lambda: replace(DEFAULT_CALIBRATION))
    merge: MergeConfig = field(default_factory=MergeConfig)  # the paper: linear (factor mean)
    fit: FitConfig = field(default_factory=lambda: replace(DEFAULT_FIT))


def prepare(model: nn.Module, loras: list, cfg: CalibrateConfig):
    """Merge, wrap the layers, and leave only the calibration trainable. -> (merged, calibration)."""
    merged = merge(loras, cfg.merge, "a calibration is trained on their linear merge: use adapters of one rank")
    calib = Calibration(cfg.calibration, calib_io.module_shapes(merged))
    calib_io.apply(model, merged, calib)
    model.freeze()
    model.calibration.unfreeze()
    return merged, calib


def _setup(model, model_path: str, loras: list, cfg: CalibrateConfig) -> dict:
    """What a checkpoint's calibration belongs to: the base, the adapters (by file hash), the merge
    and the calibration's form; resuming with any of them changed would train a different thing."""
    c = cfg.calibration
    form = {"variant": c.variant, **({"mode": c.mode} if c.variant == "lc" else {"rank": c.rank})}
    return {"kind": "calibration", "base_model": model_id(model_path), "base_arch": adapters_io.model_arch(model),
            "adapters": [_weights_hash(lora) for lora in loras], "merge": asdict(cfg.merge), **form}


def _weights_hash(lora) -> str:
    # of the file itself: meta["sha256"] may be one copied from the adapter it was made from
    return sha256(adapters_io.weights_file(lora.source))[:16]


def calibrate(model_path: str, adapter_paths: list[str | Path], data: str | Path, out: str | Path,
              cfg: CalibrateConfig | None = None, resume: bool = False, progress: bool = True,
              keep: dict | None = None, record: dict | None = None) -> FitResult:
    """Train a calibration for the merge of `adapter_paths` on `data`; write it to `out`.
    `keep`: {name: file} copied into `out` with it; `record`: more for its config's "train"."""
    cfg = cfg or CalibrateConfig()
    cfg.fit.validate()
    if len(adapter_paths) < 2:
        raise MlxLcError(f"a calibration composes at least two adapters (primary, then secondary); got {len(adapter_paths)}")
    out = Path(out)
    with run_folder(out, "calibration", [model_path, *adapter_paths, data], resume) as tmp:
        model, tok = model_folder.load(model_path)
        loras = adapters_io.load_for(model, adapter_paths, model_path)
        train_rows, valid_rows = load_splits(data, seed=cfg.fit.seed)
        merged, calib = prepare(model, loras, cfg)
        result = fit(model, encode_rows(tok, train_rows), encode_rows(tok, valid_rows), cfg.fit, out=tmp,
                     resume=resume, progress=progress, desc=f"calibrate {out.name}",
                     setup=_setup(model, model_path, loras, cfg))
        if mx.distributed.init().rank() == 0:
            extra = {"train": {"fit": asdict(cfg.fit), "data": str(data), "n_train": len(train_rows),
                               "n_valid": len(valid_rows), "tasks": sorted({r.get("task", "?") for r in train_rows}),
                               **(record or {})},
                     "result": result.meta()}
            merged.base_model = model_id(model_path)  # what it was trained on, as `generate -c` finds it
            move_into(tmp, lambda part: calib_io.save(model.calibration, merged, part, extra))
            for name, src in (keep or {}).items():
                shutil.copyfile(src, tmp / name)
            result.write_curves(tmp, f"calibration {out.name} ({cfg.calibration.variant}"
                                     f"{' ' + cfg.calibration.mode if cfg.calibration.variant == 'lc' else ''})")
    return result


def calibrate_task(store: Store, name: str, data: str | Path | None = None, inputs: str | Path | None = None,
                   out: str | Path | None = None, cfg: CalibrateConfig | None = None,
                   targets: TargetsConfig | None = None, resume: bool = False, progress: bool = True,
                   model: str | None = None, adapters: list | None = None):
    """Calibrate composition `name` on gold rows (`data`), or on the targets its multi-step chain
    writes for `inputs` (label-free). With no `adapters`, the store's composition: its tasks'
    adapters and base model, and the result is registered there (default `out`: the store's).
    -> (FitResult, the calibration folder, registered in the store?)"""
    if (data is None) == (inputs is None):
        raise MlxLcError("give the compositional rows (data) or the inputs alone (inputs), one of them",
                         mentions=("data", "inputs"))
    from_store = not adapters
    if not from_store:
        if model is None or out is None:
            raise MlxLcError("with adapters, give the model and the out folder too", mentions=("model", "out"))
        task = get(name, store)
        if not isinstance(task, Composition) or len(task.steps) != len(adapters):
            raise MlxLcError(f"task {name} must be a composition of {len(adapters)} tasks, one per adapter, "
                             "in the order they apply", param="task")
    else:
        if model is not None:
            raise MlxLcError(f"give the adapters with the model, or neither (the store's for {name})")
        found = store.resolve(name)
        task, model, adapters = found.task, found.model, found.adapters
        if not isinstance(task, Composition):
            raise MlxLcError(f"{name} is a single task; a calibration is for a composition like {name}+OTHER")
    out = Path(out) if out is not None else store.calibration_dir(name)
    check_out_path(out)
    check_out_dir(out, calib_io.CONFIG, "calibration")  # before minutes of generating targets
    check_out(out, [model, *adapters, *(p for p in (data, inputs) if p is not None)])
    keep, record = {}, {}
    if inputs is not None:
        targets = targets or TargetsConfig()
        data = write_targets(model, task, adapters, inputs, out, targets, progress)
        keep = {TARGETS_FILE: data}
        record = {"targets": describe(targets, inputs, sum(1 for _ in open(data, encoding="utf-8")))}
    result = calibrate(model, adapters, data, out, cfg, resume, progress, keep, record)
    if inputs is not None:
        shutil.rmtree(cache_dir(out), ignore_errors=True)
    if from_store:
        store.update_composition(name, calibration=str(Path(os.path.abspath(out))), base_model=model_id(model),
                                 trained={"dev_loss": result.best_val, "steps": result.steps,
                                          "data": str(inputs if inputs is not None else data),
                                          "label_free": inputs is not None})
    return result, out, from_store
