"""Does a model read the dialogue, or only continue in its style?

For each test dialogue, the loss of its last turn (which restates the agreed who/what/where/when)
given its own earlier turns, and given another dialogue's earlier turns. A model that copies facts
from its context scores much lower with its own; equal losses mean it predicts the last turn from
style and frequencies alone, so no task trained on top can get the facts right.

    python scripts/context_use.py mlx-lc-demo/work/seed0/base mlx-lc-demo/work/seed0/world
"""

import mlx_lc  # noqa: F401  (optimised BLAS before mlx)

import argparse
import json
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn

from mlx_lc.generate import load_base


def last_turn_loss(model, tok, context: list[str], last: str) -> float:
    prefix = "\n".join(context) + "\n"
    n = len(tok.encode(prefix, add_special_tokens=False))
    ids = mx.array(tok.encode(prefix + last, add_special_tokens=False))[None]
    ce = nn.losses.cross_entropy(model(ids[:, :-1]).astype(mx.float32), ids[:, 1:])[0]
    return ce[n - 1:].mean().item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("world", type=Path)
    ap.add_argument("--n", type=int, default=100)
    args = ap.parse_args()
    path = args.world / "single" / "summarize" / "test.jsonl"
    if not path.is_file():
        ap.error(f"{path} not found: WORLD is a folder written by `python -m mlx_lc.world` or `mlx-lc demo`")
    model, tok = load_base(args.model)
    dialogues = [json.loads(line)["input"].split("\n") for line in path.open()][: args.n]
    own = other = 0.0
    for i, d in enumerate(dialogues):
        own += last_turn_loss(model, tok, d[:-1], d[-1])
        other += last_turn_loss(model, tok, dialogues[(i + 1) % len(dialogues)][:-1], d[-1])
    n = len(dialogues)
    print(f"last-turn loss over {n} test dialogues (nats/token): own context {own / n:.3f}, "
          f"another dialogue's context {other / n:.3f}, gap {(other - own) / n:.3f}")


if __name__ == "__main__":
    main()
