"""Writing the benchmark: single-task and compositional JSONL sets and the pretraining corpus.

Layout under `out`:
    corpus.txt                               unlabelled text, documents separated by a blank line
    single/<task>/{train,valid,test}.jsonl   the 9 single tasks
    comp/<primary+secondary>/{...}.jsonl     the 14 compositions (or the chosen subtasks)
    benchmark.json                           the arguments and the counts

Test frames are drawn first and held out: no train or valid row of any task and no corpus document
uses a test frame's who/what/where/when combination (valid frames are kept out of train and the
corpus the same way). Every task's valid/test rows use the same frames, so tasks compare fairly.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from .. import tasks
from ..errors import MlxLcError
from ..io import atomic_dir, write_json
from .frames import N_VARIANTS, Frame, sample_frame
from .lexicon import ACTIVITIES, DAYS, HOURS, LANGS, PEOPLE, PLACES
from .realise import cut_last_turn, dialogue, plan_dialogue, render, render_turn, sentence
from .tones import TONES

SPLITS = ("train", "valid", "test")
# Bumped whenever the same seed would write different files (2: corpus dialogues open with a scene
# line), so a folder written by older code is not silently reused (demo.run_seed checks it).
VERSION = 2


def _secondary(task) -> tuple[str, str | None]:
    """(language, tone) of a secondary task's output."""
    return (task.name, None) if task.family == "trans" else ("en", task.name)


def make_example(task_name: str, frame: Frame, rng: random.Random, split: str = "test") -> dict:
    """One JSONL row. Primary tasks and compositions read the dialogue; single secondary tasks read
    an English sentence of the world (a summary, a reply, or in train also a dialogue turn)."""
    task = tasks.get(task_name)
    primary = task.primary if task.kind == "composition" else (task if task.kind == "primary" else None)
    secondary = task.secondary if task.kind == "composition" else (task if task.kind == "secondary" else None)
    lang, tone = _secondary(secondary) if secondary is not None else ("en", None)
    if primary is not None:
        k = rng.randrange(N_VARIANTS)
        kr = k if primary.name == "reply" else rng.randrange(N_VARIANTS)
        text = dialogue(frame, rng, "en", reply_variant=kr)
        if primary.name == "summarize":
            kind, inp = "summary", text
        else:
            kind, inp = "reply", cut_last_turn(text)
        gold = sentence(frame, kind, lang, tone, variant=k)
    else:
        # Dialogue turns make translation general; they stay in train because the judge checks
        # whole summaries and replies only.
        kinds = ("summary", "reply", "turn") if split == "train" and tone is None else ("summary", "reply")
        kind = rng.choice(kinds)
        if kind == "turn":
            turn = rng.choice(plan_dialogue(frame, rng)[:-1])
            inp, gold = render_turn(frame, turn, "en"), render_turn(frame, turn, lang)
        else:
            k = rng.randrange(N_VARIANTS)
            inp, gold = sentence(frame, kind, "en", variant=k), sentence(frame, kind, lang, tone, variant=k)
    return {"prompt": tasks.prompt_text(task, inp), "completion": gold, "task": task_name, "input": inp,
            "frame": {**frame.to_dict(), "kind": kind}}


def corpus_documents(rng: random.Random, n: int, exclude: set) -> list[str]:
    """Unlabelled text of the world, no task instructions: dialogues in the four languages, each
    opened by a line that sets the scene in the same language (who will do what, where and when,
    as a story or a calendar note before a chat would), and summary- and reply-like sentences in
    every language and English tone.

    Why mostly dialogues, and why the scene line: every task needs the model to copy names, places
    and times from its context, the skill a tiny base learns last (scripts/copy_probe.py). The
    scene line gives each dialogue facts to repeat from earlier text, so copying pays off on many
    more tokens; probes showed context use after 1,000 steps with it and none without (docs/EXPERIMENTS.md).
    The line comes before the dialogue, so the base never sees a dialogue followed by its summary."""
    registers = [(lang, None) for lang in LANGS] + [("en", tone) for tone in TONES]
    docs = []
    for _ in range(n):
        frame = sample_frame(rng, exclude)
        if rng.random() < 0.7:
            lang = rng.choice(LANGS)
            talk = render(frame, plan_dialogue(frame, rng, rng.randrange(N_VARIANTS)), lang)
            docs.append(sentence(frame, "summary", lang, rng=rng) + "\n" + talk)
        else:
            lang, tone = rng.choice(registers)
            docs.append(sentence(frame, rng.choice(("summary", "reply")), lang, tone, rng=rng))
    return docs


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def build_benchmark(out: Path, seed: int = 0, n_single: int = 1000, n_comp: int = 500, n_valid: int = 100,
                    n_test: int = 100, subtasks: list[str] | None = None, n_corpus: int = 2000,
                    progress: bool = True) -> dict:
    """Write the benchmark to `out` (atomically) and return its summary with counts.

    n_single / n_comp: train rows per single task / composition; n_valid / n_test: valid and test
    rows per task (one row per held-out frame); n_corpus: corpus documents."""
    from tqdm import tqdm

    comps = list(tasks.COMPOSITIONS) if subtasks is None else list(subtasks)
    unknown = [s for s in comps if s not in tasks.COMPOSITIONS]
    if unknown:
        raise MlxLcError(f"unknown subtask(s) {', '.join(unknown)}; choose from {', '.join(tasks.COMPOSITIONS)}")
    if min(n_single, n_comp, n_valid, n_test, n_corpus) < 0:
        raise MlxLcError("example counts must be non-negative")
    frame_rng = random.Random(f"{seed}:frames")
    test_frames: list[Frame] = []
    test_keys: set = set()
    while len(test_frames) < n_test:
        f = sample_frame(frame_rng, test_keys)
        test_frames.append(f)
        test_keys.add(f.key)
    valid_frames = []
    held = set(test_keys)
    while len(valid_frames) < n_valid:
        f = sample_frame(frame_rng, held)
        valid_frames.append(f)
        held.add(f.key)

    plan = [("single", t, n_single) for t in tasks.SINGLE] + [("comp", t, n_comp) for t in comps]
    counts: dict = {"single": {}, "comp": {}}
    with atomic_dir(out, marker="benchmark.json", kind="world") as tmp:
        for group, name, n_train in tqdm(plan, desc="world", unit="task", disable=not progress):
            split_frames = {"valid": valid_frames, "test": test_frames}
            counts[group][name] = {}
            for split in SPLITS:
                rng = random.Random(f"{seed}:{name}:{split}")
                frames = split_frames.get(split) or [sample_frame(rng, held) for _ in range(n_train)]
                rows = [make_example(name, f, rng, split) for f in frames]
                _write_jsonl(tmp / group / name / f"{split}.jsonl", rows)
                counts[group][name][split] = len(rows)
        docs = corpus_documents(random.Random(f"{seed}:corpus"), n_corpus, held)
        (tmp / "corpus.txt").write_text("\n\n".join(docs) + "\n")
        summary = {
            "version": VERSION, "seed": seed, "n_single": n_single, "n_comp": n_comp, "n_valid": n_valid,
            "n_test": n_test,
            "subtasks": comps, "counts": counts,
            "corpus": {"documents": len(docs), "lines": sum(d.count("\n") + 1 for d in docs)},
            "world": {"people": len(PEOPLE), "activities": len(ACTIVITIES), "places": len(PLACES),
                      "days": len(DAYS), "hours": len(HOURS), "languages": list(LANGS), "tones": list(TONES)},
        }
        write_json(tmp / "benchmark.json", summary)
    return summary
