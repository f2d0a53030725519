"""Rebuild the base model that ships in mlx_lc/demo_base (what `mlx-lc demo` starts from).

    OPENBLAS_NUM_THREADS=1 python scripts/build_demo_base.py            # ~50 min on one core

It builds the default demo's world (seed 0), pretrains the default base on its corpus with the
demo's own code (`demo.pretrain_base`, settings `DemoConfig.pretrain`) and writes the model with a
fingerprint.json: the corpus sha256 and the model and pretraining settings. The demo copies the
shipped base only when its own world and settings give the same fingerprint, so a change to the
corpus or to those settings makes it pretrain instead, until this script is run again.
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

FILES = ["config.json", "mlx_lc_tiny.json", "model.safetensors", "model.safetensors.index.json", "tokenizer.json",
         "tokenizer_config.json", "pretrain.json", "history.json", "loss.png"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=demo.SHIPPED_BASE, help="default: mlx_lc/demo_base")
    ap.add_argument("--work", type=Path, help="keep the world and the training checkpoints here")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args()

    cfg = demo.seeded(demo.preset("default"))
    work = args.work or Path(tempfile.mkdtemp(prefix="mlx-lc-base-"))
    world, base = work / "world", work / "base"
    if not (world / "corpus.txt").exists():
        demo.build_world(cfg, world, progress=not args.quiet)
    if not (base / "pretrain.json").exists():
        shutil.rmtree(base, ignore_errors=True)
        demo.pretrain_base(cfg, world, base, progress=not args.quiet, shipped=None)
    with atomic_dir(args.out, marker="config.json", kind="model folder") as tmp:
        for name in FILES:
            if (base / name).exists():
                shutil.copy2(base / name, tmp / name)
        write_json(tmp / "fingerprint.json", demo.base_fingerprint(cfg, world / "corpus.txt"))
    meta = json.loads((base / "pretrain.json").read_text())["result"]
    print(f"wrote {args.out}: {meta['steps']:,} steps, best dev loss {meta['best_val_loss']:.3f} "
          f"at step {meta['best_step']:,}, {meta['seconds'] / 60:.1f} min")


if __name__ == "__main__":
    try:
        main()
    except MlxLcError as e:
        sys.exit(f"error: {e}")
