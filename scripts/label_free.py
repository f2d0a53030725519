"""Label-free LC++ on the benchmark world: calibrations trained on the multi-step chain's outputs
(no compositional label anywhere in their training) against LC++ trained on gold targets and the
multi-step chain itself, all judged on the same held-out dialogues.

It reuses a finished `mlx-lc demo` run (its base, single-task LoRAs, gold LC++ and multi-step
scores) and adds, per sub-task, targets from the chain for the same training and dev inputs the
gold LC++ saw, an LC++ of the same settings and budget trained on them, and its judge scores:

    mlx-lc demo --out runs/demo                      # or any run holding LC++ and multi-step
    python scripts/label_free.py --demo runs/demo --out results/label-free

Gold answers are read for scoring only: the targets' own quality against gold is reported, never
used to pick or weight them.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import mlx_lc  # noqa: F401  (OpenBLAS before mlx)
from mlx_lc import adapters as adapters_io
from mlx_lc import calibration as calib_io
from mlx_lc import model_folder, tasks
from mlx_lc.calibrate import CalibrateConfig, calibrate
from mlx_lc.calibration import CalibrationConfig
from mlx_lc.demo.config import DemoConfig, seeded
from mlx_lc.evaluate import generate_batch, score, summarize
from mlx_lc.generate import apply_lora, remove_adapters
from mlx_lc.io import atomic_write_text
from mlx_lc.merge import MergeConfig, merge
from mlx_lc.targets import TargetsConfig, write_targets
from mlx_lc.training.rows import read_jsonl

GROUP = {"summarize+es": "sum+trans", "summarize+professional": "sum+tone", "reply+fr": "reply+trans",
         "reply+casual": "reply+tone"}


def jsonl(path: Path, rows) -> Path:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def brief(s: dict) -> dict:
    return {k: s[k] for k in ("judge_pass", "fact_acc", "language_ok", "tone_ok", "score")}


def targets_for(base, comp, adapters, rows, work: Path, name: str, max_tokens: int, keep: float) -> list[dict]:
    inputs = jsonl(work / f"{name}-inputs.jsonl", [{"input": r["input"]} for r in rows])
    out = write_targets(str(base), comp, adapters, inputs, work / f"{name}-cal",
                        TargetsConfig(max_tokens, 64, keep=keep), progress=True)
    return read_jsonl(out)


def inputs_for(demo_work: Path, sub: str, seed: int, n_inputs: int, mine: Path) -> tuple[list[dict], list[dict]]:
    """The training and dev inputs: the gold LC++'s own (n_inputs = its row count), or a larger
    world of the same seed, whose held-out test dialogues are the demo's (checked)."""
    world = demo_work / "world" / "comp" / sub
    train, valid = read_jsonl(world / "train.jsonl"), read_jsonl(world / "valid.jsonl")
    if n_inputs <= len(train):
        return train[:n_inputs], valid
    from mlx_lc.demo.config import preset
    from mlx_lc.demo.pipeline import build_world

    big = mine / "world"
    if not (big / "benchmark.json").exists():
        cfg = replace(preset("default", subtasks=[sub], seed=seed), n_comp=n_inputs,
                      n_valid=round(len(valid) * n_inputs / len(train)))
        build_world(cfg, big, progress=False)
    if read_jsonl(big / "comp" / sub / "test.jsonl") != read_jsonl(world / "test.jsonl"):
        raise SystemExit(f"{big}: its test rows differ from the demo's; cannot compare")
    return read_jsonl(big / "comp" / sub / "train.jsonl"), read_jsonl(big / "comp" / sub / "valid.jsonl")


