"""`mlx-lc demo`: the paper's comparison, end to end, on a laptop CPU.

Builds the synthetic world (mlx_lc.world), pretrains a tiny base model on its unlabelled corpus,
trains the single-task LoRAs the chosen sub-tasks need, and per sub-task trains the joint expert
and the calibrations (LC scale, LC bias, LC++), then scores every method on the held-out test
frames the same way (mlx_lc.evaluate). Results: results.json, results.md (the paper's layout,
its numbers beside ours), results.png and the loss curves.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

from .. import adapters as adapters_io
from .. import calibration as calib_io
from .. import model_folder, tasks
from ..calibrate import CalibrateConfig
from ..errors import MlxLcError
from ..evaluate import EvalConfig, generate_batch, multi_step, pct, score, summarize
from ..generate import apply_lora, remove_adapters
from ..io import atomic_write_text, read_json
from ..merge import MergeConfig, merge
from ..training.rows import read_jsonl
from ..world import build_benchmark
from ..world.dataset import VERSION
from .config import CALIBRATIONS, MERGES, METHODS, DemoConfig, jsonable, preset, seeded
from .report import write_results
from .shipped import copy_shipped_loras, pretrain_base
from .workers import default_workers, run_jobs

class Clock:
    def __init__(self):
        self.t0, self.stages = time.perf_counter(), {}

    def stage(self, name: str, since: float) -> None:
        self.stages[name] = round(self.stages.get(name, 0.0) + time.perf_counter() - since, 1)

    @property
    def total(self) -> float:
        return round(time.perf_counter() - self.t0, 1)


def run_seed(cfg: DemoConfig, work: Path, progress: bool = True, log=print, workers: int = 1) -> dict:
    """The whole pipeline for one seed in `work`. -> {"scores", "single", "params", "times", ...}."""
    cfg = seeded(cfg)
    clock = Clock()
    comps = [tasks.get(s) for s in cfg.subtasks]
    singles = sorted({c.primary.name for c in comps} | {c.secondary.name for c in comps},
                     key=lambda t: list(tasks.SINGLE).index(t))

    t = time.perf_counter()
    world = work / "world"
    _check_reuse(cfg, work)
    if not (world / "corpus.txt").exists():
        build_world(cfg, world, progress)
    clock.stage("world", t)

    t = time.perf_counter()
    base = work / "base"
    if not (base / "pretrain.json").exists():
        pretrain_base(cfg, world, base, progress, log)
    clock.stage("pretrain", t)

    # Every LoRA and joint expert needs only the base; every calibration needs only its two LoRAs.
    # So they train in two waves of independent jobs, `workers` at a time.
    t = time.perf_counter()
    loras = {name: work / "loras" / name for name in singles}
    joints = {c.name: work / "joint" / c.name for c in comps} if cfg.joint_expert else {}
    copy_shipped_loras(cfg, base, world, loras, log)
    jobs = lora_jobs(cfg, base, world, loras, joints)
    run_jobs([j for j in jobs if not (j[1][2] / "adapters.safetensors").exists()], workers, progress,
             "LoRAs and joint experts")
    clock.stage("LoRAs and joint experts", t)

    t = time.perf_counter()
    calibs: dict[str, dict[str, Path]] = {c.name: {} for c in comps}
    jobs = []
    for comp in comps:
        for label in cfg.calibrations:
            ccfg = CALIBRATIONS[label]
            out = calibs[comp.name][label] = work / "calib" / comp.name / label
            if not (out / "calibration.safetensors").exists():
                jobs.append(("calibration", (str(base), [loras[comp.primary.name], loras[comp.secondary.name]],
                                             world / "comp" / comp.name, out,
                                             CalibrateConfig(calibration=replace(ccfg, seed=cfg.seed),
                                                             fit=replace(cfg.calib, lr=cfg.calib_lr[label])))))
    run_jobs(jobs, workers, progress, "calibrations")
    clock.stage("calibrations", t)

    t = time.perf_counter()
    scores, single_scores = evaluate_all(cfg, base, world, comps, singles, loras, joints, calibs, work / "eval", log)
    clock.stage("evaluation", t)

    params = {"single LoRA": adapters_io.read(next(iter(loras.values()))).num_params()}
    if joints:
        params["joint expert"] = adapters_io.read(next(iter(joints.values()))).num_params()
    for label, path in next(iter(calibs.values())).items():
        params[label] = json.loads((path / "calibration_config.json").read_text())["num_params"]
    training = {"pretrain": json.loads((base / "pretrain.json").read_text())["result"],
                "loras": {n: _train_meta(p) for n, p in loras.items()},
                "joint": {n: _train_meta(p) for n, p in joints.items()},
                "calibrations": {n: {label: json.loads((p / "calibration_config.json").read_text())["result"]
                                     for label, p in d.items()} for n, d in calibs.items()}}
    return {"seed": cfg.seed, "scores": scores, "single": single_scores, "params": params, "training": training,
            "times": {**clock.stages, "total": clock.total}, "base_params": json.loads(
                (base / "pretrain.json").read_text())["params"],
            "base_source": "shipped" if (base / "fingerprint.json").exists() else "pretrained",
            "lora_source": {n: "shipped" if (p / "fingerprint.json").exists() else "trained"
                            for n, p in loras.items()}}


def lora_jobs(cfg: DemoConfig, base: Path, world: Path, loras: dict[str, Path], joints: dict[str, Path]) -> list:
    """The first wave: a LoRA per single task on its rows, a joint expert per sub-task on the
    compositional rows (the calibrations' rows, for `joint_epochs`: the calibrations' budget)."""
    joint = replace(cfg.lora, fit=replace(cfg.lora.fit, epochs=cfg.joint_epochs))
    return ([("lora", (str(base), world / "single" / n, out, cfg.lora)) for n, out in loras.items()]
            + [("lora", (str(base), world / "comp" / n, out, joint)) for n, out in joints.items()])


def build_world(cfg: DemoConfig, world: Path, progress: bool = True) -> None:
    build_benchmark(world, seed=cfg.seed, n_single=cfg.n_single, n_comp=cfg.n_comp, n_valid=cfg.n_valid,
                    n_test=cfg.n_test, subtasks=cfg.subtasks, n_corpus=cfg.n_corpus, progress=progress)


def sample_rows(folder: Path, subtask: str = "summarize+es") -> Path:
    """The default demo world's rows of one sub-task, built in `folder` (a few seconds): what
    probes and benchmarks run on. -> the sub-task's folder (train.jsonl, valid.jsonl, test.jsonl)."""
    build_world(preset("default", subtasks=[subtask]), Path(folder), progress=False)
    return Path(folder) / "comp" / subtask


