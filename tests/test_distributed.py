"""Data-parallel training under MLX's own launcher: 2 local processes on loopback (ring backend)
give the same adapter as 1 process with the same global batch."""

import mlx_lc  # noqa: F401

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

import toy_data

BIN = Path(sys.executable).parent


def free_port_pair() -> int:
    """A port p such that p and p+1 are free now (mlx.launch gives rank i port p+i)."""
    for _ in range(50):
        p = random.randint(20000, 60000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", p))
                b.bind(("127.0.0.1", p + 1))
            return p
        except OSError:
            continue
    pytest.skip("no two free adjacent loopback ports")


def train_args(model, data, out):
    return ["train-lora", "-m", str(model), "-d", str(data), "-o", str(out), "--rank", "4", "--dropout", "0",
            "--lr", "1e-2", "--iters", "6", "--batch-size", "4", "--eval-every", "3", "-q"]


def test_two_ranks_equal_one_process(tmp_path, tiny_path):
    launcher, cli = BIN / "mlx.launch", BIN / "mlx-lc"
    if not launcher.exists() or not cli.exists():
        pytest.skip(f"mlx.launch or mlx-lc not installed next to {sys.executable}")
    data = toy_data.write(tmp_path / "data", "summarize", n_train=24, n_valid=8)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    from click.testing import CliRunner

    from mlx_lc.cli import main

    one = CliRunner().invoke(main, train_args(tiny_path, data, tmp_path / "one"), catch_exceptions=False)
    assert one.exit_code == 0, one.output
    two = subprocess.run([str(launcher), "--backend", "ring", "-n", "2", "--starting-port", str(free_port_pair()),
                          str(cli), *train_args(tiny_path, data, tmp_path / "two")],
                         env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert two.returncode == 0, (two.stdout + two.stderr)[-2000:]
    assert two.stdout.count("wrote adapter") == 1  # only rank 0 writes and prints
    meta = json.loads((tmp_path / "two" / "adapter_config.json").read_text())["mlx_lc"]
    assert meta["train"]["world_size"] == 2  # it really ran as two ranks
    a = mx.load(str(tmp_path / "one" / "adapters.safetensors"))
    b = mx.load(str(tmp_path / "two" / "adapters.safetensors"))
    assert a.keys() == b.keys()
    moved = 0
    for k in a:
        # Two ranks sum the loss in another order; Adam divides by sqrt(v), so a float32 rounding
        # difference in a near-zero gradient shows up as ~1e-5 after 6 steps. Ranks that did not
        # average (each stepping on its own half batch) would differ at the scale of the steps (lr 1e-2).
        np.testing.assert_allclose(np.array(a[k]), np.array(b[k]), rtol=1e-3, atol=1e-4, err_msg=k)
        moved += k.endswith("lora_b") and float(mx.abs(a[k]).max()) > 0
    assert moved  # training did something, so the equality is not between two untouched inits
    hist1 = json.loads((tmp_path / "one" / "history.json").read_text())
    hist2 = json.loads((tmp_path / "two" / "history.json").read_text())
    np.testing.assert_allclose([v for _, v in hist1["valid"]], [v for _, v in hist2["valid"]], rtol=1e-4)