def run_subtask(demo: Path, seed: int, sub: str, out: Path, cfg: DemoConfig, n_inputs: int, keep: float,
                steps: int | None = None) -> dict:
    work = demo / "work" / f"seed{seed}"
    base, world = work / "base", work / "world" / "comp" / sub
    comp = tasks.get(sub)
    adapters = [work / "loras" / t.name for t in comp.steps]
    mine = out / "work" / f"seed{seed}" / sub
    mine.mkdir(parents=True, exist_ok=True)
    split = {}
    train_in, valid_in = inputs_for(work, sub, seed, n_inputs, mine)
    for name, gold in (("train", train_in), ("valid", valid_in)):
        got = targets_for(base, comp, adapters, gold, mine, name, cfg.max_tokens, keep)
        by_input = {r["input"]: r for r in gold}
        # quality of the targets, measured against gold the calibration never sees
        split[name] = brief(next(iter(summarize(score([by_input[r["input"]] for r in got],
                                                      [r["completion"] for r in got])).values())))
        split[name].update(rows=len(got), inputs=len(gold))
        jsonl(mine / "data" / f"{name}.jsonl", [{k: r[k] for k in ("prompt", "completion", "task")} for r in got])
    cal = mine / "lc++ label-free"
    if not (cal / "calibration.safetensors").exists():
        ccfg = CalibrateConfig(calibration=replace(CalibrationConfig("lc++", rank=4), seed=seed),
                               fit=replace(cfg.calib, lr=cfg.calib_lr["lc++"], iters=steps))
        calibrate(str(base), adapters, mine / "data", cal, ccfg, progress=True)

    scored = mine / "test.lc++ label-free.jsonl"
    if not scored.exists():
        model, tok = model_folder.load(str(base))
        model.eval()
        loras = [adapters_io.read(a) for a in adapters]
        merged = merge(loras, MergeConfig("linear"))
        apply_lora(model, calib_io.fold(merged, calib_io.load(cal, merged)))
        test = read_jsonl(world / "test.jsonl")
        jsonl(scored, score(test, generate_batch(model, tok, [r["prompt"] for r in test], cfg.max_tokens,
                                                 cfg.eval_batch)))
        remove_adapters(model)
    result = {"lc++ label-free": brief(next(iter(summarize(read_jsonl_any(scored)).values())))}
    for method in ("multi-step", "lc++"):
        path = work / "eval" / f"{sub}.{method}.jsonl"
        if path.exists():  # the demo scores them last: a run still training has none yet
            result[method] = brief(next(iter(summarize(read_jsonl_any(path)).values())))
    fit = json.loads((cal / "calibration_config.json").read_text())["result"]
    return {"scores": result, "targets": split, "fit": fit, "inputs": n_inputs, "keep": keep, "steps": steps}


