"""Bad output paths: a foreign or input folder as --out is refused and left as it was, a file as
--out fails at once with one line, and a failed write leaves no partial or temporary output."""

import mlx_lc  # noqa: F401

import json
import os
import shutil

import pytest
from click.testing import CliRunner

from mlx_lc import adapters
from mlx_lc.bench.report import write as write_bench
from mlx_lc.bench.run import BenchConfig
from mlx_lc.cli import main
from mlx_lc.errors import MlxLcError
from mlx_lc.io import atomic_dir, atomic_write_text

from conftest import random_lora
from clirun import assert_one_line_error


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def snapshot(folder):
    """Every file under `folder` (hidden ones too) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def two(tmp_path, tiny_model):
    return [adapters.write_mlx(random_lora(tiny_model[0], seed=s, rank=4), tmp_path / f"task{s}") for s in (1, 2)]


def test_foreign_folder_as_out_is_refused_and_untouched(tmp_path, tiny_path, tiny_model):
    parent = tmp_path / "parentdir"
    inside = adapters.write_mlx(random_lora(tiny_model[0], seed=3, rank=4), parent / "a_sum")
    (parent / "notes.txt").write_text("my notes\n")
    other = adapters.write_mlx(random_lora(tiny_model[0], seed=4, rank=4), tmp_path / "a_fr")
    before = snapshot(parent)
    r = run("merge", "-m", tiny_path, "-a", inside, "-a", other, "-o", parent)
    assert_one_line_error(r, "holds no adapter_config.json")
    assert snapshot(parent) == before and leftovers(tmp_path) == []


def test_base_model_folder_as_out_is_refused(tmp_path, tiny_path, two):
    model = shutil.copytree(tiny_path, tmp_path / "m")
    before = snapshot(model)
    assert_one_line_error(run("merge", "-m", model, "-a", two[0], "-a", two[1], "-o", model), "not an earlier adapter")
    # A model folder is the right kind for fuse, so only the input check stands between it and the base.
    assert_one_line_error(run("fuse", "-m", model, "-a", two[0], "-o", model), "is the input")
    assert snapshot(model) == before


def test_rerun_into_own_earlier_output_replaces_it(tmp_path, tiny_path, two):
    out = tmp_path / "merged"
    assert run("merge", "-m", tiny_path, "-a", two[0], "-a", two[1], "-o", out).exit_code == 0
    assert adapters.read(out).meta["merge"]["method"] == "linear"
    (out / "stale.txt").write_text("from the first run")
    r = run("merge", "-m", tiny_path, "-a", two[0], "-a", two[1], "--method", "ties", "-o", out)
    assert r.exit_code == 0, r.output
    assert adapters.read(out).meta["merge"]["method"] == "ties" and not (out / "stale.txt").exists()
    fused = tmp_path / "fused"
    for _ in range(2):
        r = run("fuse", "-m", tiny_path, "-a", two[0], "-o", fused)
        assert r.exit_code == 0, r.output
    assert (fused / "config.json").is_file() and leftovers(tmp_path) == []


def test_empty_existing_folder_is_fine(tmp_path, tiny_path, two):
    (tmp_path / "empty").mkdir()
    assert run("merge", "-m", tiny_path, "-a", two[0], "-o", tmp_path / "empty").exit_code == 0
    assert (tmp_path / "empty" / "adapter_config.json").is_file()


def test_out_equal_to_or_holding_an_input_is_refused(tmp_path, tiny_path, two):
    before = snapshot(two[0])
    assert_one_line_error(run("merge", "-m", tiny_path, "-a", two[0], "-a", two[1], "-o", two[0]), "is the input")
    assert snapshot(two[0]) == before
    # An earlier eval output whose examples are this run's data: right kind, but it holds the input.
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "results.json").write_text("{}\n")
    (ev / "examples.jsonl").write_text(json.dumps({"prompt": "p", "completion": "c", "task": "summarize"}) + "\n")
    assert_one_line_error(run("eval", "-m", tiny_path, "-d", ev / "examples.jsonl", "-o", ev), "holds the input")
    j = tmp_path / "j"
    j.mkdir()
    (j / "judge_summary.json").write_text("{}\n")
    r = run("judge-table", f"ours={j}", "-o", j / "judge_summary.json")
    assert_one_line_error(r, "is the input")
    assert (j / "judge_summary.json").read_text() == "{}\n"


@pytest.mark.parametrize("args", [
    ["merge", "-m", "M", "-a", "A", "-o", "F"],
    ["fold", "-m", "M", "-a", "A", "-c", "A", "-o", "F"],
    ["fuse", "-m", "M", "-a", "A", "-o", "F"],
    ["tiny-model", "F"],
    ["train-lora", "-m", "M", "-d", "D", "-o", "F"],
    ["calibrate", "-m", "M", "-a", "A", "-d", "D", "-o", "F"],
    ["pretrain", "-c", "D", "-o", "F"],
    ["eval", "-m", "M", "-d", "D", "-o", "F"],
    ["judge", "-d", "D", "-o", "F"],
    ["data", "build", "--offline", "-o", "F"],
    ["bench", "--quick", "-o", "F"],
    ["demo", "--quick", "-o", "F"],
    ["export", "coreml", "-m", "M", "-t", "summarize", "-o", "F"],
])
@pytest.mark.parametrize("under", [False, True])
def test_file_as_out_fails_at_once(tmp_path, tiny_path, two, args, under):
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt": "p", "completion": "c", "task": "summarize"}) + "\n")
    out = afile / "x" if under else afile  # a file as --out, or as its parent
    subs = {"M": tiny_path, "A": two[0], "D": data, "F": out}
    r = run(*[subs.get(a, a) for a in args])
    assert_one_line_error(r, f"{afile} exists and is not a folder" if under else f"{out} exists and is not a folder")
    assert afile.read_text() == "keep me\n" and leftovers(tmp_path) == []


def test_folder_as_file_out_fails_at_once(tmp_path):
    j = tmp_path / "j"
    j.mkdir()
    (j / "judge_summary.json").write_text("{}\n")
    assert_one_line_error(run("judge-table", f"ours={j}", "-o", j), "is a folder, not a file")
    assert sorted(p.name for p in j.iterdir()) == ["judge_summary.json"] and leftovers(tmp_path) == []


def test_atomic_dir_cleans_up_when_the_rename_fails(tmp_path):
    out = tmp_path / "art"
    out.mkdir()
    (out / "marker.json").write_text("old")
    # The place the old artifact is swapped to is taken by a non-empty folder: the swap fails.
    blocker = tmp_path / f".art.mlx-lc-old-{os.getpid()}"
    blocker.mkdir()
    (blocker / "x").write_text("x")
    with pytest.raises(OSError):
        with atomic_dir(out, marker="marker.json", kind="thing") as tmp:
            (tmp / "marker.json").write_text("new")
    assert (out / "marker.json").read_text() == "old"
    assert leftovers(tmp_path) == [blocker.name]
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "never", marker="marker.json", kind="thing"):
            raise RuntimeError("the writer failed")
    assert not (tmp_path / "never").exists() and leftovers(tmp_path) == [blocker.name]


def test_current_folder_as_out_is_refused(tmp_path, tiny_path, two, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # empty, so only "it is the current folder" stops the swap
    assert_one_line_error(run("merge", "-m", tiny_path, "-a", two[0], "-o", "."), "current folder")
    assert list(work.iterdir()) == [] and leftovers(tmp_path) == []


def test_atomic_write_text_to_a_folder_leaves_no_temp_file(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(MlxLcError, match="is a folder, not a file"):
        atomic_write_text(tmp_path / "d", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"] and list((tmp_path / "d").iterdir()) == []


def test_bench_report_writes_all_files_or_none(tmp_path):
    out = tmp_path / "b"
    with pytest.raises(KeyError):
        write_bench({"rows": []}, out)  # no machine section: the Markdown fails after the JSON was made
    assert not out.exists()
    out.mkdir()
    (out / "bench.json").write_text("{}\n")
    (out / "bench.md").write_text("earlier run\n")
    with pytest.raises(KeyError):
        write_bench({"rows": []}, out)
    assert sorted(p.name for p in out.iterdir()) == ["bench.json", "bench.md"]
    assert (out / "bench.md").read_text() == "earlier run\n" and leftovers(tmp_path) == []


def test_bench_refuses_an_empty_group_list(tmp_path):
    with pytest.raises(MlxLcError, match="no bench groups"):
        BenchConfig(groups=()).resolved()
    assert_one_line_error(run("bench", "--quick", "--only", ",", "-o", tmp_path / "b3"), "no bench groups")
    assert not (tmp_path / "b3").exists()
