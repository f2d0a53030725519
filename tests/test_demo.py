"""A small slice of `mlx-lc demo`: every stage and every method runs end to end on a tiny world
and the results folder has what a reader needs. It proves the wiring, not the paper's claim
(that is results/, from the full run)."""

import mlx_lc  # noqa: F401

import json

import pytest
from click.testing import CliRunner

from mlx_lc import demo
from mlx_lc.cli import main
from mlx_lc.errors import MlxLcError


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    # 2 worker processes, as on the demo's 2-core machine: the pool is what the default run uses
    return out, demo.run(demo.preset("test"), out, progress=False, log=lambda *a: None, label="test", workers=2)


def test_every_method_is_scored_by_the_judge(results):
    _, res = results
    scores = res["runs"][0]["scores"]["summarize+es"]
    assert set(scores) == set(demo.METHODS)
    for method, s in scores.items():
        assert s["n"] == 8 and s["metric"] == "rougeL", method
        for key in ("judge_pass", "fact_acc", "language_ok", "score"):
            assert s[key] is not None and 0.0 <= s[key] <= 1.0, (method, key)
    assert set(res["runs"][0]["single"]) == {"summarize", "es"}


def test_an_adapter_trained_in_a_worker_process_equals_one_trained_here(results, tmp_path):
    """Jobs are seeded, so the process pool changes the wall time, not the weights: up to float
    rounding, since a worker's BLAS runs one thread and sums in another order (~1e-4 after these 6
    steps; an unseeded init would differ by ~0.1)."""
    import mlx.core as mx

    from mlx_lc.io import load_safetensors
    from mlx_lc.training.train import train_lora

    out, _ = results
    work, cfg = out / "work" / "seed0", demo.seeded(demo.preset("test"))
    train_lora(str(work / "base"), work / "world" / "single" / "es", tmp_path / "es", cfg.lora, progress=False)
    here = load_safetensors(tmp_path / "es" / "adapters.safetensors")
    pooled = load_safetensors(work / "loras" / "es" / "adapters.safetensors")
    assert here.keys() == pooled.keys()
    assert all(mx.allclose(here[k], pooled[k], rtol=0, atol=1e-3).item() for k in here)


def test_extra_parameters_match_the_method(results):
    _, res = results
    p = res["runs"][0]["params"]
    d_out = 32 + 16 + 16 + 32 + 64 + 64 + 32  # q k v o gate up down of the hidden-32 test model
    d_in = 32 * 6 + 64
    assert p["lc-scale"] == p["lc-bias"] == d_out
    assert p["lc++"] == 4 * (d_in + d_out)
    assert p["joint expert"] == p["single LoRA"] == 2 * 4 * (d_in + d_out)  # rank 4, 2 layers


def test_results_folder(results):
    out, res = results
    md = (out / "results.md").read_text()
    assert "| multi-step | 0 (0.000 MB) | 2 |" in md and "[72.9]" in md  # ours beside the paper's
    assert "one seed" in md and "## Targets" in md and "## Single-task LoRAs" in md
    saved = json.loads((out / "results.json").read_text())
    assert saved["table"]["lc++"]["sum+trans"]["n_seeds"] == 1
    assert (out / "results.png").stat().st_size > 1000
    curves = sorted(p.name for p in (out / "curves").iterdir())
    assert "seed0-base.png" in curves and "seed0-joint-summarize_es.png" in curves
    assert len(curves) == 1 + 2 + 1 + 3  # base, 2 task LoRAs, joint expert, 3 calibrations


def test_demo_rejects_a_single_task_as_subtask(tmp_path):
    r = CliRunner().invoke(main, ["demo", "--subtask", "summarize", "-o", str(tmp_path / "d"), "-q"])
    assert r.exit_code == 1 and "not a composition" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "d").exists()


def test_rerun_refuses_artifacts_of_older_code_or_another_config(results):
    """Re-running with the same --out reuses finished artifacts, but only those made by this world
    version and this configuration: anything else is a one-line error, not a silent mix."""
    out, _ = results
    work = out / "work" / "seed0"
    r = CliRunner().invoke(main, ["demo", "--quick", "-o", str(out), "-q"])  # the test run was another preset
    assert r.exit_code == 1 and "another demo configuration" in r.output and "Traceback" not in r.output
    bench = work / "world" / "benchmark.json"
    saved = bench.read_text()
    bench.write_text(json.dumps({k: v for k, v in json.loads(saved).items() if k != "version"}))
    try:
        with pytest.raises(MlxLcError, match="older mlx-lc"):
            demo.run_seed(demo.preset("test"), work, progress=False, log=lambda *a: None)
    finally:
        bench.write_text(saved)


