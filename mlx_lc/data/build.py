"""Build the paper's benchmark: 9 single-task sets and 14 compositional sets as JSON lines.

Layout of OUT (each set is an mlx-lm data folder):

    single/<task>/{train,valid,test}.jsonl          summarize, reply, es, fr, de, professional, ...
    compositional/<primary+secondary>/{...}.jsonl   summarize+es, ..., reply+paraphrase
    manifest.json                                   config, source files and commits, counts, stats
    skipped.jsonl                                   every source row or generation we could not use

A row: {"prompt": tasks.prompt_text(task, input), "completion": target, "task": name,
"input": raw input, "id": source id} (+ "primary_target" for compositions: the single-task
target that the translator or rewriter turned into the compositional one).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import tasks
from ..errors import MlxLcError
from ..io import atomic_dir
from . import generation, sources
from .hub import HubFile, commit_of, fetch
from .rewrite import TOYS_STOP, Rewrite, clean
from .sources import SPLITS, Example, Report

DEFAULT_TRANSLATOR = "mlx-community/Qwen2.5-7B-Instruct-4bit"
DEFAULT_REWRITER = "mlx-community/Qwen2.5-7B-Instruct-4bit"
ALL_SOURCES = ("dialogsum", "spc", "ted", "tone")


@dataclass
class BuildConfig:
    out: Path
    sources: tuple[str, ...] = ALL_SOURCES
    limit: int | None = None  # cap every split of every set (quick runs)
    translator: str = DEFAULT_TRANSLATOR
    rewriter: str = DEFAULT_REWRITER
    rewriter_format: str = "instruct"  # or "llm-toys" (the paper's RedPajama tone model prompt)
    tone_table: str | None = None  # local file or hub "owner/name:path[@rev]" with tone rewrites
    compositional: bool = True
    comp_train: int | None = 10_000  # paper: about 10,000 compositional examples per sub-task
    comp_valid: int | None = 500
    comp_test: int | None = None  # None: the whole primary test split (1,500 / 1,000)
    reply_valid: int | None = 1_000  # paper: 1,000 / 1,000 reply val / test examples
    reply_test: int | None = 1_000
    ted_train: int | None = 20_000  # per language; the paper does not give its TED sizes
    ted_valid: int | None = 500
    ted_test: int | None = 1_000
    seed: int = 0
    batch_size: int = 16
    max_tokens: int = 256
    cache_dir: Path | None = None  # generation cache (default $MLX_LC_HOME/generations)
    hub_cache: Path | None = None  # huggingface_hub cache_dir (default: HF_HOME's)
    offline: bool = False  # only use files already in the hub cache


@dataclass
class _Ctx:
    cfg: BuildConfig
    report: Report = field(default_factory=Report)
    files: list[dict] = field(default_factory=list)

    def fetch(self, f: HubFile) -> Path:
        path = fetch(f, self.cfg.hub_cache, self.cfg.offline)
        self.files.append({"repo": f.repo_id, "file": f.filename, "revision": f.revision, "commit": commit_of(path)})
        return path


def _cap(n: int | None, limit: int | None) -> int | None:
    return n if limit is None else (limit if n is None else min(n, limit))


def sample(items: list, n: int | None, seed: int, name: str) -> list:
    """A seeded subsample of `n` items in their original order (all when n is None or larger)."""
    if n is None or n >= len(items):
        return list(items)
    rng = random.Random(int(hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:12], 16))
    return [items[i] for i in sorted(rng.sample(range(len(items)), n))]


def _load_single(ctx: _Ctx) -> tuple[dict[str, dict[str, list[Example]]], dict[str, list[Example]]]:
    """Single-task sets with targets, and tone-rewrite inputs still waiting for targets."""
    cfg, rep, lim = ctx.cfg, ctx.report, ctx.cfg.limit
    single: dict[str, dict[str, list[Example]]] = {}
    tone_inputs: dict[str, list[Example]] = {}
    src = sources.SOURCES
    if "dialogsum" in cfg.sources:
        single["summarize"] = {s: sample(sources.read_dialogsum(ctx.fetch(src["dialogsum"].hub_files(s)[0]), s, rep),
                                         lim, cfg.seed, f"summarize/{s}") for s in SPLITS}
    if "spc" in cfg.sources:
        caps = {"train": lim, "valid": _cap(cfg.reply_valid, lim), "test": _cap(cfg.reply_test, lim)}
        single["reply"] = {s: sample(sources.read_spc(ctx.fetch(src["spc"].hub_files(s)[0]), s, rep),
                                     caps[s], cfg.seed, f"reply/{s}") for s in SPLITS}
    if "ted" in cfg.sources:
        caps = {"train": _cap(cfg.ted_train, lim), "valid": _cap(cfg.ted_valid, lim), "test": _cap(cfg.ted_test, lim)}
        per_split = {}
        for s in SPLITS:
            getters = [lambda f=f: ctx.fetch(f) for f in src["ted"].hub_files(s)]
            # train: stop reading at the cap (the train files are large); valid/test: sample the whole split
            read = sources.read_ted(getters, s, tasks.LANGUAGES, rep, cap=caps[s] if s == "train" else None)
            per_split[s] = {lang: sample(rows, caps[s], cfg.seed, f"{lang}/{s}") for lang, rows in read.items()}
        for lang in tasks.LANGUAGES:
            single[lang] = {s: per_split[s][lang] for s in SPLITS}
    if "tone" in cfg.sources:
        if cfg.tone_table:
            table = sources.read_tone_table(_table_path(ctx, cfg.tone_table), rep)
            for tone in tasks.TONES:
                single[tone] = {s: sample(table[tone][s], lim, cfg.seed, f"{tone}/{s}") for s in SPLITS}
        else:
            tone_inputs = {s: sample(sources.read_content_rephrasing(ctx.fetch(src["tone"].hub_files(s)[0]), s, rep),
                                     lim, cfg.seed, f"tone/{s}") for s in SPLITS}
    return single, tone_inputs


def _table_path(ctx: _Ctx, spec: str) -> Path:
    p = Path(spec).expanduser()
    if p.is_file():
        return p
    if ":" not in spec or spec.count("/") < 2:
        raise MlxLcError(f"tone table {spec!r}: not a file; give a local file or a hub dataset file as owner/name:path[@revision]")
    repo, rest = spec.split(":", 1)
    path, _, rev = rest.partition("@")
    return ctx.fetch(HubFile(repo, path, rev or "main"))


@dataclass
class _Job:
    """One text to rewrite, and where its result goes."""
    task: str  # the set it belongs to (a tone name, or a composition)
    split: str
    example: Example
    rewrite: Rewrite
    source_text: str  # what gets rewritten: the single-task target (or the tone input)


def _plan(cfg: BuildConfig, single: dict, tone_inputs: dict) -> list[_Job]:
    jobs = []
    for tone, per_split in ({t: tone_inputs for t in tasks.TONES} if tone_inputs else {}).items():
        for s in SPLITS:
            jobs += [_Job(tone, s, ex, Rewrite(tone, cfg.rewriter_format), ex.input) for ex in per_split[s]]
    if cfg.compositional:
        caps = {"train": _cap(cfg.comp_train, cfg.limit), "valid": _cap(cfg.comp_valid, cfg.limit),
                "test": _cap(cfg.comp_test, cfg.limit)}
        for comp in tasks.COMPOSITIONS.values():
            primary = single.get(comp.primary.name)
            if primary is None:
                continue
            fmt = "instruct" if comp.secondary.family == "trans" else cfg.rewriter_format
            for s in SPLITS:
                # one input sample per primary and split, shared by its 7 sub-tasks
                for ex in sample(primary[s], caps[s], cfg.seed, f"{comp.primary.name}/comp/{s}"):
                    jobs.append(_Job(comp.name, s, ex, Rewrite(comp.secondary.name, fmt), ex.target))
    return jobs


def _generate(cfg: BuildConfig, jobs: list[_Job], report: Report) -> tuple[list[str | None], dict]:
    """Run every job through its model (translator or rewriter), one model loaded at a time."""
    outputs: list[str | None] = [None] * len(jobs)
    stats = {}
    by_model: dict[str, list[int]] = {}
    for i, job in enumerate(jobs):
        by_model.setdefault(cfg.translator if job.rewrite.family == "trans" else cfg.rewriter, []).append(i)
    for model, idx in by_model.items():
        toys = any(jobs[i].rewrite.fmt == "llm-toys" for i in idx)
        gen = generation.TextGenerator(model, cfg.max_tokens, cfg.batch_size, chat=not toys,
                                       stop=(TOYS_STOP,) if toys else ())
        cache = generation.GenerationCache(generation.cache_path(cfg.cache_dir, model))
        if cache.torn_lines:
            report.note("generation cache", f"{cache.torn_lines} torn line(s) in {cache.path.name} regenerated")
        roles = sorted({"translator" if jobs[i].rewrite.family == "trans" else "rewriter" for i in idx})
        outs, st = generation.run(gen, gen.key, cache, [jobs[i].rewrite.message(jobs[i].source_text) for i in idx],
                                  cfg.batch_size, desc=f"{'+'.join(roles)} {model}")
        gen.unload()
        for i, o in zip(idx, outs):
            outputs[i] = o
        stats[model] = {"roles": roles, **asdict(st), "cache": str(cache.path)}
    return outputs, stats


def _row(task: str, ex: Example, target: str, primary_target: str | None = None) -> dict:
    row = {"prompt": tasks.prompt_text(tasks.get(task), ex.input), "completion": target, "task": task,
           "input": ex.input, "id": ex.id}
    if primary_target is not None:
        row["primary_target"] = primary_target
    return row


def _source_of(task: str, cfg: BuildConfig) -> str:
    if "+" in task:
        return f"generation for {task}"
    if task in tasks.TONES:
        return "tone"
    return {"summarize": "dialogsum", "reply": "spc"}.get(task, "ted")


def _check_not_empty(cfg: BuildConfig, sets: dict, report: Report) -> None:
    """A source that yields nothing (a truncated tone table, every generation unusable) used to
    give a 'successful' build with 0 rows; refuse it, naming the source and why rows were skipped.
    A split asked to hold 0 rows (e.g. --comp-valid 0) may stay empty, and a tone table may cover
    only some tones, so there only a table with no usable row at all is refused."""
    asked_zero = {("compositional", "train"): cfg.comp_train, ("compositional", "valid"): cfg.comp_valid,
                  ("compositional", "test"): cfg.comp_test, ("ted", "train"): cfg.ted_train,
                  ("ted", "valid"): cfg.ted_valid, ("ted", "test"): cfg.ted_test,
                  ("spc", "valid"): cfg.reply_valid, ("spc", "test"): cfg.reply_test}
    top = max(report.counts().items(), key=lambda kv: kv[1], default=None)
    why = f"; most skipped: {top[0]} ({top[1]} rows)" if top else ""
    table = {n: per for n, per in sets.items() if cfg.tone_table and n.split("/", 1)[1] in tasks.TONES}
    if table and not any(rows for per in table.values() for rows in per.values()):
        raise MlxLcError(f"tone table {cfg.tone_table}: no usable rows{why}")
    for name, per in sorted(sets.items()):
        if name in table:
            continue
        kind, task = name.split("/", 1)
        source = _source_of(task, cfg)
        empty = [s for s, rows in per.items() if not rows
                 and asked_zero.get(("compositional" if kind == "compositional" else source, s)) != 0]
        if empty:
            raise MlxLcError(f"{name}: no rows in {', '.join(empty)} from {source}{why}")


def build(cfg: BuildConfig) -> dict:
    """Download, read, rewrite and write everything; returns the manifest."""
    unknown = [s for s in cfg.sources if s not in ALL_SOURCES]
    if unknown or not cfg.sources:
        raise MlxLcError(f"unknown source(s) {unknown}; choose from {', '.join(ALL_SOURCES)}")
    if cfg.limit is not None and cfg.limit < 1:
        raise MlxLcError(f"limit must be at least 1, got {cfg.limit}", param="limit")
    t0 = time.time()
    ctx = _Ctx(cfg)
    single, tone_inputs = _load_single(ctx)
    jobs = _plan(cfg, single, tone_inputs)
    outputs, gen_stats = _generate(cfg, jobs, ctx.report) if jobs else ([], {})

    sets: dict[str, dict[str, list[dict]]] = {}
    for task, per_split in single.items():
        sets[f"single/{task}"] = {s: [_row(task, ex, ex.target) for ex in per_split[s]] for s in SPLITS}
    for job, raw in zip(jobs, outputs):
        kind = "compositional" if "+" in job.task else "single"
        target = clean(raw, job.source_text)
        rows = sets.setdefault(f"{kind}/{job.task}", {s: [] for s in SPLITS})[job.split]
        if not target:
            ctx.report.skip("generation", job.split, job.example.id,
                            f"no usable {job.rewrite.secondary} output for {job.task}", raw or "")
            continue
        rows.append(_row(job.task, job.example, target,
                         job.source_text if kind == "compositional" else None))

    _check_not_empty(cfg, sets, ctx.report)
    manifest = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "files": ctx.files,
        "counts": {name: {s: len(rows) for s, rows in per.items()} for name, per in sorted(sets.items())},
        "skipped": ctx.report.counts(),
        "notes": dict(sorted(ctx.report.notes.items())),
        "generation": gen_stats,
        "seconds": round(time.time() - t0, 1),
    }
    with atomic_dir(cfg.out, marker="manifest.json", kind="data build") as tmp:
        for name, per in sets.items():
            folder = tmp / name
            folder.mkdir(parents=True, exist_ok=True)
            for s, rows in per.items():
                (folder / f"{s}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                                   encoding="utf-8")
        (tmp / "skipped.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                   for r in ctx.report.skipped), encoding="utf-8")
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest
