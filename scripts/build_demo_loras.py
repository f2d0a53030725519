"""Rebuild the single-task LoRAs that ship in mlx_lc/demo_loras (summarize and es: what the
summarize+es sub-task needs, so `mlx-lc demo --quick` trains only its calibration).

    python scripts/build_demo_loras.py            # ~5 min on 2 cores

It builds the default demo's world (seed 0), copies the shipped base and trains the LoRAs with the
demo's own code (`demo.lora_jobs`, `demo.run_jobs`: the default run's settings, seed, rows and
worker processes), then writes each with a fingerprint.json: the base's and the rows' sha256 and
the LoRA settings. The demo copies a shipped LoRA only when its own base, rows and settings give
the same fingerprint, so a change to any of them makes it train the LoRA instead, until this
script is run again.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import mlx_lc  # noqa: F401  (loads the optimised BLAS before mlx)
from mlx_lc import demo
from mlx_lc.errors import MlxLcError
from mlx_lc.io import atomic_dir, write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=demo.SHIPPED_LORAS, help="default: mlx_lc/demo_loras")
    ap.add_argument("--work", type=Path, help="keep the world, the base and the trained LoRAs here")
    ap.add_argument("--task", dest="tasks", action="append", help="single task (repeatable; default: summarize, es)")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args()

    cfg = demo.seeded(demo.preset("default"))
    names = args.tasks or ["summarize", "es"]
    work = args.work or Path(tempfile.mkdtemp(prefix="mlx-lc-loras-"))
    world, base = work / "world", work / "base"
    if not (world / "corpus.txt").exists():
        demo.build_world(cfg, world, progress=not args.quiet)
    if not (base / "pretrain.json").exists():
        shutil.rmtree(base, ignore_errors=True)
        if demo.pretrain_base(cfg, world, base, progress=not args.quiet) != "shipped":
            raise MlxLcError("the shipped base is stale: run scripts/build_demo_base.py first")
    loras = {n: work / "loras" / n for n in names}
    jobs = [j for j in demo.lora_jobs(cfg, base, world, loras, {}) if not (j[1][2] / "adapters.safetensors").exists()]
    demo.run_jobs(jobs, demo.default_workers(), not args.quiet, "LoRAs")
    for name, src in loras.items():
        with atomic_dir(args.out / name, kind="adapter") as tmp:
            for f in demo.LORA_FILES:
                if (src / f).exists():
                    shutil.copy2(src / f, tmp / f)
            write_json(tmp / "fingerprint.json", demo.lora_fingerprint(cfg, base, world / "single" / name))
        meta = json.loads((src / "adapter_config.json").read_text())["mlx_lc"]["result"]
        print(f"wrote {args.out / name}: {meta['steps']} steps, best dev loss {meta['best_val_loss']:.3f} "
              f"at step {meta['best_step']}, {meta['seconds'] / 60:.1f} min")


if __name__ == "__main__":
    try:
        main()
    except MlxLcError as e:
        sys.exit(f"error: {e}")