def test_a_shipped_base_is_used_only_for_the_world_and_settings_it_was_made_for(results, tmp_path):
    """The demo copies a shipped base when its fingerprint (corpus bytes, model, pretraining
    settings) matches this run's, and pretrains its own when any of them differs."""
    import shutil
    from dataclasses import replace

    import mlx.core as mx

    from mlx_lc.io import load_safetensors, write_json

    out, _ = results
    work = out / "work" / "seed0"
    cfg = demo.seeded(demo.preset("test"))
    shipped = tmp_path / "shipped"
    shutil.copytree(work / "base", shipped)
    write_json(shipped / "fingerprint.json", demo.base_fingerprint(cfg, work / "world" / "corpus.txt"))
    quiet = dict(progress=False, log=lambda *a: None, shipped=shipped)

    assert demo.pretrain_base(cfg, work / "world", tmp_path / "a", **quiet) == "shipped"
    a, s = load_safetensors(tmp_path / "a" / "model.safetensors"), load_safetensors(shipped / "model.safetensors")
    assert all(mx.array_equal(a[k], s[k]).item() for k in s)

    other = replace(cfg, pretrain=replace(cfg.pretrain, lr=cfg.pretrain.lr / 2))
    assert demo.pretrain_base(other, work / "world", tmp_path / "b", **quiet) == "pretrained"
    assert not (tmp_path / "b" / "fingerprint.json").exists()
    assert demo.pretrain_base(replace(cfg, use_shipped_base=False), work / "world", tmp_path / "c", **quiet) \
        == "pretrained"
    world2 = tmp_path / "world2"
    shutil.copytree(work / "world", world2)
    with open(world2 / "corpus.txt", "a") as f:
        f.write("\nOne more line.\n")
    assert demo.pretrain_base(cfg, world2, tmp_path / "d", **quiet) == "pretrained"


@pytest.mark.parametrize("name", ["default", "quick"])
def test_the_shipped_base_was_made_for_the_default_and_quick_demos(name, tmp_path):
    """mlx_lc/demo_base must match what these demos build today; if the corpus or the default
    settings change, rebuild it with scripts/build_demo_base.py (else the demo pretrains for ~45 min)."""
    shipped = demo.SHIPPED_BASE
    assert (shipped / "model.safetensors").stat().st_size > 1_000_000
    cfg = demo.seeded(demo.preset(name))
    demo.build_world(cfg, tmp_path / "world", progress=False)
    want = demo.base_fingerprint(cfg, tmp_path / "world" / "corpus.txt")
    got = json.loads((shipped / "fingerprint.json").read_text())
    assert got == want, "stale mlx_lc/demo_base: run scripts/build_demo_base.py"
    meta = json.loads((shipped / "pretrain.json").read_text())
    assert meta["result"]["steps"] == cfg.pretrain.iters and meta["config"]["fit"] == want["pretrain"]


@pytest.mark.parametrize("name", ["default", "quick"])
def test_joint_experts_get_the_calibrations_rows_and_epochs_and_single_loras_their_own(name, tmp_path):
    cfg = demo.preset(name)
    loras = {"summarize": tmp_path / "loras" / "summarize", "es": tmp_path / "loras" / "es"}
    jobs = demo.lora_jobs(cfg, tmp_path / "base", tmp_path / "world", loras, {"summarize+es": tmp_path / "j"})
    (_, (_, data_s, _, single)), (_, (_, data_e, _, _)), (_, (_, data_j, out_j, joint)) = jobs
    assert data_s == tmp_path / "world" / "single" / "summarize" and data_j == tmp_path / "world" / "comp" / "summarize+es"
    assert out_j == tmp_path / "j" and joint.fit.iters is None  # epochs, not a fixed step count, decide
    assert joint.fit.epochs == cfg.joint_epochs == cfg.calib.epochs
    assert single.fit == cfg.lora.fit
    assert joint.fit.total_steps(cfg.n_comp) == cfg.calib.total_steps(cfg.n_comp)  # same steps as a calibration
    assert (joint.rank, joint.fit.lr) == (single.rank, single.fit.lr)  # otherwise a single-task LoRA's settings


