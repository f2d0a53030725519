"""Prompt/completion rows: read from JSON Lines (mlx-lm's completions format, plus `task`), split
into train and dev, and tokenised into `Example`s whose loss covers the completion only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np

from .. import tasks
from ..errors import MlxLcError
from ..io import read_text

Example = tuple[list[int], int]  # token ids, number of leading tokens without loss (the prompt)


def json_lines(path: str | Path, what: str = "data file") -> Iterator[tuple[int, object, str]]:
    """(line number, parsed value, hint) per non-empty line of a JSON Lines file; a line that is
    not JSON fails naming the file and line. `hint` is for the caller's own errors about a row."""
    path = Path(path)
    text = read_text(path, what)
    # a JSON array (one big list) is the usual mistake; its rows would fail one by one below
    hint = "; expected JSON Lines (one object per line), not a JSON array" if text.lstrip().startswith("[") else ""
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line), hint
        except json.JSONDecodeError as e:
            raise MlxLcError(f"{path}:{n}: not JSON ({e.msg}){hint}") from None


def read_jsonl(path: str | Path) -> list[dict]:
    """Rows with string `prompt` and `completion`; errors name the file and line."""
    rows = []
    for n, row, hint in json_lines(path):
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) \
                or not isinstance(row.get("completion"), str):
            raise MlxLcError(f"{path}:{n}: each row needs string fields 'prompt' and 'completion'{hint}")
        rows.append(row)
    if not rows:
        raise MlxLcError(f"{path}: no rows")
    return rows


def load_splits(data: str | Path, valid_fraction: float = 0.1, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """A folder with train.jsonl (+ valid.jsonl), or one .jsonl file whose last `valid_fraction`
    (after a seeded shuffle) becomes the dev split."""
    data = Path(data)
    if data.is_dir():
        train = read_jsonl(data / "train.jsonl")
        valid = read_jsonl(data / "valid.jsonl") if (data / "valid.jsonl").exists() else []
        return train, valid
    rows = read_jsonl(data)
    order = np.random.RandomState(seed).permutation(len(rows))
    n_valid = int(len(rows) * valid_fraction) if len(rows) >= 10 else 0
    return [rows[i] for i in order[n_valid:]], [rows[i] for i in order[:n_valid]]


def encode_prompt(tokenizer, prompt: str) -> list[int]:
    """Token ids of a formatted prompt, exactly as mlx-lm's generate encodes it."""
    bos = getattr(tokenizer, "bos_token", None)
    return tokenizer.encode(prompt, add_special_tokens=bos is None or not prompt.startswith(bos))


def encode_rows(tokenizer, rows: list[dict]) -> list[Example]:
    """(prompt + completion + eos, prompt length) per row; the prompt goes through wrap_message."""
    eos = tokenizer.eos_token_id
    out = []
    for row in rows:
        p = encode_prompt(tokenizer, tasks.wrap_message(tokenizer, row["prompt"]))
        c = tokenizer.encode(row["completion"], add_special_tokens=False)
        out.append((p + c + ([eos] if eos is not None else []), len(p)))
    return out
