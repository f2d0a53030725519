"""Check a saved package against MLX on the same tokens, without Core ML, and give a verdict.

For each composition: the numpy interpreter runs the package's prefill function on a prompt, then
its decode function on its own greedy tokens for `steps` steps, through the package's KV state.
MLX (computing in float32, the composition's update attached) then reads the same prompt and
tokens in one pass. Compared: the next-token logits after the prompt and after each step (max
|difference|, absolute and relative to max |MLX logit|) and how often the two argmaxes agree
(teacher-forced: both see the package's tokens).

The verdict is the exporter's own error. MLX holds the SAME base weights the package stores,
in float16 as the package does: for int4/int8 re-quantised here from the source model and
dequantised, so a package whose weights changed after export disagrees. Its activations are
float32 from the embedding on, so every op computes in float32 on those weights. The distance to
the float model (its weights in float16), which is int4's or int8's own error, is reported beside
it for information.

Memory: one holder of the base weights at a time, each about their float16 size: the package's
interpreter, then the MLX model on the package's weights, then (int4/int8) a fresh one on the
float weights.
"""

from __future__ import annotations

import numpy as np

from .. import tasks
from .coreml import CAUSAL_MASK, INPUT_IDS, LOGITS, function_names
from .interpret import Interpreter
from .weights import read, shapes_of

SAMPLE = ("Anna: Shall we meet at the café on Friday at seven?\n"
          "Ben: Sure, see you there! I'll bring the photos from our trip.")

# Largest max |logit difference| / max |MLX logit| a correct package may show. The package holds
# every weight and intermediate in float16 (unit roundoff u = 2^-11 = 4.9e-4); MLX computes in float32
# on the same (dequantised) weights. Measured on correct exports (BENCHMARKS.md, "Core ML export"):
# 4.2e-4 .. 7.6e-4 on tiny llama and qwen2 models (none, int8, int4), 1.4e-3 on a random
# Qwen2.5-0.5B-shaped model (24 layers, int4): one to three roundings of the largest logit.
# 1e-2 (about 20u) leaves a 7x margin above the largest for longer prompts and deeper models,
# while a changed weight lands above it (one projection of the tiny models scaled by 1.5: 0.055 ..
# 0.21; by 1.1: 0.012 .. 0.046, so a change much smaller than that to one matrix can pass).
REL_TOLERANCE = 1e-2


def causal_mask(t: int, p: int) -> np.ndarray:
    """The additive mask Apple's export expects: (1, 1, T, P+T), 0 where visible."""
    j = np.arange(p + t)[None, :]
    i = np.arange(t)[:, None] + p
    return np.where(j <= i, 0.0, np.finfo(np.float16).min).astype(np.float16)[None, None]


def mlx_logits(model, tokens: list[int], feed: list[int]) -> list[np.ndarray]:
    """Next-token logits (V,) in float32 after the prompt `tokens`, then after each token of `feed`:
    one teacher-forced pass. The embeddings enter as float32, so each layer computes in float32
    whatever its weights' dtype."""
    import mlx.core as mx

    x = mx.array(list(tokens) + list(feed))[None]
    h = model.model.embed_tokens(x).astype(mx.float32)
    return list(np.array(model(x, input_embeddings=h)[0, len(tokens) - 1:].astype(mx.float32)))


def run_package(interp: Interpreter, fns: dict[str, str], tokens: list[int], steps: int) -> tuple[list[np.ndarray], list[int]]:
    """Prefill `tokens`, then decode `steps` greedy tokens through the package's state: the (V,)
    logits after the prompt and after each step, and the greedy tokens."""
    state = interp.make_state(fns["prefill"])
    t = len(tokens)
    res = interp.run(fns["prefill"], {INPUT_IDS: np.array([tokens], np.int32), CAUSAL_MASK: causal_mask(t, 0)}, state)
    out = [res[LOGITS][0, -1].astype(np.float32)]
    greedy = [int(np.argmax(out[-1]))]
    for i in range(steps):
        res = interp.run(fns["decode"], {INPUT_IDS: np.array([[greedy[-1]]], np.int32),
                                         CAUSAL_MASK: causal_mask(1, t + i)}, state)
        out.append(res[LOGITS][0, -1].astype(np.float32))
        greedy.append(int(np.argmax(out[-1])))
    return out, greedy


