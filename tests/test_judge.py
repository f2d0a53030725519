"""The LLM judge: verdict parsing on messy answers, rubric prompts, and `mlx-lc judge` with a tiny model."""

import json

import pytest
from click.testing import CliRunner

import mlx_lc  # noqa: F401  (BLAS before mlx)
from mlx_lc import judge, tasks
from mlx_lc.cli import main
from mlx_lc.errors import MlxLcError
from mlx_lc.tiny import TinyConfig, write_tiny_model

PASS, FAIL, NONE = "pass", "fail", None


@pytest.mark.parametrize("text, verdict", [
    ("PASS", PASS), ("FAIL", FAIL), ("pass.", PASS), ("  Fail  ", FAIL),
    ("Yes", PASS), ("no", FAIL), ("YES, the summary is in Spanish and accurate.", PASS),
    ("No. The response is in English, not German.", FAIL),
    ("**Verdict:** yes", PASS), ("**Verdict**: FAIL", FAIL), ("Final answer: PASS", PASS),
    ("Verdict - pass", PASS), ("## Decision\n\nDecision: fail", FAIL),
    ('{"verdict": "PASS"}', PASS), ('{"pass": false, "reason": "wrong language"}', FAIL),
    ('Here is my evaluation: {"result": "fail"}', FAIL), ('```json\n{"answer": true}\n```', PASS),
    ("The summary covers the main point and is in French.\n\nPASS", PASS),
    ("The response is written in English, so it does not pass.", FAIL),
    ("Criterion 1 is met, but there are no ... wait. The reply fails criterion 2.", FAIL),
    ("Reasoning: the summary is accurate.\nVerdict: FAIL because it is not in Spanish.", FAIL),
    ("I'm sorry, but I can't help with evaluating this content.", NONE),
    ("I cannot determine this.", NONE), ("", NONE), (None, NONE), ("   \n ", NONE),
    ("PASS or FAIL? It partly passes and partly fails.", NONE),
    ("The model's response", NONE), ("<|eot_id|>", NONE),
])
def test_parse_verdict_on_messy_output(text, verdict):
    assert judge.parse_verdict(text) == verdict


def test_rubric_prompt_names_the_language_and_tone():
    r = judge.load_rubrics()
    m = judge.judge_message(r, "summarize+de", "#Person1#: Hi.\n#Person2#: Hello.", "Sie grüßen sich.", "Beide grüßen sich.")
    assert "written in German" in m and "Summarize the dialogue in one sentence in German." in m
    assert "Beide grüßen sich." in m and m.rstrip().endswith("PASS or FAIL.")
    m = judge.judge_message(r, "reply+witty", "Lunch?", "Only if the sandwiches are brave.", None)
    assert "clearly witty" in m and "(none given)" in m
    assert set(r["groups"]) == set(tasks.GROUPS)
    with pytest.raises(MlxLcError, match="compositional"):
        judge.judge_message(r, "summarize", "x", "y", None)


def test_read_outputs_accepts_lines_lists_and_examples(tmp_path):
    rows = [{"task": "reply+es", "input": "Hi", "output": "Hola"}, {"task": "reply+es", "input": "Bye", "output": "Adiós"}]
    for name, text in [("a.jsonl", "".join(json.dumps(r) + "\n" for r in rows)), ("b.json", json.dumps(rows)),
                       ("c.json", json.dumps({"examples": rows}))]:
        (tmp_path / name).write_text(text)
        assert judge.read_outputs(tmp_path / name) == rows
    # `mlx-lc eval` writes examples.jsonl with the prompt and no input field
    ev = {"task": "reply+es", "prompt": tasks.prompt_text(tasks.get("reply+es"), "See you at 6?"), "output": "¡Claro!"}
    assert judge.input_from_prompt(ev["task"], ev["prompt"]) == "See you at 6?"
    (tmp_path / "d.jsonl").write_text('{"task": "reply+es"}\nnot json\n')
    with pytest.raises(MlxLcError, match="d.jsonl:2"):
        judge.read_outputs(tmp_path / "d.jsonl")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(write_tiny_model(tmp_path_factory.mktemp("judge") / "tiny",
                                TinyConfig(hidden=32, layers=2, vocab=320, heads=2, kv_heads=1, seed=1)))


def test_judge_cli_with_tiny_model(tiny, tmp_path):
    rows = [{"task": c, "input": "#Person1#: Lunch at noon?\n#Person2#: Sure.", "output": f"output {i}",
             "reference": "They agree to have lunch at noon.", "id": f"ex{i}", "method": "LC"}
            for i, c in enumerate(["summarize+es", "summarize+witty", "reply+fr", "reply+casual", "summarize+es"])]
    data = tmp_path / "outputs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["judge", "--model", tiny, "--data", str(data), "--out", str(tmp_path / "j"), "--cache", str(tmp_path / "c"),
            "--max-tokens", "4"]
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    verdicts = [json.loads(line) for line in (tmp_path / "j" / "verdicts.jsonl").read_text().splitlines()]
    assert [v["id"] for v in verdicts] == [f"ex{i}" for i in range(5)]
    assert all(v["verdict"] == (judge.parse_verdict(v["raw"]) or "unparseable") for v in verdicts)
    s = json.loads((tmp_path / "j" / "judge_summary.json").read_text())
    o = s["overall"]
    assert o["n"] == 5 and o["pass"] + o["fail"] + o["unparseable"] == 5
    assert s["by_group"]["sum+trans"]["n"] == 2 and set(s["by_group"]) == set(tasks.GROUPS)
    assert s["generation"]["generated"] == 5
    # the same outputs again: every verdict comes from the cache
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert json.loads((tmp_path / "j" / "judge_summary.json").read_text())["generation"]["generated"] == 0
    r = CliRunner().invoke(main, ["judge-table", f"LC={tmp_path / 'j'}", "--png", str(tmp_path / "t.png")],
                           catch_exceptions=False)
    assert r.exit_code == 0 and "| LC |" in r.output and "paper: LC++" in r.output
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_judge_cli_bad_input_is_one_line(tiny, tmp_path):
    data = tmp_path / "o.jsonl"
    data.write_text(json.dumps({"input": "Hi", "output": "Hola"}) + "\n")
    r = CliRunner().invoke(main, ["judge", "--model", tiny, "--data", str(data)])
    assert r.exit_code == 1 and "missing task" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["judge", "--model", tiny, "--data", str(tmp_path / "none.jsonl")])
    assert r.exit_code == 1 and "file of outputs not found" in r.output
