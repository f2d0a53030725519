"""DARE (Yu et al., ICML 2024, https://arxiv.org/abs/2311.03099): drop each entry of an update
with probability 1 - density and rescale the survivors by 1/density, then merge linearly
(`dare_linear`) or with TIES' sign election (`dare_ties`), as PEFT's merge_utils do."""

import mlx.core as mx

from .ties import disjoint_merge, majority_sign_mask, weighted


def random_prune(x: mx.array, density: float, key: mx.array) -> mx.array:
    if density >= 1.0:
        return x
    keep = mx.random.bernoulli(density, x.shape, key=key)
    return mx.where(keep, x / density, 0.0)


def _pruned(deltas, density, seed):
    keys = mx.random.split(mx.random.key(seed), len(deltas))
    return mx.stack([random_prune(d.astype(mx.float32), density, keys[i]) for i, d in enumerate(deltas)])


def dare_linear(deltas: list[mx.array], weights: list[float], density: float, seed: int = 0) -> mx.array:
    return weighted(_pruned(deltas, density, seed), weights).sum(axis=0)


def dare_ties(deltas: list[mx.array], weights: list[float], density: float, seed: int = 0) -> mx.array:
    pruned = _pruned(deltas, density, seed)
    # as in ties: the sign is elected from the unweighted updates
    return disjoint_merge(weighted(pruned, weights), majority_sign_mask(pruned))
