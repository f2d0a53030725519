"""The output rule (mlx_lc/outputs.py) through the commands: each writes only inside its own --out,
replaces only an earlier output of its kind, refuses inputs, foreign folders and too-long names
before any work, sweeps what killed runs left, recovers from a crash between the swap's renames
and gives its outputs the umask's permissions."""

import mlx_lc  # noqa: F401

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from mlx_lc import adapters
from mlx_lc.cli import main

import toy_data
from conftest import random_lora
from clirun import assert_error_last as assert_error

LORA = ["--iters", 2, "--batch-size", 2, "--rank", 4, "-q"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return toy_data.write(tmp_path_factory.mktemp("data") / "sum", "summarize", 8, 2)


@pytest.fixture
def two(tmp_path, tiny_model):
    return [adapters.write_mlx(random_lora(tiny_model[0], seed=s, rank=4), tmp_path / f"task{s}") for s in (1, 2)]


# ---------------------------------------------------------------- export writes only inside --out

def test_export_out_is_a_folder_and_nothing_is_written_beside_it(tmp_path, tiny_path, two, monkeypatch):
    pytest.importorskip("coremltools")
    from mlx_lc.export import coreml

    other = tmp_path / "other_model"
    other.mkdir()
    (other / "config.json").write_text('{"mine": 1}\n')
    (other / "manifest.json").write_text('{"mine": 2}\n')
    before = snapshot(other)
    args = ["export", "coreml", "-m", tiny_path, "-a", two[0], "-t", "summarize+es", "--context", 16, "-q", "none"]
    assert_error(run(*args, "--out", other / "T.mlpackage"),
                 "Error: --out is a folder that will hold Model.mlpackage", f"manifest.json: use {other / 'T'}")
    assert snapshot(other) == before

    # coremltools' temporary files: inside the export's own temporary folder, not the system's
    seen, write = [], coreml.write_package
    monkeypatch.setattr(coreml, "write_package", lambda *a, **k: seen.append(__import__("tempfile").gettempdir())
                        or write(*a, **k))
    out = other / "T"
    r = run(*args, "--out", out)
    assert r.exit_code == 0, r.output
    assert snapshot(other) == {**before, **{f"T/{k}": v for k, v in snapshot(out).items()}}  # only T/ is new
    assert {"Model.mlpackage", "manifest.json", "export.json", "config.json", "tokenizer.json"} <= \
        {p.name for p in out.iterdir()} and hidden(out) == [] and hidden(other) == []
    assert json.loads((out / "manifest.json").read_text())["package"] == "Model.mlpackage"
    assert len(seen) == 1 and seen[0].startswith(str(other / ".T.mlx-lc-tmp-"))
    # a second export replaces the first (its kind); the model folder is no export
    assert run(*args, "--out", out).exit_code == 0 and hidden(other) == []
    assert_error(run(*args, "--out", other), "holds no export.json")


# ---------------------------------------------------------------- train-lora / calibrate refuse before any work

def test_train_lora_refuses_a_foreign_folder_and_the_base_model(tmp_path, tiny_path, data, tiny_model):
    foreign = tmp_path / "runs"
    adapters.write_mlx(random_lora(tiny_model[0], seed=5, rank=4), foreign / "another_adapter")
    (foreign / "history.json").write_text('{"someone": "else"}')
    before = snapshot(foreign)
    assert_error(run("train-lora", "-m", tiny_path, "-d", data, "-o", foreign, *LORA), "holds no adapter_config.json")
    assert snapshot(foreign) == before and hidden(tmp_path) == []
    base_before = snapshot(tiny_path)
    assert_error(run("train-lora", "-m", tiny_path, "-d", data, "-o", tiny_path, *LORA), "is the input")
    assert snapshot(tiny_path) == base_before


def test_calibrate_refuses_its_own_input_adapter(tmp_path, tiny_path, data, two):
    comp = toy_data.write(tmp_path / "comp", "summarize+es", 8, 2)
    before = snapshot(two[0])
    r = run("calibrate", "-m", tiny_path, "-a", two[0], "-a", two[1], "-d", comp, "-o", two[0], "--iters", 1,
            "--batch-size", 2, "-q")
    assert_error(r, "is the input")
    assert snapshot(two[0]) == before and not (two[0] / "checkpoint").exists()
    # an adapter that is no input is still no calibration
    other = adapters.write_mlx(adapters.read(two[1]), tmp_path / "copy")
    r = run("calibrate", "-m", tiny_path, "-a", two[0], "-a", two[1], "-d", comp, "-o", other, "--iters", 1, "-q")
    assert_error(r, "not an earlier calibration")


def test_train_lora_replaces_its_earlier_run_as_a_unit_and_resumes(tmp_path, tiny_path, data):
    out = tmp_path / "lora"
    assert run("train-lora", "-m", tiny_path, "-d", data, "-o", out, *LORA).exit_code == 0
    (out / "stale.txt").write_text("from before")
    first_ckpt = snapshot(out / "checkpoint")
    r = run("train-lora", "-m", tiny_path, "-d", data, "-o", out, "--iters", 4, "--batch-size", 2, "--rank", 4,
            "-q", "--resume")
    assert r.exit_code == 0, r.output
    assert not (out / "stale.txt").exists() and hidden(tmp_path) == []
    assert json.loads((out / "checkpoint" / "state.json").read_text())["step"] == 4
    assert json.loads((out / "adapter_config.json").read_text())["mlx_lc"]["result"]["steps"] == 4
    assert first_ckpt  # the earlier checkpoint was read, not needed any more


def test_resume_adopts_the_checkpoint_of_a_killed_run(tmp_path, tiny_path, data):
    done = tmp_path / "done"
    assert run("train-lora", "-m", tiny_path, "-d", data, "-o", done, *LORA).exit_code == 0
    # what a run killed before its swap leaves: its temporary folder, with the checkpoint in it
    killed = tmp_path / f".lora.mlx-lc-tmp-{dead_pid()}-0badc0de"
    os.rename(done, killed)
    r = run("train-lora", "-m", tiny_path, "-d", data, "-o", tmp_path / "lora", "--iters", 4, "--batch-size", 2,
            "--rank", 4, "-q", "--resume")
    assert r.exit_code == 0, r.output
    assert "interrupted run (step 2)" in r.output
    assert json.loads((tmp_path / "lora" / "checkpoint" / "state.json").read_text())["step"] == 4
    assert hidden(tmp_path) == []


# ---------------------------------------------------------------- leftovers of killed and crashed runs

def test_a_later_run_sweeps_dead_runs_temporaries(tmp_path, tiny_path, two):
    dead = tmp_path / f".merged.mlx-lc-tmp-{dead_pid()}-12345678"
    dead.mkdir()
    (dead / "adapters.safetensors").write_bytes(b"half")
    live = tmp_path / f".merged.mlx-lc-tmp-{os.getpid()}-87654321"  # a run still going: left alone
    live.mkdir()
    assert run("merge", "-m", tiny_path, "-a", two[0], "-a", two[1], "-o", tmp_path / "merged").exit_code == 0
    assert hidden(tmp_path) == [live.name]


CRASH = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from mlx_lc.io import atomic_dir
    real, n = os.replace, [0]
    def replace(a, b):
        real(a, b)
        n[0] += 1
        if n[0] == 1:
            os._exit(9)  # killed between the swap's two renames
    os.replace = replace
    with atomic_dir(sys.argv[1], marker="adapter_config.json", kind="adapter") as tmp:
        (Path(tmp) / "adapter_config.json").write_text("{}")
""")


def test_a_crash_between_the_renames_is_recovered_by_the_next_run(tmp_path, tiny_path, two):
    out = adapters.write_mlx(adapters.read(two[0]), tmp_path / "merged")
    before = snapshot(out)
    assert subprocess.run([sys.executable, "-c", CRASH, str(out)]).returncode == 9
    assert not out.exists()  # the user's output is gone for now
    # the next run, even one that fails on its own input, puts the earlier output back and says so
    r = run("merge", "-m", tiny_path, "-a", tmp_path / "nope", "-o", out)
    assert r.exit_code != 0 and "put back" in r.output and "Traceback" not in r.output, r.output
    assert snapshot(out) == before and hidden(tmp_path) == []


# ---------------------------------------------------------------- names, permissions, kinds

@pytest.mark.parametrize("cmd", ["merge", "train-lora"])
def test_a_name_too_long_fails_before_any_work(tmp_path, tiny_path, two, data, cmd):
    out = tmp_path / ("x" * 250)
    args = ["-a", two[0], "-a", two[1]] if cmd == "merge" else ["-d", data, *LORA]
    assert_error(run(cmd, "-m", tiny_path, *args, "-o", out), "name too long")
    assert not out.exists() and hidden(tmp_path) == []


def test_outputs_get_the_umask_permissions(tmp_path, tiny_path, two, data):
    old = os.umask(0o022)
    try:
        assert run("merge", "-m", tiny_path, "-a", two[0], "-a", two[1], "-o", tmp_path / "m").exit_code == 0
        assert run("train-lora", "-m", tiny_path, "-d", data, "-o", tmp_path / "t", *LORA).exit_code == 0
        j = tmp_path / "j"
        j.mkdir()
        (j / "judge_summary.json").write_text(json.dumps({"by_group": {}, "overall": {"unparseable": 0}}))
        assert run("judge-table", f"ours={j}", "-o", tmp_path / "table.md").exit_code == 0
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    for folder in (tmp_path / "m", tmp_path / "t", tmp_path / "t" / "checkpoint"):
        assert mode(folder) == 0o755, folder
    for f in [tmp_path / "m" / "adapters.safetensors", tmp_path / "table.md", tmp_path / "t" / "history.json",
              tmp_path / "t" / "checkpoint" / "state.json"]:
        assert mode(f) == 0o644, f
    assert mode(tmp_path / "table.md") == 0o644


def test_only_an_earlier_output_of_the_same_kind_is_replaced(tmp_path, tiny_path):
    export_like = tmp_path / "exp"
    export_like.mkdir()
    for name in ("export.json", "config.json", "manifest.json"):
        (export_like / name).write_text("{}\n")
    before = snapshot(export_like)
    # it holds a config.json, but it is an export, not a model folder
    assert_error(run("tiny-model", export_like), "is an export, not an earlier model folder")
    assert_error(run("data", "build", "--offline", "-o", export_like), "is an export, not an earlier data build")
    assert snapshot(export_like) == before and hidden(tmp_path) == []