def compare(ref: list[np.ndarray], got: list[np.ndarray]) -> dict:
    diff = max(float(np.abs(r - g).max()) for r, g in zip(ref, got))
    scale = max(float(np.abs(r).max()) for r in ref)
    ref_top, got_top = [int(np.argmax(r)) for r in ref], [int(np.argmax(g)) for g in got]
    agree = sum(a == b for a, b in zip(ref_top, got_top))
    return {"max_abs_err": diff, "max_rel_err": diff / max(scale, 1e-12), "max_abs_logit": scale,
            "prefill_max_abs_err": float(np.abs(ref[0] - got[0]).max()),
            "greedy_agree": agree, "greedy_total": len(ref_top), "finite": bool(all(np.isfinite(g).all() for g in got)),
            "mlx_tokens": ref_top, "package_tokens": got_top}


def passes(v: dict, tol: float | None = None) -> bool:
    """One composition's verdict: finite, and within `tol` (REL_TOLERANCE) of MLX on the package's own weights."""
    return bool(v["finite"]) and v["max_rel_err"] <= (REL_TOLERANCE if tol is None else tol)


def failures(report: dict, tol: float | None = None) -> list[str]:
    """One phrase per failing composition of a `verify_package` report (empty: the package passes)."""
    tol = REL_TOLERANCE if tol is None else tol
    out = []
    for name, v in report.items():
        if not v["finite"]:
            out.append(f"{name} gives non-finite logits (NaN or Inf)")
        elif not passes(v, tol):
            out.append(f"{name} is off by {v['max_rel_err']:.2g} of max |logit| (tolerance {tol:g})")
    return out


def prompt_tokens(tokenizer, task: str, context: int, steps: int, text: str = SAMPLE) -> list[int]:
    tokens = list(tokenizer.encode(tasks.format_prompt(tokenizer, tasks.get(task), text)))
    return tokens[: max(1, context - steps - 1)]


def reference_model(model: str, mode: str):
    """A fresh MLX model of `model` holding its base weights in float16, read one tensor at a time:
    as the package stores them once dequantised (`mode` int4/int8), or as they are ("none")."""
    import mlx.core as mx

    from . import quantize as quant
    from .package import load_model

    mlx_model, tokenizer, _, _, weights = load_model(model)
    for name, shape in shapes_of(weights).items():
        if name.endswith(".weight") and quant.applies(shape, mode):
            arr = mx.array(quant.quantize(weights[name], mode).dequantize(np.float16))
        else:
            arr = mx.array(read(weights, name, np.float16))
        mlx_model.load_weights([(name, arr)], strict=False)
        mx.eval(arr)
    return mlx_model, tokenizer


def verify_package(path, resolved, model: str, steps: int = 16, text: str = SAMPLE,
                   progress: bool = False, mode: str = "none") -> dict:
    """Per composition: the `compare` report of the package against MLX on the package's weights
    (`model`'s re-quantised with `mode`), plus, for int4/int8, `quantization` against the float model."""
    import gc

    import mlx.core as mx
    from tqdm import tqdm

    from ..generate import remove_adapters
    from .package import load_model

    interp = Interpreter(path)
    context = interp.state_shapes(interp.functions[0])["keyCache"][3]
    tokenizer = load_model(model)[1]  # the model itself stays lazy: nothing read
    bar = tqdm(total=len(resolved) * (3 if mode != "none" else 2), desc="verify", disable=not progress)
    prompts, package = {}, {}
    for r in resolved:
        prompts[r.spec.name] = prompt_tokens(tokenizer, r.graph.task, context, steps, text)
        package[r.spec.name] = run_package(interp, function_names(r.graph), prompts[r.spec.name], steps)
        bar.update(1)
    del interp
    gc.collect()

    def references(base_mode: str) -> dict:
        mlx_model, _ = reference_model(model, base_mode)
        out = {}
        for r in resolved:
            r.apply_to_mlx(mlx_model)
            try:
                out[r.spec.name] = mlx_logits(mlx_model, prompts[r.spec.name], package[r.spec.name][1][:-1])
            finally:
                remove_adapters(mlx_model)
            bar.update(1)
        del mlx_model
        gc.collect()
        mx.clear_cache()  # the next model reuses this memory
        return out

    refs = references(mode)
    float_refs = references("none") if mode != "none" else {}
    bar.close()

    report = {}
    for r in resolved:
        got = package[r.spec.name][0]
        report[r.spec.name] = {"prompt_tokens": len(prompts[r.spec.name]), "decode_steps": steps,
                               **compare(refs[r.spec.name], got), "tolerance": REL_TOLERANCE}
        if mode != "none":  # information only: what int4/int8 costs against the float model
            q = compare(float_refs[r.spec.name], got)
            report[r.spec.name]["quantization"] = {k: q[k] for k in ("max_abs_err", "max_rel_err", "greedy_agree",
                                                                      "greedy_total")}
        report[r.spec.name]["passed"] = passes(report[r.spec.name])
    return report
