"""An exporter-neutral description of the network: what to compute, and with which weights.

A `Graph` holds the architecture (`ModelSpec`), the base weights under mlx-lm's names (a mapping
that reads each tensor in float32 when asked: `weights.SafetensorsWeights` for a model on disk),
and for each composition its low-rank updates as `LowRankTerm`s over a content-addressed tensor
store, so a factor used by two compositions (the same single-task LoRA, a calibration vector
shared by all layers) is stored once. A backend (coreml.py today) turns it into its own ops.

The computation for T new tokens appended after P cached ones (positions P .. P+T-1):

    x = embed[ids]
    per layer:
        h = rmsnorm(x) * w_in
        q, k, v = h W^T (+ b) + upd(h)           upd(h) = sum over terms of ((sum_i c_i h A_i) (sum_j c_j B_j)) * p
        q, k = rope(q), rope(k)                   rotate-half RoPE, Llama-3 / linear scaling folded into the frequencies
        cache[P:P+T] = k, v                       keys are stored after RoPE
        a = softmax(q k^T / sqrt(d) + causal) v   grouped-query: query head h reads kv head h // (H / KV)
        x = x + a W_o^T + upd(a)
        h = rmsnorm(x) * w_post
        x = x + (silu(h W_g^T) * h W_u^T) W_d^T   (each projection with its update)
    logits = (rmsnorm(x) * w_norm) W_head^T      W_head = embed when the embeddings are tied
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..errors import MlxLcError
from .weights import shapes_of

SUPPORTED = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}
PROJECTIONS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
_ROPE_TYPES = ("default", "linear", "llama3")


@dataclass(frozen=True)
class ModelSpec:
    architecture: str  # mlx-lm model_type: llama | qwen2
    hf_architecture: str  # LlamaForCausalLM | Qwen2ForCausalLM
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    rms_norm_eps: float
    rope_theta: float
    rope_scaling: dict | None
    tie_word_embeddings: bool
    max_position_embeddings: int | None

    @property
    def n_rep(self) -> int:
        return self.num_heads // self.num_kv_heads


def spec_from_config(config: dict, name: str = "model") -> ModelSpec:
    """Read an mlx-lm/HF config.json; raise one line for anything the exporter does not handle."""
    arch = config.get("model_type")
    if arch not in SUPPORTED:
        raise MlxLcError(f"{name}: architecture {arch!r} is not supported for export "
                         f"(supported: {', '.join(SUPPORTED)})")
    if config.get("quantization_config") and not config.get("quantization"):
        raise MlxLcError(f"{name}: {config['quantization_config'].get('quant_method', 'external')} "
                         "quantized checkpoints are not supported; export from float or mlx weights")
    if config.get("rope_traditional"):
        raise MlxLcError(f"{name}: traditional (interleaved) RoPE is not supported for export")
    scaling = config.get("rope_scaling")
    rope_type = (scaling or {}).get("type") or (scaling or {}).get("rope_type", "default")
    if rope_type not in _ROPE_TYPES:
        raise MlxLcError(f"{name}: rope scaling {rope_type!r} is not supported for export "
                         f"(supported: {', '.join(_ROPE_TYPES)})")
    if config.get("use_sliding_window") or any(t != "full_attention" for t in config.get("layer_types") or []):
        raise MlxLcError(f"{name}: sliding-window attention is not supported for export")
    if config.get("partial_rotary_factor", 1.0) != 1.0:
        raise MlxLcError(f"{name}: partial rotary embeddings are not supported for export")
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    if heads % kv_heads:
        raise MlxLcError(f"{name}: {heads} attention heads do not split into {kv_heads} kv heads")
    hidden = int(config["hidden_size"])
    return ModelSpec(
        architecture=arch, hf_architecture=SUPPORTED[arch], vocab_size=int(config["vocab_size"]),
        hidden_size=hidden, num_layers=int(config["num_hidden_layers"]), num_heads=heads,
        num_kv_heads=kv_heads, head_dim=int(config.get("head_dim") or hidden // heads),
        intermediate_size=int(config["intermediate_size"]), rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
        rope_theta=float(config.get("rope_theta", 10000.0)), rope_scaling=dict(scaling) if scaling else None,
        tie_word_embeddings=bool(config.get("tie_word_embeddings", True)),
        max_position_embeddings=config.get("max_position_embeddings"))


def rope_inv_freq(spec: ModelSpec) -> np.ndarray:
    """Inverse frequencies (head_dim/2,), float64, with linear or Llama-3 scaling applied."""
    d = spec.head_dim
    inv = 1.0 / spec.rope_theta ** (np.arange(0, d, 2, dtype=np.float64) / d)
    sc = spec.rope_scaling or {}
    kind = sc.get("type") or sc.get("rope_type", "default")
    if kind == "linear":
        inv = inv / float(sc["factor"])
    elif kind == "llama3":
        # Llama 3.1: long wavelengths slowed by `factor`, short ones kept, a smooth ramp between.
        factor = float(sc["factor"])
        low, high = float(sc.get("low_freq_factor", 1.0)), float(sc.get("high_freq_factor", 4.0))
        old = float(sc.get("original_max_position_embeddings", 8192))
        wavelen = 2 * math.pi / inv
        smooth = (old / wavelen - low) / (high - low)
        scaled = np.where(wavelen > old / low, inv / factor, inv)
        medium = (wavelen > old / high) & (wavelen < old / low)
        inv = np.where(medium, (1 - smooth) * inv / factor + smooth * inv, scaled)
    return inv


def rope_tables(spec: ModelSpec, n: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin for positions 0..n-1, (n, head_dim) in rotate-half layout (halves repeated)."""
    angles = np.arange(n, dtype=np.float64)[:, None] * rope_inv_freq(spec)[None, :]
    angles = np.concatenate([angles, angles], axis=1)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


