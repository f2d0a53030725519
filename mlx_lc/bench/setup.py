"""What the benchmark runs on: random models of real shapes, random non-zero adapters and
calibrations, and model copies that share one set of base weights.

Everything is written to a folder and read back through the same loaders a user's files go
through (mlx_lm.load, adapters.read, calibration.load), so the timed paths are the real ones.
Speed does not depend on what the weights have learned, so random weights are fine here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten
from mlx_lm.utils import load_model

from .. import adapters as adapters_io
from .. import calibration as calib_io
from ..adapters import LoRA
from ..errors import MlxLcError
from ..io import write_json
from ..merge import MergeConfig, merge
from .. import model_folder
from ..tiny import DEFAULT_CORPUS, TinyConfig, train_tokenizer, write_tiny_model

# Published architectures (config.json of each model card), written here with random weights.
SHAPES: dict[str, dict] = {
    "smollm2-135m": dict(model_type="llama", hidden_size=576, num_hidden_layers=30, intermediate_size=1536,
                         num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                         tie_word_embeddings=True, rope_theta=100000.0, rms_norm_eps=1e-5),
    "qwen2.5-0.5b": dict(model_type="qwen2", hidden_size=896, num_hidden_layers=24, intermediate_size=4864,
                         num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                         tie_word_embeddings=True, rope_theta=1000000.0, rms_norm_eps=1e-6),
    "llama3.2-1b": dict(model_type="llama", hidden_size=2048, num_hidden_layers=16, intermediate_size=8192,
                        num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                        tie_word_embeddings=True, rope_theta=500000.0, rms_norm_eps=1e-5),
}
DTYPES = {"float32": mx.float32, "bfloat16": mx.bfloat16, "float16": mx.float16}
# The module types the paper adapts in every block.
KEYS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def write_shape_model(out: str | Path, shape: str, dtype: str = "float32", seed: int = 0) -> Path:
    """A random model with a published architecture; the tokenizer is padded to its vocabulary."""
    if shape not in SHAPES:
        raise MlxLcError(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}")
    if dtype not in DTYPES:
        raise MlxLcError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}")
    spec = SHAPES[shape]
    tokenizer = train_tokenizer(DEFAULT_CORPUS.splitlines(), 1024)
    # Real ids for the whole embedding table, so every sampled token decodes.
    tokenizer.add_tokens([f"<x{i}>" for i in range(spec["vocab_size"] - len(tokenizer))])
    config = {**spec, "architectures": ["BenchModel"], "max_position_embeddings": 32768,
              "head_dim": spec["hidden_size"] // spec["num_attention_heads"],
              "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
              "torch_dtype": dtype, "mlx_lc_bench_shape": shape}
    arch = importlib.import_module(f"mlx_lm.models.{spec['model_type']}")
    mx.random.seed(seed)
    model = arch.Model(arch.ModelArgs.from_dict(config))
    model.model.embed_tokens.weight = 0.02 * mx.random.normal(model.model.embed_tokens.weight.shape)
    model.set_dtype(DTYPES[dtype])
    mx.eval(model.parameters())
    return model_folder.save(out, model, tokenizer, config)


def write_model(out: str | Path, shape: str, dtype: str = "float32", quick: bool = False, seed: int = 0) -> Path:
    """`tiny` (mlx_lc.tiny; smaller still with quick) or one of SHAPES."""
    if shape == "tiny":
        cfg = TinyConfig(hidden=64, layers=2, vocab=512, seed=seed) if quick else \
            TinyConfig(hidden=256, layers=4, vocab=1024, heads=8, kv_heads=2, seed=seed)
        return write_tiny_model(out, cfg)
    return write_shape_model(out, shape, dtype, seed)


def shared_copy(model: nn.Module, path: Path) -> nn.Module:
    """A second model object over the *same* weight arrays (no copy): variants can be timed
    side by side, each with its own adapters, without doubling the memory."""
    # lazy: the file's arrays are replaced before they load
    twin, _ = load_model(path, lazy=True, trust_remote_code=False)
    base = [(k, v) for k, v in tree_flatten(model.parameters())]
    twin.update(tree_unflatten(base), strict=False)
    twin.eval()
    return twin


def target_linears(model: nn.Module) -> dict[str, tuple[int, int]]:
    """(in, out) of every linear of the paper's module types, in every block."""
    shapes = adapters_io.linear_shapes(model)
    chosen = {p: s for p, s in shapes.items() if adapters_io.split_path(p)[2] in KEYS}
    return chosen or shapes  # an architecture with other names: adapt every block linear


