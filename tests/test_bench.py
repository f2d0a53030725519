"""`mlx-lc bench --quick` runs end to end on a tiny model and writes well-formed results.
No timing is asserted: only that every row was measured and the files are complete."""

from __future__ import annotations

import mlx_lc  # noqa: F401  (OpenBLAS before mlx)

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlx_lc.cli import main

ROWS = {"e2e_lc", "e2e_lc++", "decode_fused", "decode_runtime_lc", "decode_runtime_lc++", "decode_runtime_mlx_lm",
        "decode_runtime_calib_module", "decode_bandwidth", "generate_vs_mlx_lm", "train_tps_lc", "train_mem_lc",
        "train_tps_lc++", "train_mem_lc++", "exp_elementwise", "exp_step"}


def test_quick_bench_writes_table_and_json(tmp_path):
    res = CliRunner().invoke(main, ["bench", "--quick", "--no-progress", "--out", str(tmp_path)],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "bench.json").read_text())
    ids = [r["id"] for r in result["rows"]]
    expected = ROWS | ({"blas"} if sys.platform.startswith("linux") else set())
    assert set(ids) == expected and len(ids) == len(expected)
    for r in result["rows"]:
        assert math.isfinite(r["ratio"]) and r["ratio"] > 0, r
        assert r["ratio_min"] <= r["ratio"] <= r["ratio_max"]
        for side in ("subject", "reference"):
            assert r[side]["median"] > 0 and r[side]["n"] == result["config"]["rounds"]
        assert (r["met"] is None) == (r["target"] is None)
        assert r["what"] in res.output  # every row is in the printed table
    assert {r["target"] for r in result["rows"] if r["target"]} == {1.8, 0.98, 1.0}
    # fixed-length outputs: every decode produced exactly max_tokens tokens
    decode = dict(result["details"]["decode"]["samples"])
    decode.update({f"pair_{k}": v for k, v in decode.pop("fused_pair").items()})
    assert len(decode) == 7
    for samples in decode.values():
        assert all(s["tokens"] == result["config"]["max_tokens"] for s in samples)
    assert result["details"]["decode"]["bytes_per_token"]["kv"] > 0
    # trainable parameters: the calibrations are far smaller than the LoRA they are compared with
    params = result["details"]["train"]["trainable_params"]
    assert 0 < params["lc"] < params["lc++"] < params["lora"]
    assert result["machine"]["nproc"] >= 1 and result["wall_s"] > 0
    assert "| measure |" in (tmp_path / "bench.md").read_text()


def test_bench_subset_and_bad_input(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["bench", "--quick", "--only", "e2e,nope", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "unknown bench group" in res.output and "Traceback" not in res.output
    res = runner.invoke(main, ["bench", "--quick", "--model", str(tmp_path / "missing"), "--out", str(tmp_path)])
    assert res.exit_code != 0 and "missing" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "bench.json").exists()  # nothing half-written


def test_script_is_the_same_command():
    script = Path(__file__).resolve().parents[1] / "scripts" / "bench.py"
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--shape" in out.stdout and "bench.py" in out.stdout


def test_exp_free_swaps_every_exp_user_and_restores_them(tmp_path):
    """Inside `exp_free` the model's logits and the loss change (softmax, SiLU and the loss's
    log-sum-exp are swapped) and nothing else; outside, the model is exactly itself again."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx_lm.models.llama as llama

    from mlx_lc import model_folder
    from mlx_lc.bench import measure as bm
    from mlx_lc.tiny import TinyConfig, write_tiny_model

    model, _ = model_folder.load(str(write_tiny_model(tmp_path / "m", TinyConfig())))
    x = mx.array([[5, 6, 7, 8, 9, 10]])
    before = model(x)
    originals = (mx.fast.scaled_dot_product_attention, nn.losses.cross_entropy, llama.swiglu)
    with bm.exp_free(model):
        inside = model(x)
        assert mx.fast.scaled_dot_product_attention is not originals[0]
        assert nn.losses.cross_entropy is not originals[1] and llama.swiglu is not originals[2]
        assert nn.losses.cross_entropy(before, x).shape == x.shape
    assert inside.shape == before.shape and not mx.allclose(inside, before).item()
    assert (mx.fast.scaled_dot_product_attention, nn.losses.cross_entropy, llama.swiglu) == originals
    assert mx.array_equal(model(x), before).item()


@pytest.mark.slow  # starts mlx-lc serve and mlx_lm.server, a process each: python -m pytest -m slow
def test_quick_serve_bench(tmp_path):
    res = CliRunner().invoke(main, ["bench", "--quick", "--only", "serve", "--no-progress", "--out", str(tmp_path)],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "bench.json").read_text())
    assert {r["id"] for r in result["rows"]} == {"serve_switch", "serve_switch_request", "serve_tokens",
                                                  "serve_tokens_repeat", "serve_mixed_rps", "serve_mixed_p50",
                                                  "serve_mixed_p99"}
    assert all(math.isfinite(r["ratio"]) and r["ratio"] > 0 for r in result["rows"])
    assert all(result["details"]["serve"]["same_text"].values())  # both servers run the same weights on the same tokens
