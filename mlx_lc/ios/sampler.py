"""A portable seeded sampler: the reference for ios_shortcut's Swift `Sampler`.

Both sides compute in IEEE doubles with the same operations in the same order, so for the same
logits, settings and seed they pick the same tokens (golden-tested). The only platform-dependent
step is `exp`; libms agree to the last bit almost always, and a 1-ulp difference can only flip a
draw that lands within ~1e-16 of a boundary.

Algorithm (keep in sync with Sources/MLXLCCore/Sampler.swift):
  temperature <= 0: argmax, lowest index on ties.
  else  x_i = logit_i / temperature, w_i = exp(x_i - max x), total = sum of w in index order.
        top_p < 1: walk tokens by w descending (ties: lower index first), keep them until the
                   kept mass (summed in that order) reaches top_p * total; candidates are the kept
                   tokens in that order, mass = kept mass.
        else       candidates are all tokens in index order, mass = total.
        u = rng.next_double(); pick the first candidate whose running sum of w exceeds u * mass
        (the last candidate if rounding leaves none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

MASK64 = (1 << 64) - 1


class SplitMix64:
    """Steele, Lea and Flood's SplitMix64: a 64-bit state, one add and two multiply-xorshifts per
    draw. Small enough to write identically in any language."""

    def __init__(self, seed: int):
        self.state = seed & MASK64

    def next_u64(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def next_double(self) -> float:
        """Uniform in [0, 1) with 53 random bits."""
        return (self.next_u64() >> 11) * 2.0 ** -53


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0


def argmax(logits: Sequence[float]) -> int:
    best, best_v = 0, -math.inf
    for i, v in enumerate(logits):
        if v > best_v:
            best, best_v = i, v
    return best


def sample(logits: Sequence[float], temperature: float, top_p: float, rng: SplitMix64) -> int:
    """One token from `logits` (floats; fp16 values convert exactly). Draws from `rng` only when
    sampling (temperature > 0), so greedy steps do not advance the stream."""
    if temperature <= 0:
        return argmax(logits)
    x = [float(v) / temperature for v in logits]
    m = max(x)
    w = [math.exp(v - m) for v in x]
    total = 0.0
    for v in w:
        total += v
    if top_p < 1.0:
        order = sorted(range(len(w)), key=lambda i: (-w[i], i))
        cut, kept, mass = top_p * total, [], 0.0
        for i in order:
            kept.append(i)
            mass += w[i]
            if mass >= cut:
                break
        candidates = kept
    else:
        candidates, mass = range(len(w)), total
    target = rng.next_double() * mass
    acc = 0.0
    for i in candidates:
        acc += w[i]
        if acc > target:
            return i
    return candidates[-1]


def sample_sequence(steps: Sequence[Sequence[float]], cfg: SamplingConfig) -> list[int]:
    """Tokens picked for a sequence of logits rows with one generator seeded once."""
    rng = SplitMix64(cfg.seed)
    return [sample(row, cfg.temperature, cfg.top_p, rng) for row in steps]
