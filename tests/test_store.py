"""Your own tasks: two made-up tasks, their LoRAs trained on a tiny model, their composition
calibrated from inputs alone (targets from the multi-step chain) and used through the task store."""

from __future__ import annotations

import json
import multiprocessing
import random
import shutil

import pytest

from clirun import assert_one_line_error, invoke
from mlx_lc import targets as targets_lib
from mlx_lc.store import Store
from mlx_lc.tasks import Task

WORDS = "the cat sat on a mat near the old red door while rain fell".split()


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_path):
    """LoRAs of two made-up tasks: 'first-two' keeps the first two words (primary), 'shout'
    rewrites in capitals (secondary), each a few steps on the tiny model: wiring, not quality."""
    root = tmp_path_factory.mktemp("own")
    specs = {"first-two": ("Keep the first two words.", lambda t: " ".join(t.split()[:2])),
             "shout": ("Rewrite the text in capitals.", str.upper)}
    loras = {}
    for i, (name, (instr, fn)) in enumerate(specs.items()):
        rng = random.Random(i)
        texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 6))) for _ in range(24)]
        _write(root / "data" / name / "train.jsonl",
               [{"prompt": f"{instr}\n\n{t}", "completion": fn(t), "task": name} for t in texts])
        r = invoke("train-lora", "-m", tiny_path, "-d", root / "data" / name, "-o", root / "lora" / name,
                   "--rank", 4, "--iters", 3, "--batch-size", 4, "-q")
        assert r.exit_code == 0, r.output
        loras[name] = root / "lora" / name
    inputs = _write(root / "inputs.jsonl", [{"input": " ".join(WORDS[i:i + 5])} for i in range(10)])
    return root, loras, inputs, specs


def _add(store, name, adapter, instr, *extra):
    r = invoke("task", "add", name, "--adapter", adapter, "--instruction", instr, "--store", store, *extra)
    assert r.exit_code == 0, r.output
    return r


def test_own_tasks_label_free_calibration_and_generate_through_the_store(trained, tmp_path):
    root, loras, inputs, specs = trained
    store = tmp_path / "store"
    _add(store, "first-two", loras["first-two"], specs["first-two"][0])
    _add(store, "shout", loras["shout"], specs["shout"][0], "--kind", "secondary", "--modifier", ", in capitals")
    listing = invoke("tasks", "--store", store)
    assert listing.exit_code == 0 and "first-two" in listing.output and "shout" in listing.output, listing.output

    r = invoke("calibrate", "--task", "first-two+shout", "--inputs", inputs, "--store", store, "--iters", 2,
               "--batch-size", 4, "--targets-max-tokens", 6, "-q")
    assert r.exit_code == 0, r.output
    cal = store / "calibrations" / "first-two+shout"
    assert (cal / "calibration.safetensors").is_file() and (cal / "targets.jsonl").is_file()
    assert not targets_lib.cache_dir(cal).exists()  # the cache moved into the calibration
    record = json.loads((store / "compositions" / "first-two+shout.json").read_text())
    assert record["calibration"] == str(cal) and record["trained"]["label_free"] is True
    config = json.loads((cal / "calibration_config.json").read_text())
    assert config["train"]["tasks"] == ["first-two+shout"] and config["train"]["targets"]["label_free"]

    # each target is what the chain gives for its input, one input at a time
    row = json.loads((cal / "targets.jsonl").read_text().splitlines()[0])
    assert row["prompt"] == f"Keep the first two words, in capitals.\n\n{row['input']}"
    chain = invoke("generate", "--task", "first-two+shout", "--multi-step", row["input"], "--max-tokens", 6,
                   "--store", store)
    assert chain.exit_code == 0 and chain.output.strip() == row["completion"], (chain.output, row)

    # the store finds model, adapters and calibration: the same text as naming them all
    via_store = invoke("generate", "--task", "first-two+shout", "the cat sat", "--max-tokens", 8, "--store", store)
    explicit = invoke("generate", "-m", _base(loras),
                      "-a", loras["first-two"], "-a", loras["shout"], "-c", cal, "-p", "the cat sat",
                      "--max-tokens", 8)
    assert via_store.exit_code == 0 and explicit.exit_code == 0, (via_store.output, explicit.output)
    assert via_store.output == explicit.output and via_store.output.strip()
    stdin = invoke("generate", "--task", "first-two+shout", "--max-tokens", 8, "--store", store, input="the cat sat")
    assert stdin.output == via_store.output, stdin.output

    # fold: one ordinary adapter that generates the same text
    folded = invoke("fold", "--task", "first-two+shout", "-o", tmp_path / "folded", "--store", store)
    assert folded.exit_code == 0, folded.output
    same = invoke("generate", "-m", _base(loras), "-a", tmp_path / "folded", "-p", "the cat sat", "--max-tokens", 8,
                  "--store", store)
    assert same.output == via_store.output, same.output

    # eval through the store records its score there, and `tasks` shows it
    rows = [{"prompt": f"Keep the first two words, in capitals.\n\n{t}", "completion": " ".join(t.split()[:2]).upper(),
             "task": "first-two+shout"} for t in ("the cat sat on", "a red door", "rain fell near the mat")]
    scored = invoke("eval", "--task", "first-two+shout", "-d", _write(tmp_path / "test.jsonl", rows),
                    "--max-tokens", 6, "--store", store)
    assert scored.exit_code == 0, scored.output
    record = json.loads((store / "compositions" / "first-two+shout.json").read_text())
    assert record["scores"]["calibrated"]["n"] == 3
    listing = invoke("tasks", "--store", store).output
    assert "scores: calibrated: score" in listing, listing
    removed = invoke("task", "rm", "first-two+shout", "--store", store)
    assert removed.exit_code == 0 and not cal.exists() and not (store / "compositions" / "first-two+shout.json").exists()


