"""`mlx-lc demo`: the paper's comparison, end to end, on a laptop CPU.

Builds the synthetic world (mlx_lc.world), pretrains a tiny base model on its unlabelled corpus
(or copies the one mlx-lc ships for it), trains the single-task LoRAs the chosen sub-tasks need,
and per sub-task trains the joint expert and the calibrations (LC scale, LC bias, LC++), then
scores every method on the held-out test frames the same way (mlx_lc.evaluate). Results:
results.json, results.md (the paper's layout, its numbers beside ours), results.png and the loss
curves.

config: settings and presets; shipped: the shipped base and LoRAs; workers: training in worker
processes; pipeline: the run; report: the results folder. Modules depend in that order
(report on config only), so none imports another back.
"""

from .config import (CALIB_FIT, CALIBRATIONS, DEFAULT_SUBTASKS, MERGES, METHODS, PRESETS, DemoConfig, preset,
                     seeded)
from .pipeline import build_world, evaluate_all, lora_jobs, rewrite_report, run, run_seed, sample_rows
from .shipped import (LORA_FILES, SHIPPED_BASE, SHIPPED_LORAS, base_fingerprint, copy_shipped_loras, lora_fingerprint,
                      pretrain_base)
from .workers import ToQueue, WorkerLines, default_workers, run_jobs

__all__ = ["CALIB_FIT", "CALIBRATIONS", "DEFAULT_SUBTASKS", "MERGES", "METHODS", "PRESETS", "DemoConfig", "preset",
           "seeded", "build_world", "sample_rows", "evaluate_all", "lora_jobs", "rewrite_report", "run", "run_seed", "LORA_FILES",
           "SHIPPED_BASE", "SHIPPED_LORAS", "base_fingerprint", "copy_shipped_loras", "lora_fingerprint",
           "pretrain_base", "ToQueue", "WorkerLines", "default_workers", "run_jobs"]
