"""`mlx-lc data build` on small slices of the real sources, served from a local hub cache.

The fixtures under tests/fixtures/hub have each hub repo's real file names, formats, columns and
quirks. We lay them out as a huggingface_hub cache (refs/ + snapshots/) and build with
local_files_only, so the real hf_hub_download code path resolves every file. A tiny random model
is the translator and the rewriter: its outputs are nonsense, but every row, cache entry and skip
report they produce is real.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import mlx_lc  # noqa: F401  (BLAS before mlx)
from mlx_lc import tasks
from mlx_lc.cli import main
from mlx_lc.data import BuildConfig, build, generation
from mlx_lc.data.sources import SOURCES, SPLITS, Report, detokenize, read_tone_table
from mlx_lc.errors import MlxLcError
from mlx_lc.tiny import TinyConfig, write_tiny_model

FIXTURES = Path(__file__).parent / "fixtures" / "hub"
pytest.importorskip("pyarrow")


def make_hub_cache(root: Path) -> Path:
    """A huggingface_hub cache holding the fixture files at each source's real repo and revision."""
    cache = root / "hub"
    for src in SOURCES.values():
        owner, name = src.repo_id.split("/")
        storage = cache / f"datasets--{owner}--{name}"
        commit = (f"{abs(hash(src.repo_id)) % 10**12:012d}" + "0" * 40)[:40]
        (storage / "refs" / src.revision).parent.mkdir(parents=True, exist_ok=True)
        (storage / "refs" / src.revision).write_text(commit)
        for split in SPLITS:
            for f in src.files[split]:
                dst = storage / "snapshots" / commit / f
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(FIXTURES / owner / name / f, dst)
    return cache


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    tiny = write_tiny_model(root / "tiny", TinyConfig(hidden=32, layers=2, vocab=320, heads=2, kv_heads=1, seed=0))
    return {"root": root, "hub": make_hub_cache(root), "tiny": str(tiny)}


def cfg_for(env, out, cache, **kw):
    base = dict(out=out, translator=env["tiny"], rewriter=env["tiny"], hub_cache=env["hub"], offline=True,
                cache_dir=cache, limit=3, max_tokens=6, batch_size=4)
    base.update(kw)
    return BuildConfig(**base)


def read_set(folder: Path) -> dict[str, list[dict]]:
    return {s: [json.loads(line) for line in (folder / f"{s}.jsonl").read_text().splitlines()] for s in SPLITS}