def _check_reuse(cfg: DemoConfig, work: Path) -> None:
    """Finished artifacts in `work` are reused only when they were made by this world version and
    this configuration; anything else raises instead of mixing old and new results."""
    bench = work / "world" / "benchmark.json"
    version = json.loads(bench.read_text()).get("version", 1) if bench.exists() else VERSION
    if version != VERSION:
        raise MlxLcError(f"{work / 'world'} was written by an older mlx-lc (world version {version}, now "
                         f"{VERSION}); use a new out folder or delete it")
    stamp, now = work / "demo_config.json", jsonable(asdict(cfg))
    if stamp.exists() and json.loads(stamp.read_text()) != now:
        raise MlxLcError(f"{work} holds artifacts of another demo configuration; use a new out folder or delete it")
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stamp, json.dumps(now, indent=2))


def _train_meta(path: Path) -> dict:
    return json.loads((path / "adapter_config.json").read_text())["mlx_lc"]["result"]


def evaluate_all(cfg, base, world, comps, singles, loras, joints, calibs, out: Path, log) -> tuple[dict, dict]:
    """Every method on every sub-task's test split, and every single LoRA on its own task."""
    model, tok = model_folder.load(str(base))
    model.eval()
    ecfg = EvalConfig(cfg.max_tokens, cfg.eval_batch)
    lora = {n: adapters_io.read(p) for n, p in loras.items()}
    out.mkdir(parents=True, exist_ok=True)

    def gen(rows, adapter):
        remove_adapters(model)
        if adapter is not None:
            apply_lora(model, adapter)
        return generate_batch(model, tok, [r["prompt"] for r in rows], cfg.max_tokens, cfg.eval_batch)

    def record(name, rows, outputs):
        recs = score(rows, outputs)
        with open(out / f"{name}.jsonl", "w") as f:
            for r in recs:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        return next(iter(summarize(recs).values()))

    single_scores = {}
    for name in singles:
        rows = read_jsonl(world / "single" / name / "test.jsonl")
        single_scores[name] = record(f"single.{name}", rows, gen(rows, lora[name]))
        log(f"single-task LoRA {name}: {_brief(single_scores[name])}")

    scores: dict[str, dict] = {}
    for comp in comps:
        rows = read_jsonl(world / "comp" / comp.name / "test.jsonl")
        p, s = lora[comp.primary.name], lora[comp.secondary.name]
        runs = {"zero-shot": None, "primary": p, "secondary": s}
        runs.update({f"{m} merge": merge([p, s], MergeConfig(m, seed=cfg.seed)) for m in MERGES})
        if comp.name in joints:
            runs["joint expert"] = adapters_io.read(joints[comp.name])
        for label, path in calibs[comp.name].items():
            merged = merge([p, s], MergeConfig("linear"))
            # the folded adapter is what ships: one ordinary LoRA, same outputs as merge + calibration
            runs[label] = calib_io.fold(merged, calib_io.load(path, merged))
        scores[comp.name] = {}
        for method, adapter in runs.items():
            scores[comp.name][method] = record(f"{comp.name}.{method}", rows, gen(rows, adapter))
        remove_adapters(model)
        scores[comp.name]["multi-step"] = record(f"{comp.name}.multi-step", rows,
                                                 multi_step(model, tok, [p, s], rows, ecfg))
        for method in METHODS:
            if method in scores[comp.name]:
                log(f"{comp.name:<24} {method:<16} {_brief(scores[comp.name][method])}")
    return scores, single_scores


