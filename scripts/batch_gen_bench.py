"""Batched greedy generation: a hand-written decode loop vs mlx-lm's batch_generate, side by side.

Both decode the same prompts with the same model (a random LoRA attached through mlx-lc's
LoRALayer, as eval and the demo's scoring run), taking turns (A,B / B,A / ...), and the script
prints generated tokens per second, wall and CPU time of each, the median of the per-round ratios,
and whether the output texts are the same. "loop" is the decoder mlx-lc used before it moved to
mlx-lm's (prompts sorted by length, left-padded into mlx-lm's BatchKVCache, argmax, one forward
pass per token for the whole batch); "mlx-lm" is mlx_lc.batch.generate, which eval, the demo and
data generation use: `mlx_lm.batch_generate` on the same length-sorted batches. Defaults: the
demo's shipped base and its summarize+es test prompts (a demo world built in a temporary folder, a few seconds).

    python scripts/batch_gen_bench.py --rounds 7               # 64 prompts, 48 new tokens, batch 32
    python scripts/batch_gen_bench.py --rounds 9 --rank 0      # the base alone

Measured on 2 shared cores (load 5-8): mlx-lm / loop wall time 0.69x (7 rounds, per round
0.53-1.18x), and 0.80x with the demo's own settings (--prompts 100 --max-tokens 64 --batch-size 64);
the same text for every prompt. Likely why: the loop keeps rows that hit EOS in the batch to its
end, mlx-lm drops them, and it starts the next step before Python's bookkeeping of this one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import mlx_lc  # noqa: F401  (loads OpenBLAS before mlx)
import mlx.core as mx
import numpy as np

from mlx_lc import tasks
from mlx_lc.adapters import LoRA, linear_shapes
from mlx_lc.batch import generate
from mlx_lc.generate import apply_lora
from mlx_lc import model_folder
from mlx_lc.training.rows import encode_prompt, read_jsonl


def loop_generate(model, tokenizer, prompts: list[list[int]], max_tokens: int, batch_size: int) -> list[list[int]]:
    """The hand-written decoder (what mlx-lc's eval used): token ids out, EOS dropped."""
    from mlx_lm.models.cache import BatchKVCache

    eos = set(getattr(tokenizer, "eos_token_ids", None) or [tokenizer.eos_token_id])
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    outputs: list[list[int]] = [[] for _ in prompts]
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        longest = max(len(prompts[i]) for i in idx)
        pads = [longest - len(prompts[i]) for i in idx]
        x = mx.array([[0] * p + prompts[i] for p, i in zip(pads, idx)])
        cache = [BatchKVCache(pads) for _ in model.layers]
        logits = model(x, cache=cache)[:, -1, :]
        done = np.zeros(len(idx), bool)
        for _ in range(max_tokens):
            nxt = mx.argmax(logits, axis=-1)
            mx.eval(nxt)
            for j, t in enumerate(nxt.tolist()):
                if done[j]:
                    continue
                if t in eos:
                    done[j] = True
                else:
                    outputs[idx[j]].append(t)
            if done.all():
                break
            logits = model(nxt[:, None], cache=cache)[:, -1, :]
    return outputs


def random_lora(model, rank: int, seed: int = 0) -> LoRA:
    """A non-zero adapter on every linear of the blocks (the demo's adapters target all of them)."""
    shapes = sorted((p, s) for p, s in linear_shapes(model).items() if ".layers." in p)
    keys = mx.random.split(mx.random.key(seed), 2 * len(shapes))
    factors = {}
    for i, (path, (d_in, d_out)) in enumerate(shapes):
        ka, kb = keys[2 * i], keys[2 * i + 1]
        factors[path] = (0.1 * mx.random.normal((d_in, rank), key=ka), 0.1 * mx.random.normal((rank, d_out), key=kb))
    return LoRA(factors, 1.0, source="random")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="mlx-lm model folder (default: the demo's shipped base)")
    ap.add_argument("--data", type=Path,
                    help="a .jsonl with 'prompt' fields (default: the demo's summarize+es test rows)")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rank", type=int, default=8, help="rank of the random LoRA attached (0: none)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)

    from mlx_lc import demo

    tmp = tempfile.TemporaryDirectory()
    model_path = args.model or str(demo.SHIPPED_BASE)
    data = args.data
    if data is None:
        data = demo.sample_rows(Path(tmp.name)) / "test.jsonl"
    model, tok = model_folder.load(model_path)
    model.eval()
    if args.rank:
        apply_lora(model, random_lora(model, args.rank))
    rows = read_jsonl(data)[: args.prompts]
    prompts = [encode_prompt(tok, tasks.wrap_message(tok, r["prompt"])) for r in rows]
    lengths = [len(p) for p in prompts]
    print(f"{model_path}: {len(prompts)} prompts of {min(lengths)}-{max(lengths)} tokens from {data}, "
          f"{args.max_tokens} new tokens, batch {args.batch_size}, "
          f"LoRA rank {args.rank}, {args.rounds} rounds")

    runs = {"loop": lambda: loop_generate(model, tok, prompts, args.max_tokens, args.batch_size),
            "mlx-lm": lambda: generate(model, tok, prompts, args.max_tokens, args.batch_size)}
    outs = {name: f() for name, f in runs.items()}  # warm-up (and the outputs compared)
    same = sum(tok.decode(a) == b for a, b in zip(outs["loop"], outs["mlx-lm"]))
    n = sum(len(o) for o in outs["loop"])  # generated tokens (EOS left out); the same for both when the texts are
    times: dict[str, list[float]] = {n: [] for n in runs}
    cpu: dict[str, list[float]] = {n: [] for n in runs}  # steadier than wall time on a shared machine
    for r in range(args.rounds):
        for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            t, c = time.perf_counter(), time.process_time()
            runs[name]()
            times[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    for name in runs:
        wall = statistics.median(times[name])
        print(f"  {name:7s} {wall:6.2f} s wall (median; {min(times[name]):.2f}-{max(times[name]):.2f}), "
              f"{statistics.median(cpu[name]):6.2f} s CPU, {n} tokens, {n / wall:7.1f} tokens/s")
    for what, xs in (("wall", times), ("CPU", cpu)):
        ratios = [a / b for a, b in zip(xs["mlx-lm"], xs["loop"])]
        print(f"mlx-lm / loop {what} time: {statistics.median(ratios):.2f}x "
              f"(per-round {min(ratios):.2f}-{max(ratios):.2f}x)")
    print(f"same output text: {same}/{len(prompts)} prompts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
