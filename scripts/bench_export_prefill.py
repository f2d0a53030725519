"""Prefill's output before and after it returns the last position only, on a Qwen2.5-0.5B-shaped
model with random weights (no download), and what `--verify` measures on a correct export.

"before" is the same exporter with the last-position slice left out (logits for all T positions),
so the two packages differ only in that. Per prompt length T: the logits' bytes and the numpy
interpreter's prefill time (best of --repeat, after a warm-up run that dequantises the weights).

    python scripts/bench_export_prefill.py [--layers 24] [--quantize int4] [--tokens 128,512] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import mlx_lc  # noqa: F401  (BLAS before mlx)
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_export import write_random_model  # noqa: E402

from mlx_lc.export import ExportConfig, export  # noqa: E402
from mlx_lc.export import coreml  # noqa: E402
from mlx_lc.export.compositions import CompositionSpec  # noqa: E402
from mlx_lc.export.interpret import Interpreter  # noqa: E402
from mlx_lc.export.verify import causal_mask  # noqa: E402


def prefill_time(pkg: Path, fn: str, t: int, repeat: int) -> tuple[int, float]:
    interp = Interpreter(pkg)
    ids = np.random.default_rng(0).integers(0, 400, (1, t)).astype(np.int32)  # the tokenizer's ids
    inputs = {coreml.INPUT_IDS: ids, coreml.CAUSAL_MASK: causal_mask(t, 0)}
    interp.run(fn, inputs, interp.make_state(fn))  # warm-up: constants dequantised once
    best, nbytes = float("inf"), 0
    for _ in range(repeat):
        state = interp.make_state(fn)
        t0 = time.perf_counter()
        out = interp.run(fn, inputs, state)[coreml.LOGITS]
        best = min(best, time.perf_counter() - t0)
        nbytes = out.nbytes
    return nbytes, best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--quantize", default="int4")
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--tokens", default="128,512")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    tokens = [int(t) for t in args.tokens.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench_prefill.") as tmp:
        work = Path(tmp)
        model = write_random_model(work / "qwen", args.layers)
        comp = [CompositionSpec("base", "summarize+es")]
        results = {"layers": args.layers, "quantize": args.quantize, "context": args.context}
        rep = export(ExportConfig(model=str(model), out=str(work / "after"), compositions=comp, quantize=args.quantize,
                                  context=args.context, verify=True), progress=False)
        v = rep["verify"]["base"]
        results["verify"] = {k: v[k] for k in ("max_abs_err", "max_rel_err", "max_abs_logit", "greedy_agree",
                                                "greedy_total", "passed")}
        results["verify"]["quantization_max_rel_err"] = v.get("quantization", {}).get("max_rel_err")
        print(f"verify (correct export, {args.quantize}): max_rel_err {v['max_rel_err']:.3g} "
              f"(max |logit| {v['max_abs_logit']:.3g}), greedy {v['greedy_agree']}/{v['greedy_total']}, "
              f"quantization {results['verify']['quantization_max_rel_err']}")
        keep = coreml._Function.last_position
        coreml._Function.last_position = lambda self, x: x  # "before": logits for every position
        try:
            export(ExportConfig(model=str(model), out=str(work / "before"), compositions=comp,
                                quantize=args.quantize, context=args.context), progress=False)
        finally:
            coreml._Function.last_position = keep
        results["prefill"] = {}
        for t in tokens:
            row = {}
            for tag in ("before", "after"):
                nbytes, secs = prefill_time(work / tag / "Model.mlpackage", "base_prefill", t, args.repeat)
                row[tag] = {"logits_bytes": nbytes, "seconds": round(secs, 3)}
            results["prefill"][t] = row
            print(f"T={t}: logits {row['before']['logits_bytes'] / 1e6:.2f} MB -> {row['after']['logits_bytes'] / 1e6:.3f} MB, "
                  f"interpreter prefill {row['before']['seconds']:.2f}s -> {row['after']['seconds']:.2f}s")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_export_prefill.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
