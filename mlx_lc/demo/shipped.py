"""The artifacts mlx-lc ships for the demo (its pretrained base, two single-task LoRAs), the
fingerprints that say which run they were made for, and copying them into a run."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

from ..io import sha256
from ..tiny import write_tiny_model
from ..training.pretrain import PretrainConfig, pretrain
from .config import DemoConfig, jsonable

# Reading the dialogue is the skill a tiny base learns last (docs/EXPERIMENTS.md, scripts/copy_probe.py): the
# default base needs ~10,000 steps, about 50 minutes on one core, for its gap to reach ~1.8 nats.
# So mlx-lc ships that base (1.9 MB, made by scripts/build_demo_base.py with the code below) and
# the demo starts from it when the world's corpus, the model and the pretraining settings are
# exactly the ones it was made with; any other seed, preset or --pretrain-base trains its own.
SHIPPED_BASE = Path(__file__).parent.parent / "demo_base"


def base_fingerprint(cfg: DemoConfig, corpus: Path) -> dict:
    """What a base depends on: the corpus bytes, the model shape and init, the pretraining run."""
    return jsonable({"corpus_sha256": sha256(corpus), "model": asdict(cfg.model), "pretrain": asdict(cfg.pretrain)})


def pretrain_base(cfg: DemoConfig, world: Path, base: Path, progress: bool = True, log=print,
                  shipped: Path | None = SHIPPED_BASE) -> str:
    """Put the base model for `cfg` (already seeded) in `base`: a copy of the shipped base when its
    fingerprint matches, else pretrained here from scratch. -> "shipped" or "pretrained"."""
    corpus = world / "corpus.txt"
    if shipped is not None and cfg.use_shipped_base and (shipped / "fingerprint.json").exists():
        if json.loads((shipped / "fingerprint.json").read_text()) == base_fingerprint(cfg, corpus):
            steps = json.loads((shipped / "pretrain.json").read_text())["result"]["steps"]
            log(f"base model: the one shipped in {shipped} ({steps:,} pretraining steps on this very corpus; "
                "--pretrain-base trains it here)")
            tmp = base.with_name(base.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(shipped, tmp)
            tmp.rename(base)
            return "shipped"
    log(f"pretraining the base model ({cfg.model.hidden} hidden, {cfg.model.layers} layers) on {corpus}")
    write_tiny_model(base, cfg.model, corpus.read_text(encoding="utf-8").splitlines())
    pretrain(base, corpus, PretrainConfig(fit=cfg.pretrain), progress=progress)
    shutil.rmtree(base / ".pretrain", ignore_errors=True)
    return "pretrained"


# The single-task LoRAs that summarize+es needs ship too (made by scripts/build_demo_loras.py with
# the code above), so `--quick` trains only its calibration and reports what the default run does
# on that sub-task. A run copies one only when its base, rows and LoRA settings are exactly the
# ones it was made with, and trains it otherwise.
SHIPPED_LORAS = Path(__file__).parent.parent / "demo_loras"
LORA_FILES = ["adapters.safetensors", "adapter_config.json", "history.json", "loss.png"]


def lora_fingerprint(cfg: DemoConfig, base: Path, data: Path) -> dict:
    """What a single-task LoRA depends on: the base's weights and tokenizer, its rows, its settings."""
    return jsonable({"base_sha256": {f: sha256(base / f) for f in ("model.safetensors", "tokenizer.json")},
                      "rows_sha256": {f: sha256(data / f) for f in ("train.jsonl", "valid.jsonl")},
                      "lora": asdict(cfg.lora)})


def copy_shipped_loras(cfg: DemoConfig, base: Path, world: Path, loras: dict[str, Path], log=print,
                       shipped: Path | None = SHIPPED_LORAS) -> list[str]:
    """Copy each shipped LoRA whose fingerprint matches this run (`cfg` already seeded) into its
    place in `loras`, where none is yet. -> the names copied."""
    copied = []
    for name, out in loras.items():
        src = shipped / name if shipped is not None else None
        if (out / "adapters.safetensors").exists() or not cfg.use_shipped_base or src is None \
                or not (src / "fingerprint.json").exists():
            continue
        if json.loads((src / "fingerprint.json").read_text()) != lora_fingerprint(cfg, base, world / "single" / name):
            continue
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        shutil.rmtree(out, ignore_errors=True)  # a LoRA run stopped before it wrote its adapter
        tmp.rename(out)
        copied.append(name)
    if copied:
        log(f"single-task LoRAs {', '.join(copied)}: the ones shipped in {shipped} (made for this very base, "
            "rows and settings)")
    return copied