def _base(loras):
    return json.loads((loras["first-two"] / "adapter_config.json").read_text())["model"]


def test_targets_resume_at_the_first_missing_chunk(trained, tmp_path, monkeypatch, tiny_path):
    root, loras, inputs, specs = trained
    store = Store(tmp_path / "store")
    store.add_task(Task("first-two", "primary", specs["first-two"][0], adapter=str(loras["first-two"]),
                        base_model=str(tiny_path)))
    store.add_task(Task("shout", "secondary", specs["shout"][0], ", in capitals", adapter=str(loras["shout"]),
                        base_model=str(tiny_path)))
    monkeypatch.setattr(targets_lib, "CHUNK", 4)  # 10 inputs: 3 chunks
    comp = store.resolve("first-two+shout")
    cfg = targets_lib.TargetsConfig(max_tokens=6)
    out = tmp_path / "cal"
    first = targets_lib.write_targets(comp.model, comp.task, comp.adapters, inputs, out, cfg, progress=False)
    full = first.read_text()
    parts = sorted(targets_lib.cache_dir(out).glob("part-*.jsonl"))
    assert len(parts) == 3
    kept = parts[0].stat().st_mtime_ns
    parts[1].unlink()  # as a run killed in its second chunk leaves it
    again = targets_lib.write_targets(comp.model, comp.task, comp.adapters, inputs, out, cfg, progress=False)
    assert again.read_text() == full and parts[1].exists()
    assert parts[0].stat().st_mtime_ns == kept  # reused, not generated again
    # --keep: the surest half of the same targets, from the cache, in input order
    every = [json.loads(line) for line in full.splitlines()]
    half = targets_lib.write_targets(comp.model, comp.task, comp.adapters, inputs, out,
                                     targets_lib.TargetsConfig(max_tokens=6, keep=0.5), progress=False)
    kept_rows = [json.loads(line) for line in half.read_text().splitlines()]
    assert len(kept_rows) == round(len(every) / 2) and kept_rows == [r for r in every if r in kept_rows]
    assert min(r["confidence"] for r in kept_rows) >= max(r["confidence"] for r in every if r not in kept_rows)


def _add_one(args):
    root, name = args
    Store(root).add_task(Task(name, "primary", f"Do {name}.", adapter="/x", base_model="m"))
    return name


def test_two_processes_adding_tasks_lose_neither(tmp_path):
    names = [f"t{i}" for i in range(16)]
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_add_one, [(tmp_path, n) for n in names])
    assert sorted(t.name for t in Store(tmp_path).tasks()) == sorted(names)
    assert not [p for p in (tmp_path / "tasks").iterdir() if not p.name.endswith(".json")]  # no temporaries


# ---------------------------------------------------------------- bad input: one line, nothing written


def _snapshot(root):
    return sorted((str(p.relative_to(root)), p.read_bytes() if p.is_file() else b"")
                  for p in root.rglob("*")) if root.exists() else []


@pytest.fixture
def stocked(trained, tmp_path):
    root, loras, inputs, specs = trained
    store = tmp_path / "store"
    _add(store, "first-two", loras["first-two"], specs["first-two"][0])
    _add(store, "shout", loras["shout"], specs["shout"][0], "--kind", "secondary", "--modifier", ", in capitals")
    return store, loras, inputs


