"""Training speed with and without length-grouped batches (FitConfig.group_by_length), side by side.

Rows of one data set vary in length (the demo's dialogues: 119-229 tokens), and a batch pads to
its longest row, so some of every step is padding, and attention's share grows with the square
of the padded length. This trains the same LoRA on the same rows with both batchings, taking turns
(A,B / B,A / ...), and prints the median of the per-round ratios of seconds per step, beside the
share of padding each batching leaves. Defaults: the demo's shipped base and its summarize+es rows
(a demo world built in a temporary folder, a few seconds).

    python scripts/batching_probe.py --steps 20 --rounds 3  # 52 s here (2 cores), the README's figure
    python scripts/batching_probe.py --model M --data D    # any mlx-lm model, any train.jsonl folder
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import mlx_lc  # noqa: F401  (loads OpenBLAS before mlx)
import numpy as np

from mlx_lc import model_folder
from mlx_lc.training.batches import batch_order
from mlx_lc.training.fit import FitConfig, fit
from mlx_lc.training.rows import encode_rows, load_splits
from mlx_lc.training.train import LoRAConfig, add_lora


def padding_share(lengths: np.ndarray, batch: int, steps: range, grouped: bool, seed: int) -> float:
    """Fraction of the padded (B, L) tokens that are padding, over `steps` (collate pads to 16)."""
    real = padded = 0
    for s in steps:
        idx = batch_order(len(lengths), batch, seed, s, lengths if grouped else None)
        real += int(lengths[idx].sum())
        padded += len(idx) * 16 * -(-int(lengths[idx].max()) // 16)
    return 1 - real / padded


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="mlx-lm model folder (default: the demo's shipped base)")
    ap.add_argument("--data", type=Path, help="folder with train.jsonl (default: the demo's summarize+es rows)")
    ap.add_argument("--steps", type=int, default=40, help="training steps per variant and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args(argv)

    from mlx_lc import demo

    tmp = tempfile.TemporaryDirectory()
    model_path = args.model or str(demo.SHIPPED_BASE)
    data = args.data
    if data is None:
        data = demo.sample_rows(Path(tmp.name))
    _, tok = model_folder.load(model_path)
    rows, _ = load_splits(data)
    train = encode_rows(tok, rows)
    lengths = np.array([len(ids) - 1 for ids, _ in train])
    print(f"{model_path}: {len(train)} rows from {data} (tokens {lengths.min()}-{lengths.max()}, "
          f"mean {lengths.mean():.0f}); {args.steps} steps of {args.batch_size} rows per variant and round")

    times: dict[bool, list[float]] = {False: [], True: []}
    for r in range(args.rounds):
        for grouped in ([False, True] if r % 2 == 0 else [True, False]):
            model, _ = model_folder.load(model_path)
            add_lora(model, LoRAConfig(rank=8, scale=2.0, dropout=0.0))
            fcfg = FitConfig(lr=2e-3, batch_size=args.batch_size, iters=args.steps, seed=r,
                             group_by_length=grouped)
            t = time.perf_counter()
            fit(model, train, [], fcfg, progress=False)
            times[grouped].append((time.perf_counter() - t) / args.steps)
    ratios = [a / b for a, b in zip(times[False], times[True])]
    steps = range(args.steps)
    for grouped, name in ((False, "shuffled batches"), (True, "length-grouped")):
        share = statistics.mean(padding_share(lengths, args.batch_size, steps, grouped, r) for r in range(args.rounds))
        print(f"  {name:17s} {statistics.median(times[grouped]):.3f} s/step (median of {args.rounds}); "
              f"padding {100 * share:.0f}% of the batch tokens")
    print(f"speed-up, length-grouped vs shuffled: {statistics.median(ratios):.2f}x "
          f"(per-round {min(ratios):.2f}-{max(ratios):.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