# ---------------------------------------------------------------- low-rank updates

@dataclass(frozen=True)
class LowRankTerm:
    """y = ((sum_i c_i x @ A_i) @ (sum_j c_j B_j)) * p, computed as sums of small matmuls.

    a: (tensor key, coefficient) with A: (in, r); b: (key, coefficient) with B: (r, out), all of one r;
    col_scale: key of a (out,) vector p, or None.
    """

    a: tuple[tuple[str, float], ...]
    b: tuple[tuple[str, float], ...]
    col_scale: str | None = None


@dataclass
class TensorStore:
    """Content-addressed float32 tensors: adding an equal array twice returns the same key."""

    tensors: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, arr) -> str:
        arr = np.ascontiguousarray(np.asarray(arr, dtype=np.float32))
        h = hashlib.sha1(arr.tobytes())
        h.update(str(arr.shape).encode())
        key = "t" + h.hexdigest()[:16]
        self.tensors.setdefault(key, arr)
        return key

    def nbytes(self, keys) -> int:
        return sum(self.tensors[k].size for k in set(keys)) * 2  # stored as fp16


@dataclass
class Composition:
    name: str  # identifier used in function names: <name>_prefill, <name>_decode
    task: str  # a tasks.Composition name, e.g. summarize+es (prompt templates in the manifest)
    updates: dict[str, list[LowRankTerm]]  # full module path -> terms
    info: dict = field(default_factory=dict)  # provenance: adapters, calibration, merge

    def tensor_keys(self) -> set[str]:
        keys = set()
        for terms in self.updates.values():
            for t in terms:
                keys.update(k for k, _ in t.a)
                keys.update(k for k, _ in t.b)
                if t.col_scale:
                    keys.add(t.col_scale)
        return keys


@dataclass
class Graph:
    spec: ModelSpec
    context: int  # KV cache length: P + T never exceeds it
    weights: Mapping[str, np.ndarray]  # base weights, float32 when read, mlx-lm names (model.layers.0.self_attn.q_proj.weight)
    store: TensorStore
    compositions: list[Composition]
    model_name: str = ""

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return shapes_of(self.weights)

    def num_base_params(self) -> int:
        return sum(int(np.prod(s)) for s in self.shapes.values())


def check_context(spec: ModelSpec, context: int, name: str = "model") -> None:
    if context < 2:
        raise MlxLcError(f"context must be at least 2 tokens, got {context}")
    if spec.max_position_embeddings and context > spec.max_position_embeddings:
        raise MlxLcError(f"context {context} is longer than {name}'s max_position_embeddings "
                         f"{spec.max_position_embeddings}")


def check_weights(spec: ModelSpec, shapes: dict[str, tuple[int, ...]], name: str = "model") -> None:
    """Every tensor the computation reads exists with the expected shape; list all problems at once."""
    d, hd = spec.hidden_size, spec.head_dim
    want = {"model.embed_tokens.weight": (spec.vocab_size, d), "model.norm.weight": (d,)}
    if not spec.tie_word_embeddings:
        want["lm_head.weight"] = (spec.vocab_size, d)
    outs = {"self_attn.q_proj": (spec.num_heads * hd, d), "self_attn.k_proj": (spec.num_kv_heads * hd, d),
            "self_attn.v_proj": (spec.num_kv_heads * hd, d), "self_attn.o_proj": (d, spec.num_heads * hd),
            "mlp.gate_proj": (spec.intermediate_size, d), "mlp.up_proj": (spec.intermediate_size, d),
            "mlp.down_proj": (d, spec.intermediate_size)}
    for i in range(spec.num_layers):
        p = f"model.layers.{i}."
        want[p + "input_layernorm.weight"] = (d,)
        want[p + "post_attention_layernorm.weight"] = (d,)
        for rel, shape in outs.items():
            want[p + rel + ".weight"] = shape
            if p + rel + ".bias" in shapes:
                want[p + rel + ".bias"] = (shape[0],)
    errors = [f"{k} missing" for k in want if k not in shapes]
    errors += [f"{k} {tuple(shapes[k])} != {v}" for k, v in want.items() if k in shapes and tuple(shapes[k]) != v]
    errors += [f"{k} unexpected" for k in shapes if k not in want]
    if errors:
        more = f" (and {len(errors) - 6} more)" if len(errors) > 6 else ""
        raise MlxLcError(f"{name}: weights do not match its config: " + "; ".join(errors[:6]) + more)
