"""When does a tiny base start to read its context? Pretrain one from scratch on a world's corpus
and print the context-use gap (scripts/context_use.py) at every new best dev loss.

Copying from the context is a circuit that appears suddenly and, at the budgets a laptop CPU
allows, at a step that depends on the seed; this prints where it does, for one configuration.

    python scripts/context_probe.py mlx-lc-demo/work/seed0/world /tmp/probe --heads 4 --kv-heads 4 \
        --batch-size 4 --max-seq-len 256 --iters 1600 --eval-every 200
"""

import mlx_lc  # noqa: F401  (optimised BLAS before mlx)

import argparse
import time
from pathlib import Path

from context_use import context_use, describe, read_dialogues

from mlx_lc import model_folder
from mlx_lc.training.fit import FitConfig, fit
from mlx_lc.tiny import TinyConfig, write_tiny_model
from mlx_lc.training.pretrain import corpus_examples


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("world", type=Path)
    ap.add_argument("out", type=Path)
    for name, default in [("hidden", 96), ("layers", 3), ("heads", 4), ("kv-heads", 4), ("vocab", 2048),
                          ("iters", 1600), ("batch-size", 4), ("max-seq-len", 256), ("eval-every", 200),
                          ("seed", 0), ("n", 50)]:
        ap.add_argument(f"--{name}", type=int, default=default)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    a = ap.parse_args()
    corpus = a.world / "corpus.txt"
    if not corpus.is_file():
        ap.error(f"{corpus} not found: WORLD is a folder written by `python -m mlx_lc.world` or `mlx-lc demo`")
    dialogues = read_dialogues(a.world, a.n)  # before writing anything
    text = corpus.read_text(encoding="utf-8")
    write_tiny_model(a.out, TinyConfig(hidden=a.hidden, layers=a.layers, vocab=a.vocab, heads=a.heads,
                                       kv_heads=a.kv_heads, seed=a.seed, rope_theta=a.rope_theta),
                     text.splitlines())
    model, tok = model_folder.load(str(a.out))
    examples = corpus_examples(tok, text, a.max_seq_len)
    n_valid = max(1, len(examples) // 50)  # as `mlx-lc pretrain`
    t0 = time.perf_counter()

    def probe(_best, step):
        model.eval()
        print(f"[{time.perf_counter() - t0:5.0f} s] step {step:5d}: {describe(context_use(model, tok, dialogues))}",
              flush=True)
        model.train()

    model.unfreeze()
    cfg = FitConfig(lr=a.lr, batch_size=a.batch_size, iters=a.iters, max_seq_len=a.max_seq_len, warmup=50,
                    schedule="cosine", weight_decay=0.01, patience=1000, eval_every=a.eval_every, seed=a.seed)
    result = fit(model, examples[n_valid:], examples[:n_valid], cfg, progress=False, on_best=probe)
    model_folder.save_weights(a.out, model)
    print(f"best dev loss {result.best_val:.3f} at step {result.best_step}; model in {a.out}")


if __name__ == "__main__":
    main()
