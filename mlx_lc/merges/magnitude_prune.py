"""Magnitude pruning merge (PEFT's `magnitude_prune`): keep each update's top-`density` entries
by magnitude, then take the weighted sum."""

import mlx.core as mx

from .ties import prune


def magnitude_prune(deltas: list[mx.array], weights: list[float], density: float) -> mx.array:
    return sum(w * prune(d.astype(mx.float32), density) for w, d in zip(weights, deltas))
