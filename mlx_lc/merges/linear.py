"""Linear merge of LoRA factors, as in Learnable Calibration (Bohdal et al., EMNLP 2025,
https://arxiv.org/abs/2507.16083): B' = sum_i w_i B_i, A' = sum_i w_i A_i (w_i = 1/N: the mean).

This is a *factor-level* merge: (sum A_i)(sum B_i) contains cross terms A_i B_j, which is why
it is not the sum of the updates (see `cat` for that). It is the starting point the paper
calibrates.
"""

import mlx.core as mx


def linear(a: list[mx.array], b: list[mx.array], weights: list[float]) -> tuple[mx.array, mx.array]:
    """a_i: (in, r), b_i: (r, out), all the same rank -> (in, r), (r, out)."""
    a_m = sum(w * x.astype(mx.float32) for w, x in zip(weights, a))
    b_m = sum(w * x.astype(mx.float32) for w, x in zip(weights, b))
    return a_m, b_m