def read_jsonl_any(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _n(x, digits=0) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def report(results: dict, out: Path) -> None:
    subs = list(results["subtasks"])
    lines = ["# Label-free LC++ on the benchmark world", "",
             "LC++ trained on what the multi-step chain writes for the training inputs (no compositional "
             "label used), beside LC++ trained on gold targets and multi-step itself: judge pass % on "
             f"{results['n_test']} held-out dialogues per sub-task, seed {results['seed']}.", "",
             f"Command: `{results['command']}`, on a finished `mlx-lc demo` run (here one that trained LC++ "
             "alone: `python -c 'from mlx_lc import demo; demo.run(demo.preset(\"default\", calibrations=[\"lc++\"], "
             "joint_expert=False), \"runs/demo\")'`). The label-free calibrations use the demo's LC++ settings "
             "(rank 4, lr 5e-3, batch 16, 4 epochs, 600 steps) on the same training and dev inputs as LC++ on gold.", "",
             "| sub-task (group) | multi-step (2 passes) | LC++ on gold | LC++ label-free | label-free / multi-step |",
             "|---|---|---|---|---|"]
    for sub in subs:
        s = results["subtasks"][sub]["scores"]
        ms, gold, lf = (100 * s[m]["judge_pass"] if m in s else None for m in ("multi-step", "lc++", "lc++ label-free"))
        ratio = f"{100 * lf / ms:.0f}%" if ms else "n/a"
        lines.append(f"| {sub} ({GROUP.get(sub, '')}) | {_n(ms)} | {_n(gold)} | **{lf:.0f}** | {ratio} |")
    lines += ["", "Fact accuracy % (who, what, where, when):", "",
              "| sub-task | multi-step | LC++ on gold | LC++ label-free |", "|---|---|---|---|"]
    for sub in subs:
        s = results["subtasks"][sub]["scores"]
        lines.append(f"| {sub} | " + " | ".join(_n(100 * s[m]["fact_acc"] if m in s else None, 1)
                                                 for m in ("multi-step", "lc++", "lc++ label-free")) + " |")
    lines += ["", "The targets the chain wrote (the surest fraction kept of the inputs given), judged against "
              "the gold answers for this report only:", "",
              "| sub-task | inputs | kept | judge pass % | facts % | dev rows | judge pass % |",
              "|---|---|---|---|---|---|---|"]
    for sub in subs:
        t = results["subtasks"][sub]["targets"]
        lines.append(f"| {sub} | {t['train']['inputs']} | {t['train']['rows']} | {100 * t['train']['judge_pass']:.0f} | "
                     f"{100 * t['train']['fact_acc']:.1f} | {t['valid']['rows']} | {100 * t['valid']['judge_pass']:.0f} |")
    lines += ["", f"Machine: {results['machine']}. The sub-tasks ran side by side with other work and a rerun "
              "reuses finished targets, calibrations and scores, so no times are reported."]
    atomic_write_text(out / "README.md", "\n".join(lines) + "\n")
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    methods = ("multi-step", "lc++", "lc++ label-free")
    labels = ("multi-step (2 passes)", "LC++ on gold", "LC++ label-free")
    fig, ax = plt.subplots(figsize=(8, 3.6))
    width = 0.27
    for i, (m, label) in enumerate(zip(methods, labels)):
        ax.bar([j + (i - 1) * width for j in range(len(subs))],
               [100 * results["subtasks"][s]["scores"].get(m, {"judge_pass": 0})["judge_pass"] for s in subs],
               width, label=label)
    ax.set_xticks(range(len(subs)), subs)
    ax.set_ylabel("judge pass %")
    ax.set_ylim(0, 118)  # room above the bars for the legend
    ax.set_yticks(range(0, 101, 20))
    ax.legend(loc="upper center", ncol=3, fontsize=8)
    ax.set_title("Label-free LC++ vs gold LC++ vs multi-step (benchmark world)")
    fig.tight_layout()
    fig.savefig(out / "results.png", dpi=120)


def main() -> None:
    import platform
    import sys

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--demo", required=True, type=Path, help="A finished mlx-lc demo --out (with LC++ trained).")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--subtask", action="append", help="Default: the demo run's sub-tasks.")
    ap.add_argument("--inputs", type=int, help="Training inputs (default: the gold LC++'s; more come from a "
                    "larger world of the same seed, with the same test dialogues).")
    ap.add_argument("--keep", type=float, default=1.0, help="Fraction of the targets kept, surest first.")
    ap.add_argument("--steps", type=int, help="Optimizer steps (default: the demo's epochs over the rows kept; "
                    "give the gold LC++'s step count to train more rows on the same budget).")
    args = ap.parse_args()
    demo_cfg = json.loads((args.demo / "work" / f"seed{args.seed}" / "demo_config.json").read_text())
    cfg = seeded(replace(DemoConfig(), seed=args.seed, max_tokens=demo_cfg["max_tokens"],
                         eval_batch=demo_cfg["eval_batch"]))
    subs = args.subtask or demo_cfg["subtasks"]
    results = {"command": "python scripts/label_free.py " + " ".join(sys.argv[1:]), "seed": args.seed,
               "n_test": len(read_jsonl(args.demo / "work" / f"seed{args.seed}" / "world" / "comp" / subs[0] / "test.jsonl")),
               "machine": f"{platform.machine()}, {platform.system()}", "subtasks": {}}
    for sub in subs:
        n = args.inputs or demo_cfg["n_comp"]
        results["subtasks"][sub] = run_subtask(args.demo, args.seed, sub, args.out, cfg, n, args.keep, args.steps)
        print(sub, json.dumps(results["subtasks"][sub]["scores"]), flush=True)
        report(results, args.out)


if __name__ == "__main__":
    main()
