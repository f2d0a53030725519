"""Probe: what limits LC's vector calibration on the demo's tiny model, its form (a scale on the
merged update) or its sharing by all layers?

Trains one calibration on a finished demo run's artifacts, exactly as the demo trains LC scale
(same merge, rows, seed, 4 epochs, lr 3e-2; LC++ lr 5e-3), in one of three forms, then scores it
on the sub-task's 100 test dialogues with the demo's judge:

  shared     LC scale as in the paper: one vector per module type, shared by all layers
  per-layer  the same form with a vector per module type *per layer* (layers x the parameters)
  lc++r1     LC++ with rank 1, shared by all layers (additive, about 2x LC scale's parameters)

    python scripts/lc_sharing_probe.py /tmp/s17/seed2/work/seed2 summarize+es per-layer

Prints one JSON line (parameters, best dev loss, judge, facts per slot). Not part of the demo:
per-layer calibration is not the paper's method.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import mlx_lc  # noqa: F401  (loads an optimised BLAS before mlx on Linux)

from mlx_lc import adapters as adapters_io
from mlx_lc import calibration as C
from mlx_lc import model_folder
from mlx_lc import tasks
from mlx_lc.adapters import split_path
from mlx_lc.demo import CALIB_FIT
from mlx_lc.errors import MlxLcError
from mlx_lc.evaluate import generate_batch, score, summarize
from mlx_lc.training.fit import fit
from mlx_lc.io import read_json
from mlx_lc.merge import MergeConfig, merge
from mlx_lc.training.rows import encode_rows, load_splits, read_jsonl

FORMS = {"shared": (C.CalibrationConfig("lc", "scale"), 3e-2),
         "per-layer": (C.CalibrationConfig("lc", "scale"), 3e-2),
         "lc++r1": (C.CalibrationConfig("lc++", rank=1), 5e-3)}


def main(work: Path, subtask: str, form: str) -> dict:
    seed = read_json(work / "demo_config.json")["seed"] if (work / "demo_config.json").exists() else 0
    comp = tasks.get(subtask)
    model, tok = model_folder.load(str(work / "base"))
    loras = [adapters_io.read(work / "loras" / t.name) for t in (comp.primary, comp.secondary)]
    merged = merge(loras, MergeConfig("linear"))
    cfg, lr = FORMS[form]
    cfg = replace(cfg, seed=seed)
    shapes = C.module_shapes(merged)
    key = C.module_type
    if form == "per-layer":  # the calibration's module types become (layer, module type) pairs
        layers = sorted({split_path(p)[1] for p in merged.factors})
        shapes = {f"l{i}.{rel}": sh for i in layers for rel, sh in shapes.items()}
        key = lambda p: f"l{split_path(p)[1]}.{C.module_type(p)}"  # noqa: E731
    calib = C.Calibration(cfg, shapes)
    C.apply(model, merged, calib, key)
    model.freeze()
    model.calibration.unfreeze()
    data = work / "world" / "comp" / subtask
    train, valid = load_splits(data, seed=seed)
    t = time.perf_counter()
    res = fit(model, encode_rows(tok, train), encode_rows(tok, valid), replace(CALIB_FIT, lr=lr, seed=seed),
              progress=False)
    seconds = time.perf_counter() - t
    model.eval()
    rows = read_jsonl(data / "test.jsonl")
    s = next(iter(summarize(score(rows, generate_batch(model, tok, [r["prompt"] for r in rows], 64, 64))).values()))
    return {"subtask": subtask, "form": form, "seed": seed, "params": calib.num_params(),
            "steps": res.steps, "best_step": res.best_step, "best_val": round(res.best_val, 4),
            "fit_seconds": round(seconds), "judge": s["judge_pass"], "facts": s["fact_acc"], "slots": s["slots"],
            "language_ok": s["language_ok"], "tone_ok": s["tone_ok"]}


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[3] not in FORMS:
        sys.exit(f"usage: python {sys.argv[0]} DEMO_WORK_SEED_DIR SUBTASK {{{','.join(FORMS)}}}")
    try:
        print(json.dumps(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3])), flush=True)
    except MlxLcError as e:
        sys.exit(f"error: {e}")