def test_report_only_rewrites_a_finished_runs_report_from_its_saved_scores(results, tmp_path):
    """A report written by older code (here: without the per-slot facts) is rewritten from the
    run's per-example scores, with the same numbers, and nothing is trained or generated."""
    import shutil

    out, res = results
    old = tmp_path / "old"
    shutil.copytree(out, old)
    saved = json.loads((old / "results.json").read_text())
    for methods in saved["runs"][0]["scores"].values():
        for s in methods.values():
            del s["slots"]
    (old / "results.json").write_text(json.dumps(saved))
    (old / "results.md").write_text("stale")
    before = {p: p.stat().st_mtime_ns for p in (old / "work").rglob("*") if p.is_file()}
    r = CliRunner().invoke(main, ["demo", "--report-only", "-o", str(old)])
    assert r.exit_code == 0, r.output
    again = json.loads((old / "results.json").read_text())
    assert again["runs"][0]["scores"] == res["runs"][0]["scores"] and again["runs"][0]["single"] == res["runs"][0]["single"]
    assert again["wall_seconds"] == res["wall_seconds"]  # the run's own time, not the rewrite's
    md = (old / "results.md").read_text()
    assert "## Each fact on its own" in md and "| lc++ |" in md.split("## Each fact on its own")[1]
    assert before == {p: p.stat().st_mtime_ns for p in (old / "work").rglob("*") if p.is_file()}

    r = CliRunner().invoke(main, ["demo", "--report-only", "-o", str(tmp_path / "none")])
    assert r.exit_code == 2 and "no finished run" in r.output and "Traceback" not in r.output
    shutil.rmtree(old / "work" / "seed0" / "eval")
    r = CliRunner().invoke(main, ["demo", "--report-only", "-o", str(old)])
    assert r.exit_code == 1 and "needs the run's work/ folder" in r.output and "Traceback" not in r.output


