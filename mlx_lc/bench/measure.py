"""Measurement primitives for the benchmark: interleaved timing, decode speed, copy bandwidth,
bytes read per decoded token, one training step, and BLAS workers in their own processes.

Every comparison is timed side by side: the variants take turns within each round, so a
slow spell on a shared machine hits all of them alike, and ratios are taken per round.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Callable

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten
from mlx_lm.generate import generate_step
from mlx_lm.models.cache import make_prompt_cache
from mlx_lm.tuner.trainer import default_loss

Sample = dict[str, float]


def interleave(variants: dict[str, Callable[[], Sample | None]], rounds: int, warmup: int = 1,
               progress=None) -> dict[str, list[Sample]]:
    """Run every variant once per round, rotating the order (A,B,C / B,C,A / ...) so that no
    variant always goes first. Each sample has the wall time `s` and whatever the variant
    returned (its own metrics, e.g. decode-only tokens/s)."""
    names = list(variants)
    for _ in range(warmup):  # first calls pay for allocation and lazy setup; not timed
        for name in names:
            variants[name]()
    out: dict[str, list[Sample]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            extra = variants[name]() or {}
            out[name].append({"s": time.perf_counter() - t0, **extra})
            if progress is not None:
                progress.update()
    return out


def values(samples: list[Sample], key: str) -> list[float]:
    return [s[key] for s in samples]


def summary(xs: list[float]) -> dict:
    """Median and spread (min, max) of one variant's samples."""
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def paired_ratio(num: list[float], den: list[float]) -> dict:
    """Per-round ratios num[i] / den[i]: pairs measured seconds apart share the machine's load."""
    rs = [a / b for a, b in zip(num, den) if b > 0]
    return summary(rs) if rs else {"median": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}


# ---------------------------------------------------------------- decoding

def decode_run(model: nn.Module, prompt: mx.array, n: int, cache=None) -> Sample:
    """Greedy decode of exactly n tokens with mlx-lm's generate_step (it never stops early).
    tokens/s is 1 / the median gap between tokens after the first (so the prompt pass is out,
    and a burst of load from elsewhere that hits a few tokens does not move it); the mean
    over the same tokens is kept beside it."""
    stamps = [time.perf_counter() for _ in generate_step(prompt, model, max_tokens=n, prompt_cache=cache)]
    gaps = np.diff(stamps)
    return {"tokens_per_s": 1 / float(np.median(gaps)), "tokens_per_s_mean": len(gaps) / float(gaps.sum()),
            "tokens": len(stamps)}


def decode_lockstep(models: dict[str, nn.Module], prompt: mx.array, n: int, rounds: int,
                    progress=None) -> dict[str, list[Sample]]:
    """Decode n greedy tokens with every model in lockstep: one token each, in turns (the order
    rotating every token), so that all variants meet the same load from other processes within
    a fraction of a second. Each step is synchronous (evaluated before the next model runs);
    a round's sample is 1 / the median step time. The prompt pass is not timed."""
    names = list(models)
    out: dict[str, list[Sample]] = {k: [] for k in names}
    for r in range(rounds + 1):  # round 0 warms up
        caches = {k: make_prompt_cache(m) for k, m in models.items()}
        ys = {}
        for k, m in models.items():
            ys[k] = mx.argmax(m(prompt[None], cache=caches[k])[:, -1, :], axis=-1)
            mx.eval(ys[k])
        gaps: dict[str, list[float]] = {k: [] for k in names}
        for i in range(n - 1):
            for k in names[i % len(names):] + names[:i % len(names)]:
                t0 = time.perf_counter()
                ys[k] = mx.argmax(models[k](ys[k][:, None], cache=caches[k])[:, -1, :], axis=-1)
                mx.eval(ys[k])
                gaps[k].append(time.perf_counter() - t0)
        if r == 0:
            continue
        for k in names:
            out[k].append({"tokens_per_s": 1 / float(np.median(gaps[k])), "tokens": len(gaps[k]) + 1,
                           "s": float(np.sum(gaps[k]))})
            if progress is not None:
                progress.update()
    return out


