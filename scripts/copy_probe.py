"""How many steps does a tiny base need before it can copy from its context at all?

The world's tasks all need copying (names, places and times from the dialogue into the summary or
the reply), and the old demo base never learned it (scripts/context_use.py). This isolates the
skill from the world: each row is a run of random tokens, random filler, then the same run again.
The first run and the filler cannot be predicted; the repeat can be, only by finding where the
run appeared before and copying the token that followed (an induction head). Printed per
new best dev loss: loss and argmax accuracy on the repeated tokens (chance: ln V and 1/V).

`--fixed-offset` makes every run and filler the same length, so the repeat is always the same
distance back; a model can then copy by position alone, which is far easier, and the gap between
the two modes shows how much of the difficulty is content-based lookup.

    python scripts/copy_probe.py --iters 1000 --batch-size 32 --lr 1e-3
"""

import mlx_lc  # noqa: F401  (optimised BLAS before mlx)

import argparse
import math
import time

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from mlx_lc.training.fit import FitConfig, fit
from mlx_lc.tiny import TinyConfig, build_tiny


def rows(rng: np.random.RandomState, n: int, vocab: int, fixed: bool) -> list[list[int]]:
    out = []
    for _ in range(n):
        run = rng.randint(0, vocab, size=24 if fixed else rng.randint(10, 41))
        filler = rng.randint(0, vocab, size=16 if fixed else rng.randint(5, 31))
        out.append(np.concatenate([run, filler, run]).tolist())
    return out


def copy_scores(model, held: list[list[int]], last: int = 8) -> tuple[float, float]:
    """Mean loss and argmax accuracy on the last `last` tokens of each row (all inside the repeat)."""
    losses, hits = [], []
    for ids in held:
        x = mx.array(ids)[None]
        logits = model(x[:, :-1])[0, -last:]
        target = x[0, -last:]
        losses.append(nn.losses.cross_entropy(logits, target).mean().item())
        hits.append((logits.argmax(-1) == target).astype(mx.float32).mean().item())
    return float(np.mean(losses)), float(np.mean(hits))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, default in [("hidden", 96), ("layers", 3), ("heads", 4), ("kv-heads", 4), ("vocab", 512),
                          ("iters", 1000), ("batch-size", 32), ("eval-every", 100), ("seed", 0)]:
        ap.add_argument(f"--{name}", type=int, default=default)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--fixed-offset", action="store_true", help="every repeat the same distance back")
    a = ap.parse_args()
    if min(a.hidden, a.layers, a.heads, a.kv_heads, a.vocab, a.iters, a.batch_size, a.eval_every) < 1:
        ap.error("sizes and counts must be positive")
    model, _ = build_tiny(TinyConfig(hidden=a.hidden, layers=a.layers, vocab=a.vocab, heads=a.heads,
                                     kv_heads=a.kv_heads, seed=a.seed, rope_theta=a.rope_theta), a.vocab)
    rng = np.random.RandomState(a.seed)
    train = [(r, 0) for r in rows(rng, a.iters * a.batch_size, a.vocab, a.fixed_offset)]  # each row seen once
    held = rows(rng, 64, a.vocab, a.fixed_offset)
    print(f"chance on the repeat: loss {math.log(a.vocab):.3f}, accuracy {1 / a.vocab:.4f}")
    t0 = time.perf_counter()

    def report(_best, step):
        model.eval()
        loss, acc = copy_scores(model, held)
        model.train()
        print(f"[{time.perf_counter() - t0:5.0f} s] step {step:5d}: repeat loss {loss:.3f}, accuracy {acc:.3f}",
              flush=True)

    model.unfreeze()
    cfg = FitConfig(lr=a.lr, batch_size=a.batch_size, iters=a.iters, max_seq_len=128, warmup=50,
                    schedule="cosine", patience=10**6, eval_every=a.eval_every, seed=a.seed)
    # The dev split is the held-out rows: their loss falls only as copying is learnt.
    r = fit(model, train, [(r, 0) for r in held], cfg, progress=False, on_best=report)
    print(f"{r.steps} steps of {a.batch_size} rows in {r.seconds:.0f} s; best dev loss at step {r.best_step}")


if __name__ == "__main__":
    main()
