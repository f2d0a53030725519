"""Training safety in the shared loop (fit.py): a resumed run is the uninterrupted one, bit for
bit, dropout included; a checkpoint is written as one unit and checked on resume; a resume
refuses other data; a diverging run stops; data the loss cannot see are refused or counted."""

import mlx_lc  # noqa: F401

import json

import mlx.core as mx
import pytest
from click.testing import CliRunner

from mlx_lc.cli import main
from mlx_lc.training.fit import FitConfig
from mlx_lc.training.train import LoRAConfig, train_lora

import toy_data
from clirun import assert_error_last as assert_clean_error


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return toy_data.write(tmp_path_factory.mktemp("data") / "sum", "summarize", 16, 4)


LORA = ("--rank", 4, "--batch-size", 4, "--lr", 1e-3, "--eval-every", 1, "-q")


@pytest.fixture
def lora_run(tmp_path, tiny_path, data):
    out = tmp_path / "lora"
    res = run("train-lora", "-m", tiny_path, "-d", data, "-o", out, "--iters", 2, *LORA)
    assert res.exit_code == 0, res.output
    return out


# ---------------------------------------------------------------- exact resume

def test_resume_with_dropout_is_bit_exact(tmp_path, tiny_path, data):
    def cfg(iters):  # the default dropout: each step draws masks from the global random key
        return LoRAConfig(rank=4, scale=1.0, dropout=0.05, fit=FitConfig(lr=2e-3, batch_size=4, iters=iters,
                                                                         eval_every=3))

    train_lora(str(tiny_path), data, tmp_path / "straight", cfg(6), progress=False)
    train_lora(str(tiny_path), data, tmp_path / "split", cfg(3), progress=False)
    r = train_lora(str(tiny_path), data, tmp_path / "split", cfg(6), resume=True, progress=False)
    assert r.steps == 6
    a = mx.load(str(tmp_path / "straight" / "adapters.safetensors"))
    b = mx.load(str(tmp_path / "split" / "adapters.safetensors"))
    assert a.keys() == b.keys()
    assert all(mx.array_equal(a[k], b[k]) for k in a), max(mx.abs(a[k] - b[k]).max().item() for k in a)


# ---------------------------------------------------------------- the checkpoint as one unit

def test_a_failure_mid_checkpoint_leaves_the_previous_one_whole(tmp_path, tiny_path, data, lora_run, monkeypatch):
    ckpt = lora_run / "checkpoint"
    before = snapshot(ckpt)
    save, calls = mx.save_safetensors, []

    def fail_on_second(path, tensors, *a, **kw):  # the disk fills up after the first file of a save
        calls.append(path)
        if len(calls) == 2:
            raise OSError("No space left on device")
        return save(path, tensors, *a, **kw)

    monkeypatch.setattr(mx, "save_safetensors", fail_on_second)
    cfg = LoRAConfig(rank=4, scale=4.0, fit=FitConfig(lr=1e-3, batch_size=4, iters=3, eval_every=1))  # as LORA
    with pytest.raises(OSError):
        train_lora(str(tiny_path), data, lora_run, cfg, resume=True, progress=False)
    monkeypatch.undo()
    assert snapshot(ckpt) == before  # not the new current.safetensors beside the old best
    assert not [p.name for p in lora_run.iterdir() if p.name.startswith(".checkpoint")]
    res = run("train-lora", "-m", tiny_path, "-d", data, "-o", lora_run, "--iters", 3, *LORA, "--resume")
    assert res.exit_code == 0 and ": 3 steps" in res.output, res.output


def test_resume_puts_back_a_checkpoint_moved_aside(tiny_path, data, lora_run):
    # a save killed between its two renames: the previous checkpoint moved aside, the new one not in yet
    dead = 2**22 + 12345  # above Linux's default pid_max: no such process
    (lora_run / "checkpoint").rename(lora_run / f".checkpoint.mlx-lc-old-{dead}")
    res = run("train-lora", "-m", tiny_path, "-d", data, "-o", lora_run, "--iters", 3, *LORA, "--resume")
    assert res.exit_code == 0 and "put back" in res.output and ": 3 steps" in res.output, res.output


@pytest.mark.parametrize("name", ["best", "current", "optimizer"])
def test_resume_refuses_a_changed_checkpoint_file(tiny_path, data, lora_run, name):
    path = lora_run / "checkpoint" / f"{name}.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x01  # one bit of the last tensor: still a readable safetensors file
    path.write_bytes(bytes(raw))
    before = snapshot(lora_run)
    res = run("train-lora", "-m", tiny_path, "-d", data, "-o", lora_run, "--iters", 3, *LORA, "--resume")
    assert_clean_error(res, f"{name}.safetensors does not match the sha256")
    assert snapshot(lora_run) == before