@pytest.mark.parametrize("args,expected", [
    (["generate", "--task", "nope+shout", "x"], "unknown task 'nope'"),
    (["generate", "--task", "first-two+shout+nope", "x"], "unknown task 'nope'"),
    (["calibrate", "--task", "nope+shout", "--inputs", "INPUTS"], "unknown task 'nope'"),
    (["task", "add", "first-two", "--adapter", "LORA", "--instruction", "x"], "already in the store"),
    (["task", "add", "a/b", "--adapter", "LORA", "--instruction", "x"], "not usable"),
    (["task", "add", "two words", "--adapter", "LORA", "--instruction", "x"], "not usable"),
    (["task", "add", "..", "--adapter", "LORA", "--instruction", "x"], "not usable"),
    (["task", "add", "mine", "--adapter", "LORA"], "give --instruction"),
    (["task", "add", "mine", "--adapter", "NOWHERE", "--instruction", "x"], "adapter folder not found"),
    (["task", "add", "mine", "--adapter", "LORA", "--instruction", "  "], "instruction is empty"),
    (["task", "rm", "nope"], "no task 'nope'"),
    (["task", "add", "summarize", "--adapter", "LORA", "--instruction", "Sum up."], "summarize is a built-in task"),
    (["task", "rm", "first-two+nope"], "no task"),
    (["generate", "--task", "summarize+shout", "x"], "built-in task summarize has no adapter"),
    (["calibrate", "--task", "first-two", "--inputs", "INPUTS"], "single task"),
    (["calibrate", "--task", "first-two+shout", "--inputs", "EMPTY"], "no usable rows"),
    (["calibrate", "--task", "first-two+shout", "--inputs", "NOINPUT"], "needs a string field 'input'"),
    (["calibrate", "--task", "first-two+shout", "--inputs", "NOTJSON"], "not JSON"),
])
def test_bad_input(stocked, tmp_path, args, expected):
    store, loras, inputs = stocked
    files = {"INPUTS": inputs, "LORA": loras["first-two"], "NOWHERE": tmp_path / "nowhere",
             "EMPTY": _write(tmp_path / "empty.jsonl", []),
             "NOINPUT": _write(tmp_path / "noinput.jsonl", [{"prompt": "x"}]),
             "NOTJSON": tmp_path / "bad.jsonl"}
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    before = _snapshot(store)
    args = [str(files.get(a, a)) for a in args]
    assert_one_line_error(invoke(*args, "--store", store), expected)
    assert _snapshot(store) == before


def test_missing_adapter_other_base_and_hand_edited_store(stocked, tmp_path, tiny_path):
    store, loras, inputs = stocked
    moved = tmp_path / "moved"
    shutil.copytree(loras["shout"], moved)
    _add(store, "gone", moved, "Say it.", "--kind", "secondary")
    shutil.rmtree(moved)
    assert_one_line_error(invoke("generate", "--task", "first-two+gone", "x", "--store", store),
                          "adapter of task gone is not there")
    elsewhere = tmp_path / "made-elsewhere"
    shutil.copytree(loras["shout"], elsewhere)
    config = json.loads((elsewhere / "adapter_config.json").read_text())
    (elsewhere / "adapter_config.json").write_text(json.dumps({**config, "model": "build/somewhere/base"}))
    assert_one_line_error(invoke("task", "add", "far", "-a", elsewhere, "-i", "x", "--store", store),
                          "model not found: build/somewhere/base", "give --model")
    other = tmp_path / "other-base"
    shutil.copytree(tiny_path, other)
    _add(store, "elsewhere", loras["shout"], "Say it.", "--model", other)
    for cmd in (["generate", "--task", "first-two+elsewhere", "x"],
                ["calibrate", "--task", "first-two+elsewhere", "--inputs", inputs]):
        assert_one_line_error(invoke(*cmd, "--store", store), "different base models")
    (store / "tasks" / "shout.json").write_text('{"name": "shout", ')
    for cmd in (["tasks"], ["generate", "--task", "first-two+shout", "x"]):
        assert_one_line_error(invoke(*cmd, "--store", store), "shout.json is not valid JSON")
    assert not (store / "calibrations").exists()


