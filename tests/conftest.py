"""Shared fixtures: tiny real models on disk and random non-zero adapters. Offline, seeded."""

from __future__ import annotations

import mlx_lc  # noqa: F401  (OpenBLAS before mlx)

import mlx.core as mx
import pytest

from mlx_lc.adapters import LoRA, linear_shapes, model_arch, write_mlx
from mlx_lc.tiny import TinyConfig, write_tiny_model

KEYS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


@pytest.fixture(autouse=True)
def own_store(tmp_path_factory, monkeypatch):
    """Every test gets an empty task store of its own: never the user's ~/.cache/mlx-lc, and a
    `--store` one test sets (it sets the environment variable) ends with that test."""
    root = tmp_path_factory.mktemp("store")
    monkeypatch.setenv("MLX_LC_HOME", str(root))
    return root


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny", TinyConfig(hidden=64, layers=2, seed=0))


@pytest.fixture(scope="session")
def tiny_model(tiny_path):
    import mlx_lm

    return mlx_lm.load(str(tiny_path))


def random_lora(model, rank=4, scale=0.5, seed=0, keys=KEYS, std=0.2, name="random") -> LoRA:
    """A non-zero adapter for every targeted linear of `model` (b non-zero, unlike a fresh LoRA)."""
    shapes = sorted(linear_shapes(model).items())
    rngs = mx.random.split(mx.random.key(seed), 2 * len(shapes))
    factors = {}
    for i, (path, (d_in, d_out)) in enumerate(shapes):
        if not any(path.endswith(k) for k in keys):
            continue
        ka, kb = rngs[2 * i], rngs[2 * i + 1]
        factors[path] = (std * mx.random.normal((d_in, rank), key=ka), std * mx.random.normal((rank, d_out), key=kb))
    return LoRA(factors, scale, base_model="tiny", base_arch=model_arch(model), source=name)


@pytest.fixture(scope="module")
def pair(tmp_path_factory, tiny_model):
    """Two random rank-4 adapter folders on the tiny model: what a calibration starts from."""
    d = tmp_path_factory.mktemp("adapters")
    return [write_mlx(random_lora(tiny_model[0], seed=s, rank=4, std=0.1), d / f"task{s}") for s in (1, 2)]


@pytest.fixture
def make_adapter(tmp_path, tiny_model):
    """Write a random adapter folder and return its path."""
    def make(name="a", **kw):
        lora = random_lora(tiny_model[0], name=name, **kw)
        return write_mlx(lora, tmp_path / name)
    return make


def pair_with_calibration(root, model):
    """Two random rank-4 adapter folders under `root` and an LC-scale calibration of their linear
    merge (p = 1: the merge itself): what the bad-input tests break one file of."""
    from mlx_lc import adapters, calibration
    from mlx_lc.calibration import Calibration, CalibrationConfig
    from mlx_lc.merge import merge

    a1, a2 = (write_mlx(random_lora(model, seed=s, rank=4), root / f"task{s}") for s in (1, 2))
    merged = merge(adapters.load_for(model, [a1, a2]))
    cal = calibration.save(Calibration(CalibrationConfig("lc", "scale"), calibration.module_shapes(merged)),
                           merged, root / "calib")
    return a1, a2, cal