def _brief(s: dict) -> str:
    return (f"judge {pct(s['judge_pass'])}%  facts {pct(s['fact_acc'])}%  lang {pct(s['language_ok'])}%  "
            f"tone {pct(s['tone_ok'])}%  {s['metric']} {pct(s['score'])}")


def run(cfg: DemoConfig, out: str | Path, seeds: list[int] | None = None, progress: bool = True,
        log=print, label: str = "default", workers: int | None = None) -> dict:
    """Run the demo for each seed and write the results folder. -> the results dict.
    `workers`: training processes at once (default: default_workers())."""
    out = Path(out)
    seeds = seeds or [cfg.seed]
    t0 = time.perf_counter()
    per_seed, workers = [], workers or default_workers()
    for s in seeds:
        log(f"== seed {s}: {len(cfg.subtasks)} sub-task(s): {', '.join(cfg.subtasks)}")
        per_seed.append(run_seed(replace(cfg, seed=s), out / "work" / f"seed{s}", progress, log, workers))
    results = {"preset": label, "config": jsonable(asdict(cfg)), "seeds": seeds, "runs": per_seed, "workers": workers,
               "wall_seconds": round(time.perf_counter() - t0, 1)}
    write_results(results, out)
    return results


def rewrite_report(out: str | Path) -> dict:
    """Rewrite the results folder of a finished run from the per-example scores it saved
    (work/seedN/eval/*.jsonl): no training, no generation. For results written by older code,
    whose report lacks what the report shows now. -> the results dict."""
    out = Path(out)
    results = read_json(out / "results.json")
    if not isinstance(results, dict) or not isinstance(results.get("runs"), list):
        # e.g. an `mlx-lc eval` folder, whose results.json is one method's report
        raise MlxLcError(f"{out} is not a demo results folder ({out / 'results.json'} has no 'runs')")

    def again(path: Path) -> dict:
        if not path.exists():
            raise MlxLcError(f"{path} not found: rewriting a report needs the run's work/ folder")
        try:
            records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            return next(iter(summarize(records).values()))
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, StopIteration) as e:
            raise MlxLcError(f"{path}: not the per-example scores of an mlx-lc eval ({type(e).__name__}: {e})") from None

    for run in results["runs"]:
        ev = out / "work" / f"seed{run['seed']}" / "eval"
        run["single"] = {name: again(ev / f"single.{name}.jsonl") for name in run["single"]}
        run["scores"] = {sub: {m: again(ev / f"{sub}.{m}.jsonl") for m in methods}
                         for sub, methods in run["scores"].items()}
    write_results(results, out)
    return results