def test_teacher_model_runs_the_chain_from_the_instructions(trained, tmp_path, tiny_path):
    """--teacher-model: another model writes the targets, each step prompted with its task's
    instruction and no adapter, as `mlx-lc generate -m TEACHER --task STEP` would answer."""
    root, loras, inputs, specs = trained
    store = tmp_path / "store"
    _add(store, "first-two", loras["first-two"], specs["first-two"][0])
    _add(store, "shout", loras["shout"], specs["shout"][0], "--kind", "secondary", "--modifier", ", in capitals")
    teacher = tmp_path / "teacher"
    assert invoke("tiny-model", teacher, "--seed", 3).exit_code == 0
    r = invoke("calibrate", "--task", "first-two+shout", "--inputs", inputs, "--teacher-model", teacher,
               "--store", store, "--iters", 1, "--batch-size", 4, "--targets-max-tokens", 5, "-q")
    assert r.exit_code == 0, r.output
    row = json.loads((store / "calibrations" / "first-two+shout" / "targets.jsonl").read_text().splitlines()[0])
    first = invoke("generate", "-m", teacher, "--task", "first-two", row["input"], "--max-tokens", 5)
    assert first.exit_code == 0 and first.output.strip() == row["steps"][0], (first.output, row)


def test_a_calibration_shared_on_the_hub(trained, tmp_path, monkeypatch):
    """task add A+B -c user/repo: the calibration comes through huggingface_hub (here from its
    cache, offline: the layout a download leaves) and generates as the local folder does."""
    root, loras, inputs, specs = trained
    store = tmp_path / "store"
    _add(store, "first-two", loras["first-two"], specs["first-two"][0])
    _add(store, "shout", loras["shout"], specs["shout"][0], "--kind", "secondary", "--modifier", ", in capitals")
    local = tmp_path / "cal"
    r = invoke("calibrate", "--task", "first-two+shout", "--inputs", inputs, "-o", local, "--store", store,
               "--iters", 2, "--batch-size", 4, "--targets-max-tokens", 6, "-q")
    assert r.exit_code == 0, r.output
    cache = tmp_path / "hub"
    snapshot = cache / "models--someone--first-two-shout" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    for name in ("calibration.safetensors", "calibration_config.json"):
        shutil.copy(local / name, snapshot / name)
    (cache / "models--someone--first-two-shout" / "refs").mkdir()
    (cache / "models--someone--first-two-shout" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    assert invoke("task", "rm", "first-two+shout", "--store", store).exit_code == 0
    added = invoke("task", "add", "first-two+shout", "-c", "someone/first-two-shout", "--store", store)
    assert added.exit_code == 0, added.output
    via_hub = invoke("generate", "--task", "first-two+shout", "the cat sat", "--max-tokens", 8, "--store", store)
    direct = invoke("generate", "-c", local, "-p", "the cat sat", "--max-tokens", 8)
    assert via_hub.exit_code == 0 and via_hub.output == direct.output, (via_hub.output, direct.output)
    assert_one_line_error(invoke("task", "add", "first-two+shout", "-c", "nobody/nothing", "--store", store),
                          "calibration not found: nobody/nothing")


def test_three_tasks_compose_the_same_way(trained, tmp_path):
    """A+B+C: one merge of three LoRAs, one calibration, a chain of three passes for its targets."""
    root, loras, inputs, specs = trained
    store = tmp_path / "store"
    _add(store, "first-two", loras["first-two"], specs["first-two"][0])
    _add(store, "shout", loras["shout"], specs["shout"][0], "--kind", "secondary", "--modifier", ", in capitals")
    _add(store, "again", loras["shout"], specs["shout"][0], "--kind", "secondary")
    r = invoke("calibrate", "--task", "first-two+shout+again", "--inputs", inputs, "--store", store, "--iters", 1,
               "--batch-size", 4, "--targets-max-tokens", 5, "-q")
    assert r.exit_code == 0, r.output
    cal = store / "calibrations" / "first-two+shout+again"
    assert len(json.loads((cal / "calibration_config.json").read_text())["sources"]) == 3
    row = json.loads((cal / "targets.jsonl").read_text().splitlines()[0])
    assert len(row["steps"]) == 3
    assert row["prompt"].startswith("Keep the first two words, in capitals. Then: Rewrite the text in capitals.\n\n")
    chain = invoke("generate", "--task", "first-two+shout+again", "--multi-step", row["input"], "--max-tokens", 5,
                   "--store", store)
    assert chain.output.strip() == row["completion"], (chain.output, row)
    one = invoke("generate", "--task", "first-two+shout+again", "the cat", "--max-tokens", 5, "--store", store)
    assert one.exit_code == 0, one.output