def random_lora(model: nn.Module, rank: int, scale: float = 0.5, seed: int = 0, name: str = "random") -> LoRA:
    """A non-zero adapter: a as mlx-lm initialises it, b small and random (not zero, or the
    adapter would be a no-op and the fused model equal to the base)."""
    key = mx.random.key(seed)
    factors = {}
    for i, (path, (d_in, d_out)) in enumerate(sorted(target_linears(model).items())):
        ka, kb = mx.random.split(mx.random.fold_in(key, i) if hasattr(mx.random, "fold_in")
                                 else mx.random.split(key, i + 1)[i])
        bound = 1 / d_in ** 0.5
        factors[path] = (mx.random.uniform(-bound, bound, (d_in, rank), key=ka),
                         0.01 * mx.random.normal((rank, d_out), key=kb))
    mx.eval(factors)
    return LoRA(factors, scale, base_model=name, base_arch=adapters_io.model_arch(model), source=name)


def randomize_calibration(calib: calib_io.Calibration, seed: int) -> calib_io.Calibration:
    """Move every calibration parameter away from its identity initialisation."""
    key = mx.random.key(seed + 1000)
    flat = []
    for i, (k, v) in enumerate(sorted(calib.tensors().items())):
        noise = mx.random.normal(v.shape, key=mx.random.split(key, i + 1)[i])
        flat.append((k, v + (0.1 if k.endswith(".p") else 0.01) * noise))
    calib.update(tree_unflatten(flat))
    mx.eval(calib.parameters())
    return calib


@dataclass
class Fixture:
    """Files for one benchmark model: two task adapters, calibrations and folded adapters."""

    model: str  # what mlx_lm.load gets
    path: Path  # its local folder
    adapters: list[Path]  # primary (summarize), secondary (es)
    calibrations: dict[str, Path] = field(default_factory=dict)  # variant -> folder
    folded: dict[str, Path] = field(default_factory=dict)  # variant -> mlx-lm adapter folder
    loras: list[LoRA] = field(default_factory=list, repr=False)  # the adapters, read back from disk
    merged: LoRA | None = field(default=None, repr=False)


def make_fixture(work: Path, model_name: str, model: nn.Module, rank: int, scale: float = 0.5,
                 seed: int = 0, variants=(("lc", "scale"), ("lc++", "scale"))) -> Fixture:
    """Write adapters, calibrations (`variant` names: lc, lc++) and their folds under `work`."""
    work = Path(work)
    # the base is loaded by now, so its folder is local: nothing is downloaded
    fx = Fixture(model_name, model_folder.resolve(model_name, download=False), [work / "adapter_summarize", work / "adapter_es"])
    for i, out in enumerate(fx.adapters):
        adapters_io.write_mlx(random_lora(model, rank, scale, seed + i, model_name), out)
    fx.loras = adapters_io.load_for(model, fx.adapters, model_name)
    fx.merged = merge(fx.loras, MergeConfig("linear"))
    for variant, mode in variants:
        cfg = calib_io.CalibrationConfig(variant, mode, 4, seed)
        calib = randomize_calibration(calib_io.Calibration(cfg, calib_io.module_shapes(fx.merged)), seed)
        fx.calibrations[variant] = calib_io.save(calib, fx.merged, work / f"calib_{variant}",
                                                 extra={"note": "random, for speed benchmarks only"})
        fx.folded[variant] = adapters_io.write_mlx(calib_io.fold(fx.merged, calib), work / f"folded_{variant}")
    write_json(work / "fixture.json", {"model": model_name, "rank": rank, "scale": scale, "seed": seed})
    return fx
