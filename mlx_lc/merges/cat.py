"""Concatenation merge: the exact weighted sum of the updates, sum_i w_i A_i B_i, as one LoRA of
rank sum_i r_i (PEFT's `add_weighted_adapter(combination_type="cat")`)."""

import mlx.core as mx


def cat(a: list[mx.array], b: list[mx.array], weights: list[float]) -> tuple[mx.array, mx.array]:
    """a_i: (in, r_i), b_i: (r_i, out) -> (in, sum r_i), (sum r_i, out)."""
    a_c = mx.concatenate([x.astype(mx.float32) for x in a], axis=1)
    b_c = mx.concatenate([w * x.astype(mx.float32) for w, x in zip(weights, b)], axis=0)
    return a_c, b_c
