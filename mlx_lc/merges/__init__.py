"""Merge methods: pure functions on arrays (one file each) and a plain name -> method registry.

`factor` methods combine the LoRA factors directly; `delta` methods combine the dense updates
scale * a @ b and are re-factored to a LoRA of the requested rank by truncated SVD (PEFT's
`*_svd` combination types do the same).
"""

from dataclasses import dataclass
from typing import Callable

from .cat import cat
from .dare import dare_linear, dare_ties
from .linear import linear
from .magnitude_prune import magnitude_prune
from .svd import factorize, factorize_lowrank, svd
from .ties import ties


@dataclass(frozen=True)
class Method:
    fn: Callable
    level: str  # "factor" or "delta"
    uses_density: bool = False
    uses_rank: bool = False
    random: bool = False


METHODS: dict[str, Method] = {
    "linear": Method(linear, "factor"),
    "cat": Method(cat, "factor"),
    "svd": Method(svd, "factor", uses_rank=True),
    "ties": Method(ties, "delta", uses_density=True, uses_rank=True),
    "dare_linear": Method(dare_linear, "delta", uses_density=True, uses_rank=True, random=True),
    "dare_ties": Method(dare_ties, "delta", uses_density=True, uses_rank=True, random=True),
    "magnitude_prune": Method(magnitude_prune, "delta", uses_density=True, uses_rank=True),
}

__all__ = ["METHODS", "Method", "factorize", "factorize_lowrank", "linear", "cat", "svd", "ties",
           "dare_linear", "dare_ties", "magnitude_prune"]
