"""Benchmark `mlx-lc export coreml` on a Qwen2.5-0.5B-shaped model with random weights (no download).

Prints export time and package size per parameter for none/int8/int4, and what one extra
composition adds to a package: with its adapters already in the package (only its calibration
and its two functions' graphs), and with one new single-task LoRA (rank 32 on all projections,
the paper's setting), against one package per composition.

    python scripts/bench_export.py [--layers 24] [--rank 32] [--context 512] [--out bench_export]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import mlx_lc  # noqa: F401  (BLAS before mlx)
import mlx.core as mx
import numpy as np

from mlx_lc import adapters as adapters_io
from mlx_lc import calibration as calib_io
from mlx_lc import model_folder
from mlx_lc.adapters import LoRA
from mlx_lc.export import ExportConfig, export
from mlx_lc.export.compositions import CompositionSpec, parse
from mlx_lc.merge import MergeConfig, merge
from mlx_lc.tiny import DEFAULT_CORPUS, train_tokenizer

QWEN25_05B = {"model_type": "qwen2", "hidden_size": 896, "num_hidden_layers": 24, "intermediate_size": 4864,
              "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936, "rms_norm_eps": 1e-6,
              "rope_theta": 1000000.0, "max_position_embeddings": 32768, "tie_word_embeddings": True,
              "torch_dtype": "bfloat16"}


def write_random_model(out: Path, layers: int) -> Path:
    from mlx_lm.models import qwen2

    config = dict(QWEN25_05B, num_hidden_layers=layers)
    mx.random.seed(0)
    model = qwen2.Model(qwen2.ModelArgs.from_dict(config))
    model.set_dtype(mx.bfloat16)
    mx.eval(model.parameters())
    # Only the prompt templates need a tokenizer; its vocabulary is smaller than the model's.
    model_folder.save(out, model, train_tokenizer(DEFAULT_CORPUS.splitlines(), 400), config)
    return out


def write_random_adapter(out: Path, layers: int, rank: int, seed: int) -> Path:
    c = QWEN25_05B
    d, kv = c["hidden_size"], c["num_key_value_heads"] * c["hidden_size"] // c["num_attention_heads"]
    dims = {"self_attn.q_proj": (d, d), "self_attn.k_proj": (d, kv), "self_attn.v_proj": (d, kv),
            "self_attn.o_proj": (d, d), "mlp.gate_proj": (d, c["intermediate_size"]),
            "mlp.up_proj": (d, c["intermediate_size"]), "mlp.down_proj": (c["intermediate_size"], d)}
    rng = np.random.default_rng(seed)
    factors = {f"model.layers.{i}.{k}": (mx.array(rng.normal(0, d_in ** -0.5, (d_in, rank)), dtype=mx.float32),
                                         mx.array(rng.normal(0, 0.01, (rank, d_out)), dtype=mx.float32))
               for i in range(layers) for k, (d_in, d_out) in dims.items()}
    return adapters_io.write_mlx(LoRA(factors, 0.5), out)


def write_random_calibration(out: Path, adapter_dirs, seed: int) -> Path:
    merged = merge([adapters_io.read(p) for p in adapter_dirs], MergeConfig("linear"))
    calib = calib_io.Calibration(calib_io.CalibrationConfig("lc", "scale"), calib_io.module_shapes(merged))
    rng = np.random.default_rng(seed)
    calib.load_weights([(k, mx.array(1 + rng.normal(0, 0.1, v.shape), dtype=mx.float32))
                        for k, v in calib.tensors().items()])
    return calib_io.save(calib, merged, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--out", type=Path, default=Path("bench_export"))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_export.") as tmp:
        run_bench(args, Path(tmp))


def run_bench(args, work: Path) -> None:
    t = time.perf_counter()
    model = write_random_model(work / "qwen", args.layers)
    print(f"random Qwen2.5-0.5B-shaped model ({args.layers} layers) written in {time.perf_counter() - t:.0f}s")
    a = {n: write_random_adapter(work / n, args.layers, args.rank, s)
         for s, n in enumerate(("summarize", "reply", "es", "fr"), 1)}
    comps = {}
    for p, s in (("summarize", "es"), ("summarize", "fr"), ("reply", "es"), ("reply", "fr")):
        name = f"{p[:3]}_{s}"
        cal = write_random_calibration(work / f"c_{name}", [a[p], a[s]], len(comps))
        comps[name] = f"{name}:{p}+{s}={a[p]},{a[s]},{cal}"

    def run(tag: str, specs, q: str) -> dict:
        rep = export(ExportConfig(model=str(model), out=str(args.out / tag),
                                  compositions=specs, quantize=q, context=args.context), progress=False)
        print(f"  {tag:<22} {rep['export_seconds']:7.1f}s {rep['package_bytes'] / 1e6:9.1f} MB "
              f"{8 * rep['bytes_per_param']:6.2f} bits/param")
        return rep

    results = {"base_params": None, "quantize": {}, "compositions": {}}
    print(f"\nexport (base model, one zero-shot composition), context {args.context}:")
    for q in ("none", "int8", "int4"):
        rep = run(f"base_{q}", [CompositionSpec("base", "summarize+es")], q)
        results["base_params"] = rep["base_params"]
        results["quantize"][q] = {"seconds": rep["export_seconds"], "bytes": rep["package_bytes"],
                                  "bits_per_param": 8 * rep["bytes_per_param"]}

    print(f"\ncompositions (int4 base, rank-{args.rank} LoRAs on all projections, LC calibration):")
    sizes = {}
    for names in (["sum_es"], ["sum_fr"], ["sum_es", "sum_fr"], ["sum_es", "sum_fr", "rep_es"],
                  ["sum_es", "sum_fr", "rep_es", "rep_fr"]):
        rep = run("+".join(names), [parse(comps[n]) for n in names], "int4")
        sizes[tuple(names)] = rep["package_bytes"]
        results["compositions"]["+".join(names)] = {"bytes": rep["package_bytes"], "seconds": rep["export_seconds"],
                                                    "lowrank_bytes": rep["shared_lowrank_bytes"]}
    new_lora = sizes[("sum_es", "sum_fr")] - sizes[("sum_es",)]
    reuse = sizes[("sum_es", "sum_fr", "rep_es", "rep_fr")] - sizes[("sum_es", "sum_fr", "rep_es")]
    separate = sizes[("sum_es",)] + sizes[("sum_fr",)]
    results["extra_composition_bytes"] = {"adapters_already_in_package": reuse, "with_one_new_lora": new_lora}
    print(f"\none extra composition adds: {reuse / 1e6:.2f} MB when its adapters are already in the package "
          f"(rep_fr beside rep_es and sum_fr), {new_lora / 1e6:.2f} MB with one new LoRA (sum_fr beside sum_es)")
    print(f"sum_es + sum_fr: one package {sizes[('sum_es', 'sum_fr')] / 1e6:.1f} MB vs two packages "
          f"{separate / 1e6:.1f} MB")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_export.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out / 'bench_export.json'} (packages under {args.out})")


if __name__ == "__main__":
    main()
