"""Does a model read the dialogue, or only continue in its style?

For each test dialogue, the loss of its last turn (which restates the agreed who/what/where/when)
given its own earlier turns, and given another dialogue's earlier turns. A model that copies facts
from its context scores much lower with its own; equal losses mean it predicts the last turn from
style and frequencies alone, so no task trained on top can get the facts right. Then the
stricter test: how many last turns greedy decoding completes exactly from their first words.

    python scripts/context_use.py mlx-lc-demo/work/seed0/base mlx-lc-demo/work/seed0/world
"""

import mlx_lc  # noqa: F401  (optimised BLAS before mlx)

import argparse
import json
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn

from mlx_lc import model_folder


def last_turn_loss(model, tok, context: list[str], last: str) -> float:
    prefix = "\n".join(context) + "\n"
    n = len(tok.encode(prefix, add_special_tokens=False))
    ids = mx.array(tok.encode(prefix + last, add_special_tokens=False))[None]
    ce = nn.losses.cross_entropy(model(ids[:, :-1]).astype(mx.float32), ids[:, 1:])[0]
    return ce[n - 1:].mean().item()


def greedy_last_turn(model, tok, context: list[str], last: str, given_words: int = 4) -> bool:
    """Does greedy decoding, given the dialogue and the first words of its last turn, write the
    rest of that turn exactly? Lower loss can come from soft hints; this needs real copying."""
    from mlx_lm import generate

    words = last.split(" ")
    head = " ".join(words[:given_words])
    prompt = "\n".join(context) + "\n" + head
    out = generate(model, tok, prompt, max_tokens=2 * len(words) + 8, verbose=False).split("\n")[0]
    return (head + " " + out).split() == words  # the detokenizer drops the first token's space


def context_use(model, tok, dialogues: list[list[str]]) -> dict:
    n = len(dialogues)
    own = sum(last_turn_loss(model, tok, d[:-1], d[-1]) for d in dialogues) / n
    other = sum(last_turn_loss(model, tok, dialogues[(i + 1) % n][:-1], d[-1]) for i, d in enumerate(dialogues)) / n
    exact = sum(greedy_last_turn(model, tok, d[:-1], d[-1]) for d in dialogues)
    return {"n": n, "own": own, "other": other, "gap": other - own, "greedy_exact": exact}


def read_dialogues(world: Path, n: int) -> list[list[str]]:
    path = world / "single" / "summarize" / "test.jsonl"
    if not path.is_file():
        raise SystemExit(f"error: {path} not found: WORLD is a folder written by `python -m mlx_lc.world` "
                         "or `mlx-lc demo`")
    return [json.loads(line)["input"].split("\n") for line in path.open()][:n]


def describe(r: dict) -> str:
    return (f"last-turn loss over {r['n']} test dialogues (nats/token): own context {r['own']:.3f}, "
            f"another dialogue's context {r['other']:.3f}, gap {r['gap']:.3f}; "
            f"greedy completes {r['greedy_exact']}/{r['n']} last turns exactly")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("world", type=Path)
    ap.add_argument("--n", type=int, default=100)
    args = ap.parse_args()
    dialogues = read_dialogues(args.world, args.n)
    model, tok = model_folder.load(args.model)
    print(describe(context_use(model, tok, dialogues)))


if __name__ == "__main__":
    main()