def skipped(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def built(env):
    out, cache = env["root"] / "built", env["root"] / "cache"
    return out, cache, build(cfg_for(env, out, cache))


def test_readers_handle_each_sources_quirks(built):
    out, _, manifest = built
    summ = read_set(out / "single" / "summarize")
    assert [len(summ[s]) for s in SPLITS] == [3, 2, 3]  # --limit 3; train_4 (empty summary) skipped
    assert "#Person1#:" in summ["train"][0]["input"] and "\n" in summ["train"][0]["input"]
    reply = read_set(out / "single" / "reply")
    # conversation 1: 5 turns -> 4 pairs; conversation 2: the unprefixed line breaks it -> 2 pairs
    assert manifest["counts"]["single/reply"] == {"train": 3, "valid": 3, "test": 3}
    assert all(r["input"] and r["completion"] and not r["completion"].startswith("User") for r in reply["train"])
    es, de = read_set(out / "single" / "es"), read_set(out / "single" / "de")
    assert "it's a beautiful day." in [r["input"] for r in es["train"]] + [r["input"] for r in de["train"]]
    assert all("__NULL__" not in r["completion"] for r in de["train"])
    reasons = {(s["source"], s["reason"]) for s in skipped(out)}
    assert ("dialogsum", "empty dialogue or summary") in reasons
    assert ("spc", "empty conversation") in reasons
    assert ("spc", "utterance without a 'User 1:'/'User 2:' prefix") in reasons
    assert ("tone", "empty 'Rephrased Content'") in reasons
    assert manifest["notes"]["ted: train rows without English"] == 1
    assert {f["repo"] for f in manifest["files"]} == {s.repo_id for s in SOURCES.values()}
    assert all(f["commit"] for f in manifest["files"])


def test_detokenize_ted():
    assert detokenize("we don 't know the answer yet .", "en") == "we don't know the answer yet."
    assert detokenize("this is n't easy .", "en") == "this isn't easy."
    assert detokenize("l' eau est froide .", "fr") == "l'eau est froide."
    assert detokenize("qu' avez @-@ vous vu ?", "fr") == "qu'avez-vous vu ?"
    assert detokenize("¿ qué viste ?", "es") == "¿qué viste?"
    assert detokenize('er sagte " hallo " zu mir .', "de") == 'er sagte "hallo" zu mir.'


def test_all_23_sets_in_the_data_format(built):
    out, _, manifest = built
    names = {p.parent.name + "/" + p.name for p in out.glob("*/*") if p.is_dir()}
    assert names == {f"single/{t}" for t in tasks.SINGLE} | {f"compositional/{c}" for c in tasks.COMPOSITIONS}
    gen_skips = [s for s in skipped(out) if s["source"] == "generation"]
    for name in names:
        rows = read_set(out / name)
        task = name.split("/")[1]
        for split, rs in rows.items():
            assert manifest["counts"][name][split] == len(rs)
            for r in rs:
                assert r["task"] == task and r["completion"].strip()
                assert r["prompt"] == tasks.prompt_text(tasks.get(task), r["input"])
            assert len({r["id"] for r in rs}) == len(rs)
        if "+" in task:  # every planned compositional example is written or reported, never dropped
            primary = read_set(out / "single" / task.split("+")[0])
            for split in SPLITS:
                planned = min(len(primary[split]), 3)
                lost = sum(1 for s in gen_skips if s["split"] == split and s["reason"].endswith(f" for {task}"))
                assert len(rows[split]) + lost == planned
                prim = {r["id"]: r["completion"] for r in primary[split]}
                assert all(r["primary_target"] == prim[r["id"]] for r in rows[split])


def test_second_build_makes_no_model_calls(env, built):
    out, cache, first = built
    out2 = env["root"] / "built2"
    second = build(cfg_for(env, out2, cache))
    assert sum(s["generated"] for s in first["generation"].values()) > 0
    assert [s["generated"] for s in second["generation"].values()] == [0]
    assert second["counts"] == first["counts"]
    for f in out.glob("*/*/*.jsonl"):
        assert (out2 / f.relative_to(out)).read_text() == f.read_text()


def test_cache_ignores_a_torn_line_and_appends_cleanly(tmp_path):
    c = generation.GenerationCache(tmp_path / "c.jsonl")
    c.put_many({"a": "1", "b": "2"})
    with open(tmp_path / "c.jsonl", "a") as f:
        f.write('{"k": "c", "v": "thr')  # a write cut short by a kill
    c2 = generation.GenerationCache(tmp_path / "c.jsonl")
    assert c2.entries == {"a": "1", "b": "2"} and c2.torn_lines == 1
    c2.put_many({"c": "3"})
    c3 = generation.GenerationCache(tmp_path / "c.jsonl")
    assert c3.entries == {"a": "1", "b": "2", "c": "3"} and c3.torn_lines == 1


def test_resume_after_kill(env, tmp_path):
    """SIGKILL a build mid-generation, rerun: only the missing targets are generated, no row is lost or doubled."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    cmd = [sys.executable, "-c", "from mlx_lc.cli import main; main()", "data", "build", "--out", str(out), "--translator", env["tiny"],
           "--rewriter", env["tiny"], "--hub-cache", str(env["hub"]), "--offline", "--cache", str(cache),
           "--limit", "3", "--max-tokens", "24", "--batch-size", "1", "--sources", "dialogsum,tone"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    cache_files = lambda: list(cache.glob("*.jsonl"))  # noqa: E731
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if cache_files() and sum(1 for _ in open(cache_files()[0])) >= 4:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the build finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()  # nothing half-written
    done_before = len(generation.GenerationCache(cache_files()[0]).entries)
    manifest = build(cfg_for(env, out, cache, max_tokens=24, batch_size=1, sources=("dialogsum", "tone")))
    (st,) = manifest["generation"].values()
    assert st["cached"] >= done_before >= 4 and st["generated"] > 0
    assert st["cached"] + st["generated"] == st["requested"]
    gen_skips = [s for s in skipped(out) if s["source"] == "generation"]
    summ = read_set(out / "single" / "summarize")
    for comp in [c for c in tasks.COMPOSITIONS if c.startswith("summarize+")]:
        rows = read_set(out / "compositional" / comp)
        for split in SPLITS:
            ids = [r["id"] for r in rows[split]]
            lost = [s for s in gen_skips if s["split"] == split and s["reason"].endswith(f" for {comp}")]
            assert len(ids) == len(set(ids)) and len(ids) + len(lost) == len(summ[split])


def test_tone_table_long_and_wide_with_bad_rows(tmp_path):
    long = tmp_path / "tones.csv"
    long.write_text("text,tone,rewrite,split\nSee you at noon.,casual,Catch ya at noon!,train\n"
                    "See you at noon.,grumpy,Fine. Noon.,train\nThe report is late.,professional,,test\n"
                    "The report is late.,professional,The report will be delayed.,test\n")
    rep = Report()
    t = read_tone_table(long, rep)
    assert [e.target for e in t["casual"]["train"]] == ["Catch ya at noon!"]
    assert [e.target for e in t["professional"]["test"]] == ["The report will be delayed."]
    assert {s["reason"] for s in rep.skipped} == {"unknown tone 'grumpy' (known: professional, casual, witty, paraphrase)",
                                                  "empty professional rewrite"}
    wide = tmp_path / "tones.jsonl"  # llm-toys layout: original + one column per tone
    wide.write_text(json.dumps({"original": "Thanks for waiting.", "casual": "Thx for hanging on!",
                                "professional": "Thank you for your patience.", "witty": "Patience: you have it.",
                                "paraphrase": "I appreciate you waiting."}) + "\n{not json\n")
    rep = Report()
    t = read_tone_table(wide, rep)
    assert sum(len(v) for per in t.values() for v in per.values()) == 4
    assert [s["reason"] for s in rep.skipped] == ["line 2: not JSON"]


def test_build_with_tone_table_needs_no_rewriter_for_single_tone_sets(env, tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("text,tone,rewrite\n" + "".join(f"Line {i}.,witty,Witty line {i}!\n" for i in range(6)))
    m = build(cfg_for(env, tmp_path / "o", tmp_path / "c", sources=("tone",), tone_table=str(table), rewriter="/nonexistent", limit=None))
    assert sum(m["counts"]["single/witty"].values()) == 6 and m["generation"] == {}


def test_cli_errors_are_one_line(env, tmp_path):
    r = CliRunner().invoke(main, ["data", "build", "--out", str(tmp_path / "o"), "--offline",
                                  "--hub-cache", str(tmp_path / "empty"), "--sources", "dialogsum"])
    assert r.exit_code == 1 and "not in the hub cache" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o").exists()
    r = CliRunner().invoke(main, ["data", "build", "--out", str(tmp_path / "o"), "--sources", "imdb"])
    assert r.exit_code == 1 and "unknown source" in r.output
    bad = make_hub_cache(tmp_path)  # a file whose columns are not DialogSum's
    (f,) = bad.glob("datasets--knkarthick--dialogsum/snapshots/*/train.csv")
    f.write_text("id,text\n1,hello\n")
    with pytest.raises(MlxLcError, match="lacks column"):
        build(cfg_for(env, tmp_path / "o", tmp_path / "c", hub_cache=bad, sources=("dialogsum",)))


def test_clean_keeps_only_the_rewrite():
    from mlx_lc.data.rewrite import Rewrite, clean

    src = "Anna and Ben will meet at noon."
    assert clean('Translation: "Anna y Ben se verán a mediodía."', src) == "Anna y Ben se verán a mediodía."
    assert clean("**Spanish:** Anna y Ben se verán.\n\nNote: I kept the names.", src) == "Anna y Ben se verán."
    assert clean("Catch ya at noon!\n\n### END", src) == "Catch ya at noon!"
    assert clean('He said "hi" and left.', src) == 'He said "hi" and left.'
    assert clean("   \n", src) == "" and clean(None, src) == ""
    assert "into German" in Rewrite("de").message(src) and src in Rewrite("witty").message(src)
    assert Rewrite("casual", "llm-toys").message(src).startswith("### Instruction:\nChange the tone")
    with pytest.raises(MlxLcError):
        Rewrite("es", "llm-toys")
