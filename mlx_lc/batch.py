"""Batched greedy generation for every command that generates for many prompts at once (eval,
multi-step, the demo's scoring, teacher and judge generation): mlx-lm's `batch_generate`, with
mlx-lc's checks in front of it.

mlx-lm prefills each batch right-padded, moves the padding to the left of its BatchKVCache (which
masks it and offsets RoPE per row), stops a row at EOS and drops it from the batch, so each output
equals one-prompt greedy decoding (`mlx_lc.generate`). scripts/batch_gen_bench.py times it against
the hand-written loop mlx-lc used before.
"""

from __future__ import annotations

from typing import Callable, Sequence

from .errors import MlxLcError
from .model_folder import check_fits, model_context


def generate(model, tokenizer, prompts: Sequence[list[int]], max_tokens: int, batch_size: int = 32,
             progress: Callable[[int], None] | None = None,
             name: Callable[[int], str] = lambda i: f"the prompt of row {i + 1}",
             confidence: list | None = None) -> list[str]:
    """Greedy completions (decoded, EOS left out) of token-id prompts, `batch_size` rows per forward
    pass. Every prompt is checked against the model's context before any is generated; `name(i)`
    names prompt i in the error. `progress(n)` is called as each batch of n prompts is done.
    `confidence`, a list, receives each completion's mean token log-probability, in order."""
    from mlx_lm.generate import batch_generate

    if max_tokens < 1:
        raise MlxLcError(f"max tokens must be at least 1, got {max_tokens}")
    if batch_size < 1:
        raise MlxLcError(f"batch size must be at least 1, got {batch_size}")
    context = model_context(model)
    for i, p in enumerate(prompts):
        if not p:
            raise MlxLcError(f"{name(i)} is empty")
        check_fits(context, len(p), max_tokens, name(i))
    # Rows of similar length share a batch: less padding to prefill and to attend over.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    texts: list[str] = [""] * len(prompts)
    means = [0.0] * len(prompts)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        out = batch_generate(model, tokenizer, [list(prompts[i]) for i in idx], max_tokens=max_tokens,
                             completion_batch_size=len(idx), prefill_batch_size=len(idx),
                             return_logprobs=confidence is not None)
        for k, (i, t) in enumerate(zip(idx, out.texts)):
            texts[i] = t
            if confidence is not None:
                means[i] = sum(out.logprobs[k]) / max(1, len(out.logprobs[k]))
        if progress is not None:
            progress(len(idx))
    if confidence is not None:
        confidence[:] = means
    return texts