def test_resume_refuses_other_data(tmp_path, tiny_path, data, lora_run):
    before = snapshot(lora_run)
    other = toy_data.write(tmp_path / "other", "summarize", 16, 4, offset=500)
    res = run("train-lora", "-m", tiny_path, "-d", other, "-o", lora_run, "--iters", 3, *LORA, "--resume")
    assert_clean_error(res, "the training data (as tokenized) differ")
    (other / "train.jsonl").write_text((data / "train.jsonl").read_text())  # the same rows, another dev split
    res = run("train-lora", "-m", tiny_path, "-d", other, "-o", lora_run, "--iters", 3, *LORA, "--resume")
    assert_clean_error(res, "the dev data (as tokenized) differ")
    assert snapshot(lora_run) == before


# ---------------------------------------------------------------- divergence

@pytest.mark.parametrize("dev", [True, False], ids=["dev", "no-dev"])
def test_a_diverging_run_stops_and_writes_nothing(tmp_path, tiny_path, data, dev):
    src = data
    if not dev:  # one .jsonl file of under 10 rows: no dev split, so only the training loss can tell
        src = tmp_path / "rows.jsonl"
        src.write_text("".join((data / "train.jsonl").read_text().splitlines(keepends=True)[:8]))
    out = tmp_path / "out"
    res = run("train-lora", "-m", tiny_path, "-d", src, "-o", out, "--rank", 4, "--batch-size", 4, "--lr", 1e30,
              "--iters", 4, "--eval-every", 1, "-q")
    assert_clean_error(res, "training diverged")
    assert "at step" in res.output.strip().splitlines()[-1] or "after step" in res.output, res.output
    assert not out.exists()


def test_a_diverging_calibration_stops(tmp_path, tiny_path, pair, data):
    out = tmp_path / "cal"
    res = run("calibrate", "-m", tiny_path, "-a", pair[0], "-a", pair[1], "-d", data, "-o", out, "--lr", 1e30,
              "--iters", 3, "--eval-every", 1, "--batch-size", 4, "-q")
    assert_clean_error(res, "training diverged")
    assert not out.exists()


# ---------------------------------------------------------------- rows the loss cannot see

def test_prompts_longer_than_max_seq_len_are_refused(tmp_path, tiny_path, data):
    out = tmp_path / "out"
    res = run("train-lora", "-m", tiny_path, "-d", data, "-o", out, "--iters", 2, *LORA, "--max-seq-len", 32)
    assert_clean_error(res, "none of the 16 training rows has a completion token within --max-seq-len 32")
    assert not out.exists()


def test_a_dev_split_without_scored_tokens_is_refused(tmp_path, tiny_path, data):
    src = tmp_path / "d"
    src.mkdir()
    (src / "train.jsonl").write_text((data / "train.jsonl").read_text())
    rows = [json.loads(line) for line in (data / "valid.jsonl").read_text().splitlines()]
    (src / "valid.jsonl").write_text("".join(json.dumps({**r, "prompt": r["prompt"] + " filler" * 200}) + "\n"
                                             for r in rows))
    res = run("train-lora", "-m", tiny_path, "-d", src, "-o", tmp_path / "out", "--iters", 2, *LORA)
    assert_clean_error(res, "none of the 4 dev rows has a completion token")
    assert not (tmp_path / "out").exists()


def test_cut_rows_are_counted_and_recorded(tmp_path, tiny_path, data):
    src = tmp_path / "d"
    src.mkdir()
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    rows[0]["completion"] *= 20  # cut, but its first completion tokens still count
    rows[1]["prompt"] += " filler" * 200  # cut inside the prompt: adds no loss
    (src / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (src / "valid.jsonl").write_text((data / "valid.jsonl").read_text())
    out = tmp_path / "out"
    res = run("train-lora", "-m", tiny_path, "-d", src, "-o", out, "--iters", 1, *LORA, "--max-seq-len", 96)
    assert res.exit_code == 0, res.output
    assert res.stderr.strip() == ("mlx-lc: 2 of 20 rows were cut at the maximum sequence length (96 tokens); "
                                  "1 of them has no completion token left and adds no loss"), res.stderr
    rows = json.loads((out / "adapter_config.json").read_text())["mlx_lc"]["result"]["rows"]
    assert rows == {"train": {"rows": 16, "cut": 2, "unscored": 1}, "valid": {"rows": 4, "cut": 0, "unscored": 0},
                    "max_seq_len": 96}
