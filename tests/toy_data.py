"""Toy prompt/completion rows for training tests: a learnable pattern, a few tasks, seeded.

Not the benchmark world (mlx_lc.world): just enough structure that a tiny LoRA can lower its
dev loss in a few dozen steps.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from mlx_lc import tasks

NAMES = ["Anna", "Ben", "Carla", "Dan", "Eva", "Finn", "Greta", "Hugo"]
PLACES = {"cafe": "café", "park": "parque", "station": "estación", "library": "biblioteca"}
DAYS = {"Monday": "lunes", "Friday": "viernes", "Sunday": "domingo"}


def row(task: str, i: int) -> dict:
    r = random.Random(i)
    a, b = r.sample(NAMES, 2)
    place, day = r.choice(sorted(PLACES)), r.choice(sorted(DAYS))
    dialogue = f"{a}: Shall we meet at the {place} on {day}?\n{b}: Sure, see you there."
    summary = f"{a} and {b} meet at the {place} on {day}."
    spanish = f"{a} y {b} se ven en el {PLACES[place]} el {DAYS[day]}."
    text, target = {"summarize": (dialogue, summary), "es": (summary, spanish),
                    "summarize+es": (dialogue, spanish)}[task]
    return {"prompt": tasks.prompt_text(tasks.get(task), text), "completion": target, "task": task, "input": text}


def write(folder: Path, task: str, n_train: int = 64, n_valid: int = 16, offset: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, start in (("train", n_train, offset), ("valid", n_valid, offset + 10_000)):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row(task, start + i)) + "\n" for i in range(n)))
    return folder
