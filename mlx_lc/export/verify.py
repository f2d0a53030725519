"""Check a saved package against MLX on the same tokens, without Core ML.

For each composition: MLX (float32, the composition's update attached) prefills a prompt and
decodes greedily for `steps` tokens; the numpy interpreter runs the package's prefill function on
the same prompt, then its decode function on MLX's tokens, through the package's own KV state.
Reported: max |logit difference| (absolute, and relative to max |MLX logit|) over all positions
and steps, and how often the two argmaxes agree (teacher-forced: both see MLX's tokens).
"""

from __future__ import annotations

import numpy as np

from .. import tasks
from .coreml import CAUSAL_MASK, INPUT_IDS, LOGITS, function_names
from .interpret import Interpreter

SAMPLE = ("Anna: Shall we meet at the café on Friday at seven?\n"
          "Ben: Sure, see you there! I'll bring the photos from our trip.")


def causal_mask(t: int, p: int) -> np.ndarray:
    """The additive mask Apple's export expects: (1, 1, T, P+T), 0 where visible."""
    j = np.arange(p + t)[None, :]
    i = np.arange(t)[:, None] + p
    return np.where(j <= i, 0.0, np.finfo(np.float16).min).astype(np.float16)[None, None]


def mlx_reference(model, tokens: list[int], steps: int) -> tuple[list[np.ndarray], list[int]]:
    """Logits (prefill: (T, V), then one (V,) per step) and the greedy tokens, in float32."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    logits = model(mx.array(tokens)[None], cache=cache)[0].astype(mx.float32)
    out = [np.array(logits)]
    greedy = [int(np.argmax(out[-1][-1]))]
    for _ in range(steps):
        logits = model(mx.array([[greedy[-1]]]), cache=cache)[0, -1].astype(mx.float32)
        out.append(np.array(logits))
        greedy.append(int(np.argmax(out[-1])))
    return out, greedy


def run_package(interp: Interpreter, fns: dict[str, str], tokens: list[int], feed: list[int]) -> list[np.ndarray]:
    """Prefill `tokens`, then decode each token of `feed` through the package's state."""
    state = interp.make_state(fns["prefill"])
    t = len(tokens)
    res = interp.run(fns["prefill"], {INPUT_IDS: np.array([tokens], np.int32), CAUSAL_MASK: causal_mask(t, 0)}, state)
    out = [res[LOGITS][0].astype(np.float32)]
    for i, tok in enumerate(feed):
        res = interp.run(fns["decode"], {INPUT_IDS: np.array([[tok]], np.int32), CAUSAL_MASK: causal_mask(1, t + i)},
                         state)
        out.append(res[LOGITS][0, -1].astype(np.float32))
    return out


def compare(ref: list[np.ndarray], got: list[np.ndarray]) -> dict:
    diff = max(float(np.abs(r - g).max()) for r, g in zip(ref, got))
    scale = max(float(np.abs(r).max()) for r in ref)
    ref_top = [int(np.argmax(ref[0][-1]))] + [int(np.argmax(r)) for r in ref[1:]]
    got_top = [int(np.argmax(got[0][-1]))] + [int(np.argmax(g)) for g in got[1:]]
    agree = sum(a == b for a, b in zip(ref_top, got_top))
    return {"max_abs_err": diff, "max_rel_err": diff / max(scale, 1e-12), "max_abs_logit": scale,
            "prefill_max_abs_err": float(np.abs(ref[0] - got[0]).max()),
            "greedy_agree": agree, "greedy_total": len(ref_top), "finite": bool(all(np.isfinite(g).all() for g in got)),
            "mlx_tokens": ref_top, "package_tokens": got_top}


def prompt_tokens(tokenizer, task: str, context: int, steps: int, text: str = SAMPLE) -> list[int]:
    tokens = list(tokenizer.encode(tasks.format_prompt(tokenizer, tasks.get(task), text)))
    return tokens[: max(1, context - steps - 1)]


def verify_package(path, resolved, model, tokenizer, steps: int = 16, text: str = SAMPLE,
                   progress: bool = False) -> dict:
    """Per composition: the `compare` report of the package against MLX."""
    import mlx.core as mx
    from tqdm import tqdm

    from ..generate import remove_adapters

    interp = Interpreter(path)
    context = interp.state_shapes(interp.functions[0])["keyCache"][3]
    model.set_dtype(mx.float32)  # the reference runs in float32; the package in float16
    report = {}
    for r in tqdm(resolved, desc="verify", disable=not progress):
        tokens = prompt_tokens(tokenizer, r.graph.task, context, steps, text)
        r.apply_to_mlx(model)
        try:
            ref, greedy = mlx_reference(model, tokens, steps)
        finally:
            remove_adapters(model)
        got = run_package(interp, function_names(r.graph), tokens, greedy[:-1])
        report[r.spec.name] = {"prompt_tokens": len(tokens), "decode_steps": steps, **compare(ref, got)}
    return report
