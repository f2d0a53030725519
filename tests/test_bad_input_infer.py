"""Bad input to the inference-side commands (eval, merge/fold/fuse/generate, judge, export, data
build, demo --report-only): one `Error:` line naming the problem, a non-zero exit, no traceback
or "internal error", and nothing written. Real tiny models and adapters on disk, no mocks."""

import mlx_lc  # noqa: F401

import json
from pathlib import Path

import mlx.core as mx
import pytest
from click.testing import CliRunner

from mlx_lc import adapters, calibration
from mlx_lc.calibration import Calibration, CalibrationConfig
from mlx_lc.cli import main
from mlx_lc.merge import merge

import toy_data
from conftest import random_lora
from clirun import assert_one_line_error

BINARY = bytes(range(0x80, 0x100)) * 4  # not UTF-8 from the first byte


def invoke(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


@pytest.fixture(scope="module")
def fx(tmp_path_factory, tiny_path, tiny_model):
    """Adapters (two of rank 4, one of rank 8), a calibration of the first two, test rows."""
    root = tmp_path_factory.mktemp("bad_infer")
    model = tiny_model[0]
    a1, a2 = (adapters.write_mlx(random_lora(model, seed=s, rank=4), root / f"task{s}") for s in (1, 2))
    a8 = adapters.write_mlx(random_lora(model, seed=3, rank=8), root / "rank8")
    merged = merge(adapters.load_for(model, [a1, a2]))
    calib = calibration.save(Calibration(CalibrationConfig("lc", "scale"), calibration.module_shapes(merged)),
                             merged, root / "calib")
    comp = toy_data.write(root / "comp", "summarize+es", 16, 4)
    return {"root": root, "model": tiny_path, "a1": a1, "a2": a2, "a8": a8, "cal": calib, "comp": comp,
            "rows": [toy_data.row("summarize+es", i) for i in range(4)]}


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A fresh folder as cwd; the test checks that nothing new appeared in it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def nothing_written(folder: Path, before=()):
    assert sorted(p.name for p in folder.iterdir()) == sorted(before)


def write_rows(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def copy_adapter(src: Path, dst: Path, config) -> Path:
    dst.mkdir()
    (dst / "adapters.safetensors").write_bytes((src / "adapters.safetensors").read_bytes())
    (dst / "adapter_config.json").write_text(json.dumps(config))
    return dst


# ---------------------------------------------------------------- eval

def test_eval_checks_every_row_before_loading_anything(fx, work):
    rows = fx["rows"] + [{**fx["rows"][0], "task": "bogus+xx"}]
    data = write_rows(work / "rows.jsonl", rows)
    # the model does not exist: the bad last row is still what fails, so nothing was generated
    r = invoke("eval", "-m", work / "no_model", "-a", fx["a1"], "-d", data, "-o", work / "out")
    assert_one_line_error(r, "rows.jsonl: row 5: unknown task 'bogus' in 'bogus+xx'")
    nothing_written(work, ["rows.jsonl"])


@pytest.mark.parametrize("change, match", [
    (lambda r: {k: v for k, v in r.items() if k != "task"}, "row 2 has no 'task' field"),
    (lambda r: {**r, "task": 5}, "row 2: 'task' must be a string, got 5"),
    (lambda r: {**r, "frame": "garbage"}, "row 2: 'frame' must be an object"),
    (lambda r: {**r, "frame": {}}, "row 2: frame is missing"),
])
def test_eval_bad_row(fx, work, change, match):
    data = write_rows(work / "rows.jsonl", [fx["rows"][0], change(fx["rows"][1])])
    r = invoke("eval", "-m", fx["model"], "-a", fx["a1"], "-d", data, "-o", work / "out")
    assert_one_line_error(r, match)
    nothing_written(work, ["rows.jsonl"])


def test_eval_multi_step_rows_need_input(fx, work):
    data = write_rows(work / "rows.jsonl", [fx["rows"][0], {k: v for k, v in fx["rows"][1].items() if k != "input"}])
    r = invoke("eval", "-m", fx["model"], "-a", fx["a1"], "-a", fx["a2"], "--multi-step", "-d", data)
    assert_one_line_error(r, "row 2: multi-step needs composition rows with a string 'input'")


@pytest.mark.parametrize("limit", [0, -1])
def test_eval_limit_must_be_positive(fx, work, limit):
    data = write_rows(work / "rows.jsonl", fx["rows"])
    r = invoke("eval", "-m", fx["model"], "-a", fx["a1"], "-d", data, "--limit", limit, "-o", work / "out")
    assert_one_line_error(r, f"--limit must be at least 1, got {limit}")
    nothing_written(work, ["rows.jsonl"])


def test_non_utf8_data_files(fx, work):
    (work / "bin.jsonl").write_bytes(BINARY)
    for args in (["eval", "-m", fx["model"], "-a", fx["a1"], "-d", "bin.jsonl", "-o", "out"],
                 ["judge", "-m", fx["model"], "-d", "bin.jsonl", "-o", "out"],
                 ["train-lora", "-m", fx["model"], "-d", "bin.jsonl", "-o", "out", "--iters", 1]):
        assert_one_line_error(invoke(*args), "bin.jsonl is not UTF-8 text")
    nothing_written(work, ["bin.jsonl"])


def test_train_lora_json_array_gets_a_json_lines_hint(fx, work):
    (work / "rows.json").write_text(json.dumps(fx["rows"]))
    r = invoke("train-lora", "-m", fx["model"], "-d", "rows.json", "-o", "out", "--iters", 1)
    assert_one_line_error(r, "expected JSON Lines (one object per line), not a JSON array")
    nothing_written(work, ["rows.json"])


# ---------------------------------------------------------------- models

@pytest.mark.parametrize("name", ["./nope_dir", "a/b/nope_dir", "nope_dir/"])
def test_missing_model_folder(fx, work, name):
    r = invoke("merge", "-m", name, "-a", fx["a1"], "-a", fx["a2"], "-o", "out")
    assert_one_line_error(r, f"model not found: {name} (no such folder)")
    nothing_written(work)


def test_model_that_is_a_file(fx, work):
    (work / "m.txt").write_text("x")
    assert_one_line_error(invoke("merge", "-m", "m.txt", "-a", fx["a1"], "-o", "out"),
                          "model not found: m.txt is a file, not a model folder")


def test_export_fused_missing(fx, work):
    r = invoke("export", "coreml", "--fused", work / "nope", "-t", "summarize+es", "-o", work / "e")
    assert_one_line_error(r, "model not found:")
    nothing_written(work)


# ---------------------------------------------------------------- merges

@pytest.mark.parametrize("extra, match", [
    (["--method", "svd", "--rank", 100000], "--rank 100000 is more than svd can use here (at most 8)"),
    (["--method", "ties", "--rank", 100000], "--rank 100000 is more than ties can use here"),
    (["--method", "svd", "--rank", 0], "--rank must be at least 1"),
    (["--method", "svd", "--rank", -2], "--rank must be at least 1"),
    (["--weights", "nan,1"], "weights must be finite"),
    (["--weights", "1,inf"], "weights must be finite"),
])
def test_merge_numbers(fx, work, extra, match):
    r = invoke("merge", "-m", fx["model"], "-a", fx["a1"], "-a", fx["a2"], *extra, "-o", "out")
    assert_one_line_error(r, match)
    nothing_written(work)


def test_fold_with_more_adapters_than_the_calibration_names_them(fx, work):
    r = invoke("fold", "-m", fx["model"], "-a", fx["a1"], "-a", fx["a2"], "-a", fx["a2"], "-c", fx["cal"], "-o", "out")
    assert_one_line_error(r, "was trained for 2 adapters")
    assert "weights" not in r.output
    nothing_written(work)


def test_mixed_ranks_message_fits_the_command(fx, work):
    r = invoke("calibrate", "-m", fx["model"], "-a", fx["a1"], "-a", fx["a8"], "-d", fx["comp"], "--iters", 1, "-q",
               "-o", "out")
    assert_one_line_error(r, "use adapters of one rank")
    assert "--method" not in r.output
    r = invoke("export", "coreml", "-m", fx["model"], "-a", fx["a1"], "-a", fx["a8"], "-t", "summarize+es",
               "-o", "e")
    assert_one_line_error(r, "mlx-lc merge --method cat or svd")
    r = invoke("merge", "-m", fx["model"], "-a", fx["a1"], "-a", fx["a8"], "-o", "out")
    assert_one_line_error(r, "use --method cat or svd")
    nothing_written(work)


@pytest.mark.parametrize("cmd", ["fuse", "generate"])
def test_merge_options_with_a_calibration_are_refused(fx, work, cmd):
    tail = ["-o", "out"] if cmd == "fuse" else ["-p", "hi", "--max-tokens", 2]
    r = invoke(cmd, "-m", fx["model"], "-a", fx["a1"], "-a", fx["a2"], "-c", fx["cal"], "--method", "ties", *tail)
    assert_one_line_error(r, "--method cannot go with --calibration")
    nothing_written(work)


# ---------------------------------------------------------------- generate, judge, export numbers

@pytest.mark.parametrize("opt, value", [("--temp", -1), ("--top-p", 2), ("--top-p", -0.5), ("--top-k", -3),
                                        ("--min-p", -1), ("--min-p", 1.5), ("--temp", "nan")])
def test_generate_sampling_ranges(fx, work, opt, value):
    r = invoke("generate", "-m", fx["model"], "-a", fx["a1"], "-p", "hi", "--max-tokens", 2, opt, value)
    assert_one_line_error(r, f"{opt} must be")


def test_generate_binary_stdin(fx, work):
    r = invoke("generate", "-m", fx["model"], "-a", fx["a1"], "-p", "-", "--max-tokens", 2, input=BINARY)
    assert_one_line_error(r, "stdin is not UTF-8 text")


def test_judge_checks_before_loading_the_judge(fx, work):
    data = write_rows(work / "outs.jsonl", [{"task": "summarize+es", "input": "x", "output": "y"}])
    # a judge model that does not exist: the option error comes first
    r = invoke("judge", "-m", work / "no_judge", "-d", data, "--max-tokens", 0, "-o", "out")
    assert_one_line_error(r, "--max-tokens must be at least 1, got 0")
    r = invoke("judge", "-m", fx["model"], "-d", work, "-o", "out")
    assert_one_line_error(r, "is a folder; give the file of outputs")
    nothing_written(work, ["outs.jsonl"])


def test_export_max_new_tokens(fx, work):
    r = invoke("export", "coreml", "-m", fx["model"], "-a", fx["a1"], "-t", "summarize+es", "--max-new-tokens", 0,
               "-o", "e")
    assert_one_line_error(r, "--max-new-tokens must be at least 1")
    nothing_written(work)


def test_export_refuses_to_replace_a_foreign_folder(fx, work):
    (work / "e").mkdir()
    (work / "e" / "keep.txt").write_text("mine")
    r = invoke("export", "coreml", "-m", fx["model"], "-a", fx["a1"], "-t", "summarize+es", "-o", "e")
    assert_one_line_error(r, "holds no export.json")
    assert (work / "e" / "keep.txt").read_text() == "mine"


def test_judge_table_png_prints_the_real_path(fx, work):
    pytest.importorskip("matplotlib")
    summary = {"judge": "m", "overall": {"unparseable": 0},
               "by_group": {"sum+trans": {"n": 2, "pass_rate": 50.0}}}
    (work / "j").mkdir()
    (work / "j" / "judge_summary.json").write_text(json.dumps(summary))
    r = invoke("judge-table", "ours=j", "--png", "chart")
    assert r.exit_code == 0, r.output
    assert "wrote chart.png" in r.output and (work / "chart.png").is_file()
    assert_one_line_error(invoke("judge-table", "ours=j", "--png", "chart.xyz"), "cannot write .xyz files")
    assert not (work / "chart.xyz").exists()


# ---------------------------------------------------------------- hand-corrupted files

@pytest.mark.parametrize("edit, match", [
    (lambda c: [], "adapter_config.json: expected a JSON object, got list"),
    (lambda c: {**c, "lora_parameters": {**c["lora_parameters"], "scale": "abc"}}, "scale must be a number"),
    (lambda c: {**c, "mlx_lc": "x"}, "'mlx_lc' must be an object"),
])
def test_corrupt_mlx_adapter_config(fx, work, edit, match):
    cfg = json.loads((fx["a2"] / "adapter_config.json").read_text())
    bad = copy_adapter(fx["a2"], work / "bad", edit(cfg))
    r = invoke("merge", "-m", fx["model"], "-a", fx["a1"], "-a", bad, "-o", "out")
    assert_one_line_error(r, match)
    assert "bad/adapter_config.json" in r.output
    nothing_written(work, ["bad"])


@pytest.mark.parametrize("config, match", [({"peft_type": "LORA", "lora_alpha": 8}, "'r' is missing"),
                                           ({"peft_type": "LORA", "r": "four"}, "'r' must be a number")])
def test_corrupt_peft_config(fx, work, config, match):
    lora = adapters.read(fx["a2"])
    tensors = {}
    for path, (a, b) in lora.factors.items():
        tensors[f"base_model.model.{path}.lora_A.weight"] = a.T
        tensors[f"base_model.model.{path}.lora_B.weight"] = b.T
    (work / "peft").mkdir()
    mx.save_safetensors(str(work / "peft" / "adapter_model.safetensors"), tensors)
    (work / "peft" / "adapter_config.json").write_text(json.dumps(config))
    r = invoke("merge", "-m", fx["model"], "-a", fx["a1"], "-a", work / "peft", "-o", "out")
    assert_one_line_error(r, match)
    nothing_written(work, ["peft"])


@pytest.mark.parametrize("edit, match", [
    (lambda c: [], "calibration_config.json: expected a JSON object"),
    (lambda c: {**c, "merge": "linear"}, "'merge' must be an object"),
    (lambda c: {**c, "sources": "a,b"}, "'sources' must be a list of objects"),
])
def test_corrupt_calibration_config(fx, work, edit, match):
    bad = work / "cal"
    bad.mkdir()
    (bad / "calibration.safetensors").write_bytes((fx["cal"] / "calibration.safetensors").read_bytes())
    (bad / "calibration_config.json").write_text(json.dumps(edit(json.loads((fx["cal"] / "calibration_config.json").read_text()))))
    r = invoke("fold", "-m", fx["model"], "-a", fx["a1"], "-a", fx["a2"], "-c", bad, "-o", "out")
    assert_one_line_error(r, match)
    nothing_written(work, ["cal"])


@pytest.mark.parametrize("text, match", [
    ("[]", "expected a JSON object"),
    ('{"overall": 3}', "'overall' must be an object"),
    ('{"by_group": []}', "'by_group' must be an object"),
    ('{"by_group": {"sum+trans": {"pass_rate": "high", "n": 5}}}', "'by_group.sum+trans' must hold"),
    ('{"by_group": {"sum+trans": {"pass_rate": 0.5}}}', "'by_group.sum+trans' must hold"),
])
def test_malformed_judge_summary(work, text, match):
    (work / "j").mkdir()
    (work / "j" / "judge_summary.json").write_text(text)
    assert_one_line_error(invoke("judge-table", "ours=j", "-o", "t.md"), "judge_summary.json: " + match)
    nothing_written(work, ["j"])


def test_demo_report_only_on_an_eval_folder(work):
    (work / "ev").mkdir()
    (work / "ev" / "results.json").write_text(json.dumps({"method": "lora", "per_task": {}, "examples": []}))
    r = invoke("demo", "--report-only", "-o", "ev")
    assert_one_line_error(r, "ev is not a demo results folder")
    assert sorted(p.name for p in (work / "ev").iterdir()) == ["results.json"]


# ---------------------------------------------------------------- data build

def test_data_build_with_an_unusable_tone_table(work):
    good = {"text": "We will meet at the park.", "tone": "casual", "rewrite": "Let's meet at the park!"}
    (work / "tone.jsonl").write_text(json.dumps(good)[:-9] + "\n")  # one truncated line: no usable row
    r = invoke("data", "build", "-s", "tone", "--tone-table", "tone.jsonl", "--offline", "--hub-cache", "hub",
               "--cache", "gen", "-o", "db")
    assert_one_line_error(r, "tone table tone.jsonl: no usable rows")
    assert not (work / "db").exists()