def test_runs_of_other_seeds_combine_into_one_report_and_other_settings_do_not(results, tmp_path):
    """scripts/combine_demo_runs.py: two folders of the same demo, seeds 0 and 5, give one report
    over both seeds (here with equal scores: std 0); a folder whose settings differ beyond the
    seed, or that repeats a seed, is refused with a one-line error."""
    import copy
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    out, res = results
    other = tmp_path / "seed5"
    other.mkdir()
    shutil.copytree(out / "curves", other / "curves")
    (other / "curves" / "seed0-base.png").rename(other / "curves" / "seed5-base.png")
    r5 = copy.deepcopy(res)
    r5["seeds"], r5["runs"][0]["seed"], r5["config"]["seed"], r5["wall_seconds"] = [5], 5, 5, 7.0
    assert res["runs"][0]["base_source"] == "pretrained"
    r5["runs"][0]["base_source"] = "shipped"
    (other / "results.json").write_text(json.dumps(r5))
    script = Path(__file__).parent.parent / "scripts" / "combine_demo_runs.py"

    def combine(*folders):
        return subprocess.run([sys.executable, str(script), *map(str, folders), "-o", str(tmp_path / "both")],
                              capture_output=True, text=True)

    p = combine(out, other)
    assert p.returncode == 0, p.stderr
    both = json.loads((tmp_path / "both" / "results.json").read_text())
    assert both["seeds"] == [0, 5] and [r["seed"] for r in both["runs"]] == [0, 5]
    cell = both["table"]["lc++"]["sum+trans"]
    assert cell["n_seeds"] == 2 and cell["std"] == 0.0 and cell["per_seed"][0] == cell["per_seed"][1]
    assert both["wall_seconds"] == round(res["wall_seconds"] + 7.0, 1)
    md = (tmp_path / "both" / "results.md").read_text()
    assert "mean ± std over 2 seeds" in md and "Combined from 2 runs" in md and "(seed 5)" in md
    assert "(seed 5: the base shipped in mlx_lc/demo_base" in md and "seed 0: pretrained)" in md
    assert (tmp_path / "both" / "curves" / "seed5-base.png").exists()
    assert (tmp_path / "both" / "results.png").exists()

    r5["config"]["n_comp"] += 1
    (other / "results.json").write_text(json.dumps(r5))
    p = combine(out, other)
    assert p.returncode == 1 and "differs in n_comp" in p.stderr and "Traceback" not in p.stderr
    p = combine(out, out)
    assert p.returncode == 1 and "seed 0 is already in an earlier folder" in p.stderr
    p = subprocess.run([sys.executable, str(script), str(out), str(other), "-o", str(other)],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "is one of the folders to combine" in p.stderr and "Traceback" not in p.stderr
    assert json.loads((other / "results.json").read_text()) == r5  # untouched
    (other / "results.json").write_text(json.dumps({"loss": 0.1}))
    p = combine(out, other)
    assert p.returncode == 1 and "not the results of an mlx-lc demo run" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.slow  # a probe of one-off experiments (scripts/), not the product: python -m pytest -m slow
def test_lc_sharing_probe_trains_each_form_on_a_finished_run(results):
    """scripts/lc_sharing_probe.py on the slice's artifacts: the shared form has the demo's LC
    scale parameter count, the per-layer form that times the number of layers."""
    import importlib.util
    from pathlib import Path

    out, res = results
    spec = importlib.util.spec_from_file_location(
        "lc_sharing_probe", Path(__file__).parent.parent / "scripts" / "lc_sharing_probe.py")
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    work = out / "work" / "seed0"
    shared = probe.main(work, "summarize+es", "shared")
    per_layer = probe.main(work, "summarize+es", "per-layer")
    assert shared["params"] == res["runs"][0]["params"]["lc-scale"]
    assert per_layer["params"] == demo.PRESETS["test"]["model"].layers * shared["params"]
    for r in (shared, per_layer):
        assert r["steps"] > 0 and 0.0 <= r["judge"] <= 1.0 and r["best_val"] > 0


def test_quick_is_the_default_run_restricted_to_summarize_es_and_the_methods_that_make_the_point():
    """--quick changes which sub-task and methods run, nothing any artifact depends on: so the
    shipped LoRAs fit it, and its summarize+es LC++ is the default run's."""
    quick, default = demo.preset("quick"), demo.preset("default")
    assert quick.subtasks == ["summarize+es"] and quick.calibrations == ["lc++"] and not quick.joint_expert
    same = lambda c: {k: v for k, v in vars(c).items() if k not in ("subtasks", "calibrations", "joint_expert")}  # noqa: E731
    assert same(quick) == same(default)
    with pytest.raises(MlxLcError, match="unknown calibration 'lc'"):
        demo.preset("quick", calibrations=["lc"])


@pytest.mark.parametrize("name", ["default", "quick"])
def test_the_shipped_loras_were_made_for_the_default_and_quick_demos(name, tmp_path):
    """mlx_lc/demo_loras must match what these demos train today (base, rows, settings); if any
    changes, rebuild them with scripts/build_demo_loras.py (else the demo trains them itself)."""
    cfg = demo.seeded(demo.preset(name))
    demo.build_world(cfg, tmp_path / "world", progress=False)
    for task in ("summarize", "es"):
        shipped = demo.SHIPPED_LORAS / task
        assert (shipped / "adapters.safetensors").stat().st_size > 100_000
        want = demo.lora_fingerprint(cfg, demo.SHIPPED_BASE, tmp_path / "world" / "single" / task)
        got = json.loads((shipped / "fingerprint.json").read_text())
        assert got == want, "stale mlx_lc/demo_loras: run scripts/build_demo_loras.py"


def test_a_shipped_lora_is_used_only_for_the_base_rows_and_settings_it_was_made_for(results, tmp_path):
    import shutil
    from dataclasses import replace

    from mlx_lc.io import write_json

    out, _ = results
    work = out / "work" / "seed0"
    cfg = demo.seeded(demo.preset("test"))
    shipped = tmp_path / "shipped"
    for task in ("summarize", "es"):
        shutil.copytree(work / "loras" / task, shipped / task)
        write_json(shipped / task / "fingerprint.json", demo.lora_fingerprint(cfg, work / "base", work / "world" / "single" / task))
    quiet = dict(log=lambda *a: None, shipped=shipped)

    loras = {"es": tmp_path / "a" / "es", "summarize": tmp_path / "a" / "summarize"}
    assert demo.copy_shipped_loras(cfg, work / "base", work / "world", loras, **quiet) == ["es", "summarize"]
    assert (loras["es"] / "adapters.safetensors").read_bytes() == (shipped / "es" / "adapters.safetensors").read_bytes()
    assert demo.copy_shipped_loras(cfg, work / "base", work / "world", loras, **quiet) == []  # already there

    fresh = {"es": tmp_path / "b" / "es"}
    other = replace(cfg, lora=replace(cfg.lora, rank=2))
    assert demo.copy_shipped_loras(other, work / "base", work / "world", fresh, **quiet) == []
    assert demo.copy_shipped_loras(replace(cfg, use_shipped_base=False), work / "base", work / "world", fresh, **quiet) == []
    world2 = tmp_path / "world2"
    shutil.copytree(work / "world", world2)
    with open(world2 / "single" / "es" / "train.jsonl", "a") as f:
        f.write('{"prompt": "x", "completion": "y"}\n')
    assert demo.copy_shipped_loras(cfg, work / "base", world2, fresh, **quiet) == []
    assert not (tmp_path / "b").exists()


def test_a_worker_stderr_becomes_bar_states_and_lines():
    import queue

    q = queue.Queue()
    w = demo.ToQueue(q, pid=7)
    w.write("\rlora es:   0%|          | 0/6 [00:00<?, ?step/s]")
    w.write("mlx-lc: 2 rows cut")
    w.write(" at 64 tokens\n")
    w.write("\rlora es: 100%|##########| 6/6 [00:03<00:00, 2.0step/s, loss=1.234]\n")
    got = [q.get_nowait() for _ in range(q.qsize())]
    assert got == [(7, "bar", "lora es:   0%|          | 0/6 [00:00<?, ?step/s]"),
                   (7, "line", "mlx-lc: 2 rows cut at 64 tokens"),
                   (7, "bar", "lora es: 100%|##########| 6/6 [00:03<00:00, 2.0step/s, loss=1.234]")]


def test_worker_processes_show_each_artifacts_step_loss_and_eta(results, tmp_path, capsys):
    """With --jobs 2 the progress carries each training's own bar (step/steps, loss, ETA), not
    only the count of finished artifacts."""
    out, _ = results
    work = out / "work" / "seed0"
    cfg = demo.seeded(demo.preset("test"))
    loras = {t: tmp_path / t for t in ("summarize", "es")}
    demo.run_jobs(demo.lora_jobs(cfg, work / "base", work / "world", loras, {}), 2, True, "LoRAs")
    err = capsys.readouterr().err
    assert "2/2" in err  # the artifacts' bar
    for task in loras:
        assert f"lora {task}" in err and "6/6" in err and "loss=" in err
    assert "<" in err.split("lora es", 1)[1]  # tqdm's elapsed<remaining: the ETA


def test_a_run_without_the_joint_expert_and_some_calibrations_reports_what_ran(results, tmp_path):
    """The quick preset's shape on the test slice: only LC++ trains, no joint expert; the report
    says what was left out, and the LoRAs of an earlier run's folder are reused."""
    import shutil
    from dataclasses import replace

    out, _ = results
    work = tmp_path / "work" / "seed0"
    cfg = replace(demo.preset("test"), calibrations=["lc++"], joint_expert=False)
    shutil.copytree(out / "work" / "seed0" / "world", work / "world")
    shutil.copytree(out / "work" / "seed0" / "base", work / "base")
    shutil.copytree(out / "work" / "seed0" / "loras", work / "loras")
    res = demo.run(cfg, tmp_path, progress=False, log=lambda *a: None, label="test", workers=1)
    run = res["runs"][0]
    assert set(run["scores"]["summarize+es"]) == set(demo.METHODS) - {"joint expert", "lc-scale", "lc-bias"}
    assert run["lora_source"] == {"summarize": "trained", "es": "trained"}
    assert "joint expert" not in run["params"] and not (work / "joint").exists()
    md = (tmp_path / "results.md").read_text()
    assert "Not run in this preset: joint expert, lc-scale, lc-bias." in md and "| lc++ |" in md
