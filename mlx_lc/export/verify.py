"""Check a saved package against MLX on the same tokens, without Core ML, and give a verdict.

For each composition: MLX (float32, the composition's update attached) prefills a prompt and
decodes greedily for `steps` tokens; the numpy interpreter runs the package's prefill function on
the same prompt, then its decode function on MLX's tokens, through the package's own KV state.
Compared: the next-token logits after the prompt and after each step (max |difference|, absolute
and relative to max |MLX logit|) and how often the two argmaxes agree (teacher-forced: both see
MLX's tokens).

The verdict is the exporter's own error. For an int4/int8 package MLX runs the SAME dequantised
base weights the package stores (re-quantised here from the source model, so a package whose
weights changed after export disagrees); the distance to the float model, which is int4's or
int8's own error, is reported beside it for information.
"""

from __future__ import annotations

import numpy as np

from .. import tasks
from .coreml import CAUSAL_MASK, INPUT_IDS, LOGITS, function_names
from .interpret import Interpreter

SAMPLE = ("Anna: Shall we meet at the café on Friday at seven?\n"
          "Ben: Sure, see you there! I'll bring the photos from our trip.")

# Largest max |logit difference| / max |MLX logit| a correct package may show. The package holds
# every weight and intermediate in float16 (unit roundoff u = 2^-11 = 4.9e-4); MLX runs float32 on
# the same (dequantised) weights. Measured on correct exports (BENCHMARKS.md, "Core ML export"):
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
    `feed`: the tokens to decode instead of its own greedy ones (another run's, to compare on them)."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    out = [np.array(model(mx.array(tokens)[None], cache=cache)[0, -1].astype(mx.float32))]
    greedy = [int(np.argmax(out[-1]))]
    for i in range(steps):
        nxt = greedy[-1] if feed is None else feed[i]
        out.append(np.array(model(mx.array([[nxt]]), cache=cache)[0, -1].astype(mx.float32)))
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


def dequantized(weights: dict[str, np.ndarray], mode: str) -> list[tuple[str, np.ndarray]]:
    """The base weights as the package stores them once dequantised (those `mode` quantises)."""
    from . import quantize as quant

    out = []
    for name, w in weights.items():
        q = quant.quantize(w, mode) if name.endswith(".weight") and w.ndim == 2 else None
        if q is not None:
            out.append((name, q.dequantize()))
    return out


def verify_package(path, resolved, model, tokenizer, steps: int = 16, text: str = SAMPLE,
                   progress: bool = False, weights: dict[str, np.ndarray] | None = None,
                   mode: str = "none") -> dict:
    """Per composition: the `compare` report of the package against MLX on the package's weights
    (`weights` re-quantised with `mode`), plus, for int4/int8, `quantization` against the float model."""
    import mlx.core as mx
    from mlx.utils import tree_unflatten
    from tqdm import tqdm

    from ..generate import remove_adapters

    interp = Interpreter(path)
    context = interp.state_shapes(interp.functions[0])["keyCache"][3]
    model.set_dtype(mx.float32)  # the reference runs in float32; the package in float16
    deq = dequantized(weights, mode) if (weights is not None and mode != "none") else []
    originals = [(k, mx.array(weights[k])) for k, _ in deq]

    def reference(r, tokens, base, feed=None):
        if base:
            model.update(tree_unflatten(base))
        r.apply_to_mlx(model)
        try:
            return mlx_reference(model, tokens, steps, feed)
        finally:
            remove_adapters(model)

    report = {}
    for r in tqdm(resolved, desc="verify", disable=not progress):
        tokens = prompt_tokens(tokenizer, r.graph.task, context, steps, text)
        fns = function_names(r.graph)
        if deq:  # the float reference last: the model leaves with its own weights
            ref, greedy = reference(r, tokens, [(k, mx.array(v)) for k, v in deq])
            float_ref, _ = reference(r, tokens, originals, feed=greedy[:-1])
        else:
            ref, greedy = reference(r, tokens, None)
        got = run_package(interp, fns, tokens, greedy[:-1])
        report[r.spec.name] = {"prompt_tokens": len(tokens), "decode_steps": steps, **compare(ref, got),
                               "tolerance": REL_TOLERANCE}
        if deq:  # information only: what int4/int8 costs against the float model, on the same tokens
            q = compare(float_ref, got)
            report[r.spec.name]["quantization"] = {k: q[k] for k in ("max_abs_err", "max_rel_err", "greedy_agree",
                                                                      "greedy_total")}
        report[r.spec.name]["passed"] = passes(report[r.spec.name])
    return report
