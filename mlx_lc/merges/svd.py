"""SVD merge: the exact weighted sum of the updates re-factored to a chosen rank
(PEFT's `combination_type="svd"`). Also the re-factoring step of every delta-level merge.
"""

import mlx.core as mx

from .cat import cat


def factorize(delta: mx.array, rank: int) -> tuple[mx.array, mx.array]:
    """Best rank-k factors of a dense (in, out) update: delta ~= a @ b (Eckart-Young)."""
    u, s, vt = mx.linalg.svd(delta.astype(mx.float32), stream=mx.cpu)
    k = min(rank, s.shape[0])
    root = mx.sqrt(s[:k])
    return u[:, :k] * root, root[:, None] * vt[:k]


def factorize_lowrank(a: mx.array, b: mx.array, rank: int) -> tuple[mx.array, mx.array]:
    """Best rank-k factors of a @ b without forming it: QR of both factors, SVD of an R x R core."""
    qa, ra = mx.linalg.qr(a.astype(mx.float32), stream=mx.cpu)  # a = qa ra
    qb, rb = mx.linalg.qr(b.T.astype(mx.float32), stream=mx.cpu)  # b^T = qb rb
    u, s, vt = mx.linalg.svd(ra @ rb.T, stream=mx.cpu)  # a b = qa (ra rb^T) qb^T
    k = min(rank, s.shape[0])
    root = mx.sqrt(s[:k])
    return (qa @ u[:, :k]) * root, root[:, None] * (vt[:k] @ qb.T)


def svd(a: list[mx.array], b: list[mx.array], weights: list[float], rank: int) -> tuple[mx.array, mx.array]:
    """sum_i w_i a_i b_i truncated to `rank` (exact when rank >= sum of ranks)."""
    return factorize_lowrank(*cat(a, b, weights), rank)