def decode_bytes(model: nn.Module, cache, context: float) -> dict:
    """Bytes one decode step must read: every weight once (an untied input embedding is only
    looked up, one row) plus the KV cache at `context` positions."""
    params = dict(tree_flatten(model.parameters()))
    weights = sum(v.nbytes for v in params.values())
    embed = {k: v for k, v in params.items() if "embed_tokens" in k}
    if any(k.startswith("lm_head") for k in params) and embed:
        rows = next(iter(embed.values())).shape[0]
        weights -= sum(v.nbytes for v in embed.values()) * (rows - 1) // rows
    kv_per_position = 0.0
    for c in cache:
        for t in (getattr(c, "keys", None), getattr(c, "values", None)):
            if isinstance(t, mx.array) and t.ndim == 4:  # (batch, heads, allocated positions, head_dim)
                kv_per_position += t.nbytes / t.shape[2]
    return {"weights": weights, "kv_per_position": kv_per_position,
            "kv": kv_per_position * context, "total": weights + kv_per_position * context}


def bandwidth_probes(mb: int) -> dict[str, Callable[[], Sample]]:
    """Memory-bandwidth probes on `mb` MB of fp32, each returning GB/s:
    STREAM-style copies, (bytes read + bytes written) / s, with numpy (memcpy) and mlx (an
    elementwise pass), and the read rate of one big mlx matrix-vector product, the kernel a
    decode step is made of."""
    n = mb * 2**20 // 4
    cols = 1024
    a = mx.random.uniform(shape=(n,))
    w = mx.random.uniform(shape=(n // cols, cols))
    x = mx.random.uniform(shape=(1, cols))
    src = np.random.default_rng(0).random(n, dtype=np.float32)
    dst = np.empty_like(src)
    mx.eval(a, w, x)

    def timed(fn, nbytes):
        def probe() -> Sample:
            t0 = time.perf_counter()
            fn()
            return {"gb_per_s": nbytes / (time.perf_counter() - t0) / 1e9}
        return probe

    return {"numpy_copy": timed(lambda: np.copyto(dst, src), 2 * src.nbytes),
            "mlx_copy": timed(lambda: mx.eval(mx.negative(a)), 2 * a.nbytes),
            "mlx_matvec": timed(lambda: mx.eval(x @ w.T), w.nbytes)}


# ---------------------------------------------------------------- exponentials

def exp_probes(n: int) -> dict[str, Callable[[], Sample]]:
    """exp over `n` float32 values, with mlx and with numpy, each returning G values/s. Softmax,
    SiLU and cross-entropy all come down to exp, and on some CPU backends (MLX's on Linux x86)
    it is far slower per value than numpy's vectorised one."""
    a = mx.random.normal((n,))
    src = np.array(a)
    dst = np.empty_like(src)
    mx.eval(a)

    def timed(fn):
        def probe() -> Sample:
            t0 = time.perf_counter()
            fn()
            return {"gvalues_per_s": n / (time.perf_counter() - t0) / 1e9}
        return probe

    return {"mlx": timed(lambda: mx.eval(mx.exp(a))), "numpy": timed(lambda: np.exp(src, out=dst))}


def _no_exp_attention(queries, keys, values, scale, mask=None, sinks=None, **_):
    """Attention's shape of work (two matmuls, a mask, a normalisation) with relu for softmax."""
    b, hq, lq, d = queries.shape
    hk = keys.shape[1]
    q = (queries * scale).reshape(b, hk, hq // hk, lq, d)
    s = q @ keys[:, :, None].swapaxes(-1, -2)
    p = mx.maximum(s, 0)
    if isinstance(mask, str):  # "causal"
        lk = keys.shape[2]
        p = p * mx.tril(mx.ones((lq, lk), p.dtype), lk - lq)
    elif mask is not None:
        p = mx.where(mask, p, 0) if mask.dtype == mx.bool_ else p + mask
    p = p / (p.sum(-1, keepdims=True) + 1)
    return (p @ values[:, :, None]).reshape(b, hq, lq, d)


def _no_exp_cross_entropy(logits, targets, **_):
    """Cross-entropy's shape of work (a pass over the vocabulary, a gather) without log-sum-exp."""
    return (logits * logits).mean(-1) - mx.take_along_axis(logits, targets[..., None], -1)[..., 0]


@contextlib.contextmanager
def exp_free(model: nn.Module):
    """While inside, the model's three users of exp (softmax in attention, the MLP's SiLU, the
    loss's log-sum-exp) are swapped for stand-ins of the same shapes that compute none. Not a
    model: a bound on what a free exp would save a training step. mlx-lm's models call
    `mx.fast.scaled_dot_product_attention` and `nn.losses.cross_entropy` by attribute at every
    call, and their own module's `swiglu`, so those three names are what is swapped."""
    module = sys.modules[type(model).__module__]
    saved = [(mx.fast, "scaled_dot_product_attention", _no_exp_attention),
             (nn.losses, "cross_entropy", _no_exp_cross_entropy)]
    if hasattr(module, "swiglu"):
        saved.append((module, "swiglu", lambda gate, x: mx.maximum(gate, 0) * x))
    old = [(obj, name, getattr(obj, name)) for obj, name, _ in saved]
    try:
        for obj, name, new in saved:
            setattr(obj, name, new)
        yield
    finally:
        for obj, name, value in old:
            setattr(obj, name, value)


# ---------------------------------------------------------------- training

def train_step_fn(model: nn.Module, batch: mx.array, lr: float) -> Callable[[], Sample]:
    """One optimiser step on the model's trainable parameters, as mlx-lm's trainer takes it
    (default_loss, Adam), measured for tokens/s and peak memory."""
    lengths = mx.array([[0, batch.shape[1]]] * batch.shape[0])  # loss on every position
    loss_and_grad = nn.value_and_grad(model, default_loss)
    opt = optim.Adam(learning_rate=lr)

    def step() -> Sample:
        mx.eval(model.parameters())  # nothing pending from elsewhere is charged to this step
        resident = mx.get_active_memory()
        mx.reset_peak_memory()
        t0 = time.perf_counter()
        (loss, ntoks), grads = loss_and_grad(model, batch, lengths)
        opt.update(model, grads)
        mx.eval(loss, ntoks, opt.state, model.trainable_parameters())
        dt = time.perf_counter() - t0
        peak = mx.get_peak_memory()
        return {"tokens_per_s": ntoks.item() / dt, "peak_mb": peak / 2**20,
                "step_mb": (peak - resident) / 2**20, "loss": loss.item()}

    return step


# ---------------------------------------------------------------- BLAS

_BLAS_WORKER = r"""
import json, sys, time
import mlx_lc  # loads the optimised BLAS unless MLX_LC_BLAS=none
import mlx.core as mx
from mlx_lc import _blas
n, k = int(sys.argv[1]), int(sys.argv[2])
a, b = mx.random.normal((n, n)), mx.random.normal((n, n))
mx.eval(a, b, a @ b)
print(json.dumps({"blas": _blas.LOADED, "reason": _blas.REASON}), flush=True)
for _ in sys.stdin:
    t = time.perf_counter()
    for _ in range(k):
        mx.eval(a @ b)
    print((time.perf_counter() - t) / k, flush=True)
"""


class BlasWorker:
    """A python process that times n x n fp32 matmuls on request (one line in, one line out),
    so that two BLAS set-ups, which must be chosen before mlx loads, can take turns."""

    def __init__(self, n: int, k: int, bundled: bool):
        env = dict(os.environ)
        if bundled:
            env["MLX_LC_BLAS"] = "none"
        elif env.get("MLX_LC_BLAS") == "none":
            del env["MLX_LC_BLAS"]
        self.n = n
        self.proc = subprocess.Popen([sys.executable, "-c", _BLAS_WORKER, str(n), str(k)], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"BLAS worker exited with code {self.proc.wait()}")
        self.info = json.loads(line)

    def __call__(self) -> Sample:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        seconds = float(self.proc.stdout.readline())
        return {"gflops": 2 * self.n**3 / seconds / 1e9}

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
