"""TIES merge (Yadav et al., NeurIPS 2023, https://arxiv.org/abs/2306.01708), as PEFT's
`merge_utils.ties`: trim each update to its largest-magnitude entries, elect a sign per entry by
the weighted total, and average only the entries that agree with it (disjoint merge)."""

import mlx.core as mx


def magnitude_mask(x: mx.array, density: float) -> mx.array:
    """1 where |x| is among the top `density` fraction of entries, else 0."""
    if density >= 1.0:
        return mx.ones_like(x)
    k = int(density * x.size)
    if k <= 0:
        return mx.zeros_like(x)
    flat = mx.abs(x).flatten()
    threshold = mx.sort(flat)[x.size - k]
    return (mx.abs(x) >= threshold).astype(x.dtype)


def prune(x: mx.array, density: float) -> mx.array:
    return x * magnitude_mask(x, density)


def majority_sign_mask(stacked: mx.array) -> mx.array:
    """stacked: (n, ...) weighted updates -> bool mask of entries agreeing with the total's sign."""
    sign = mx.sign(stacked.sum(axis=0))
    sign = mx.where(sign == 0, 1.0, sign)
    return mx.sign(stacked) == sign


def disjoint_merge(stacked: mx.array, mask: mx.array) -> mx.array:
    """Mean over the inputs that agree with the elected sign (0 where none do)."""
    kept = (stacked * mask).sum(axis=0)
    count = mask.sum(axis=0)
    return kept / mx.maximum(count, 1)


def ties(deltas: list[mx.array], weights: list[float], density: float) -> mx.array:
    stacked = mx.stack([w * prune(d.astype(mx.float32), density) for w, d in zip(weights, deltas)])
    return disjoint_merge(stacked, majority_sign_mask(stacked))
