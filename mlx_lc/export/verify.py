"""Check a saved package against MLX on the same tokens, without Core ML, and give a verdict.

For each composition: MLX (computing in float32, the composition's update attached) prefills a
prompt and decodes greedily for `steps` tokens; the numpy interpreter runs the package's prefill function on
the same prompt, then its decode function on MLX's tokens, through the package's own KV state.
Compared: the next-token logits after the prompt and after each step (max |difference|, absolute
and relative to max |MLX logit|) and how often the two argmaxes agree (teacher-forced: both see
MLX's tokens).

The verdict is the exporter's own error. MLX holds the SAME base weights the package stores,
in float16 as the package does: for int4/int8 re-quantised here from the source model and
dequantised, so a package whose weights changed after export disagrees. Its activations are
float32 from the embedding on, so every op computes in float32 on those weights. The distance to
the float model (its weights in float16), which is int4's or int8's own error, is reported beside
it for information.

Memory: MLX runs first, holding the base weights once in float16 (one model at a time: the float
model's pass loads a fresh one); then the package's interpreter, about the same again.
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
# 4.7e-4 .. 9.5e-4 on the tests' tiny llama and qwen2 models (none, int8, int4), 1.5e-3 on a
# random Qwen2.5-0.5B-shaped model (24 layers, int4): one to three roundings of the largest logit.
# 1e-2 (about 20u) leaves a 6.5x margin above the largest for longer prompts and deeper models,
# while a changed weight lands above it (one projection of the tiny model scaled by 1.5: 0.026 ..
# 0.097; by 1.1: 0.006 .. 0.019, so a change that small to one matrix can pass).
REL_TOLERANCE = 1e-2


def causal_mask(t: int, p: int) -> np.ndarray:
    """The additive mask Apple's export expects: (1, 1, T, P+T), 0 where visible."""
    j = np.arange(p + t)[None, :]
    i = np.arange(t)[:, None] + p
    return np.where(j <= i, 0.0, np.finfo(np.float16).min).astype(np.float16)[None, None]


def mlx_reference(model, tokens: list[int], steps: int, feed: list[int] | None = None) -> tuple[list[np.ndarray], list[int]]:
    """Next-token logits (V,) after the prompt, then after each step, and the greedy tokens, in float32.
    `feed`: the tokens to decode instead of its own greedy ones (another run's, to compare on them).
    The embeddings enter as float32, so each layer computes in float32 whatever its weights' dtype."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    def forward(ids: list[int], cache=None) -> np.ndarray:  # (len(ids), V) float32
        x = mx.array(ids)[None]
        h = model.model.embed_tokens(x).astype(mx.float32)
        return np.array(model(x, cache=cache, input_embeddings=h)[0].astype(mx.float32))

    if feed is not None:  # teacher-forced: one pass over the prompt and the fed tokens
        out = list(forward(list(tokens) + list(feed[:steps]))[len(tokens) - 1:])
        return out, [int(np.argmax(r)) for r in out]
    cache = make_prompt_cache(model)
    out = [forward(tokens, cache)[-1]]
    greedy = [int(np.argmax(out[-1]))]
    for _ in range(steps):
        out.append(forward([greedy[-1]], cache)[-1])
        greedy.append(int(np.argmax(out[-1])))
    return out, greedy


def run_package(interp: Interpreter, fns: dict[str, str], tokens: list[int], feed: list[int]) -> list[np.ndarray]:
    """Prefill `tokens`, then decode each token of `feed` through the package's state: (V,) logits each."""
    state = interp.make_state(fns["prefill"])
    t = len(tokens)
    res = interp.run(fns["prefill"], {INPUT_IDS: np.array([tokens], np.int32), CAUSAL_MASK: causal_mask(t, 0)}, state)
    out = [res[LOGITS][0, -1].astype(np.float32)]
    for i, tok in enumerate(feed):
        res = interp.run(fns["decode"], {INPUT_IDS: np.array([[tok]], np.int32), CAUSAL_MASK: causal_mask(1, t + i)},
                         state)
        out.append(res[LOGITS][0, -1].astype(np.float32))
    return out


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

    interp = Interpreter(path)
    context = interp.state_shapes(interp.functions[0])["keyCache"][3]
    bar = tqdm(total=len(resolved) * (3 if mode != "none" else 2), desc="verify", disable=not progress)

    def references(base_mode: str, feeds=None) -> dict:
        mlx_model, tokenizer = reference_model(model, base_mode)
        out = {}
        for r in resolved:
            tokens = prompt_tokens(tokenizer, r.graph.task, context, steps, text)
            r.apply_to_mlx(mlx_model)
            try:
                out[r.spec.name] = (tokens, *mlx_reference(mlx_model, tokens, steps,
                                                           None if feeds is None else feeds[r.spec.name]))
            finally:
                remove_adapters(mlx_model)
            bar.update(1)
        del mlx_model
        gc.collect()
        mx.clear_cache()  # the next model, or the interpreter, reuses this memory
        return out

    refs = references(mode)
    float_refs = references("none", {n: greedy[:-1] for n, (_, _, greedy) in refs.items()}) if mode != "none" else {}

    report = {}
    for r in resolved:
        tokens, ref, greedy = refs[r.spec.name]
        got = run_package(interp, function_names(r.graph), tokens, greedy[:-1])
        report[r.spec.name] = {"prompt_tokens": len(tokens), "decode_steps": steps, **compare(ref, got),
                               "tolerance": REL_TOLERANCE}
        if mode != "none":  # information only: what int4/int8 costs against the float model
            q = compare(float_refs[r.spec.name][1], got)
            report[r.spec.name]["quantization"] = {k: q[k] for k in ("max_abs_err", "max_rel_err", "greedy_agree",
                                                                      "greedy_total")}
        report[r.spec.name]["passed"] = passes(report[r.spec.name])
        bar.update(1)
    bar.close()
    return report
