"""TIES merge (Yadav et al., NeurIPS 2023, https://arxiv.org/abs/2306.01708), as PEFT's
`merge_utils.ties`: trim each update to its largest-magnitude entries, elect a sign per entry by
the total of the trimmed updates before weighting, then weight them and average only the entries
that agree with that sign (disjoint merge: divided by how many agree, not by their weights)."""

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
    """stacked: (n, ...) trimmed, unweighted updates -> bool mask of entries agreeing with the
    total's sign (a zero total counts as +, and pruned zeros never agree)."""
    sign = mx.sign(stacked.sum(axis=0))
    sign = mx.where(sign == 0, 1.0, sign)
    return mx.sign(stacked) == sign


def disjoint_merge(stacked: mx.array, mask: mx.array) -> mx.array:
    """Mean over the inputs that agree with the elected sign (0 where none do)."""
    kept = (stacked * mask).sum(axis=0)
    count = mask.sum(axis=0)
    return kept / mx.maximum(count, 1)


def weighted(stacked: mx.array, weights: list[float]) -> mx.array:
    """stacked: (n, ...) -> each of the n updates times its weight."""
    w = mx.array(weights, dtype=stacked.dtype)
    return stacked * w.reshape((-1,) + (1,) * (stacked.ndim - 1))


def ties(deltas: list[mx.array], weights: list[float], density: float) -> mx.array:
    trimmed = mx.stack([prune(d.astype(mx.float32), density) for d in deltas])
    # PEFT elects the sign before weighting: a weight scales an update's share of the mean, it
    # does not give it more votes.
    return disjoint_merge(weighted(trimmed, weights), majority_sign_mask(trimmed))
