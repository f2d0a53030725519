"""The benchmark world: determinism, exact gold answers, the judge, held-out frames, grammar."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from mlx_lc import tasks
from mlx_lc.errors import MlxLcError
from mlx_lc.world import (Frame, build_benchmark, cut_last_turn, detect_language, detect_tone, dialogue,
                          judge, judge_summary, make_example, make_frame, reply, sentence, summary)
from mlx_lc.world.judge import found
from mlx_lc.world.lexicon import ACTIVITIES, HOURS, LANGS, PLACES
from mlx_lc.world.tones import TONES

ALL_TASKS = list(tasks.SINGLE) + list(tasks.COMPOSITIONS)
FRAMES = [make_frame(s) for s in range(60)]


def frame(**kw) -> Frame:
    base = dict(seed=1, speakers=("Anna", "Tom"), replier=1, what="tennis", where="park", day="fri", hour=10,
                alt_what="coffee", alt_where="bakery", alt_day="mon", alt_hour=15, topic="rain")
    return Frame(**{**base, **kw})


def other(f: Frame, slot: str) -> Frame:
    """`f` with one slot changed to another value of the world."""
    if slot == "who":
        return dataclasses.replace(f, speakers=("Olivia", "Samuel") if "Olivia" not in f.speakers else ("Hugo", "Rosa"))
    if slot == "what":
        return dataclasses.replace(f, what=next(a.id for a in ACTIVITIES if a.id != f.what))
    if slot == "where":
        return dataclasses.replace(f, where=next(p.id for p in PLACES if p.id != f.where))
    return dataclasses.replace(f, day="sun" if f.day != "sun" else "sat", hour=next(h for h in HOURS if h != f.hour))


# --- determinism and frames --------------------------------------------------------------------

def test_frames_and_dialogues_are_deterministic_from_seed():
    assert make_frame(7) == make_frame(7) and make_frame(7) != make_frame(8)
    assert dialogue(make_frame(7), random.Random(3)) == dialogue(make_frame(7), random.Random(3))
    f = make_frame(7)
    assert Frame.from_dict(json.loads(json.dumps(f.to_dict()))) == f
    assert Frame.from_dict({**f.to_dict(), "kind": "summary"}) == f  # dataset rows add the kind
    with pytest.raises(MlxLcError):
        Frame.from_dict({**f.to_dict(), "where": "moon"})
    with pytest.raises(MlxLcError):
        Frame.from_dict({"seed": 1})


def test_dialogue_shape():
    for f in FRAMES:
        lines = dialogue(f, random.Random(f.seed)).split("\n")
        assert 4 <= len(lines) <= 8
        speakers = [line.split(":")[0] for line in lines]
        assert speakers[0] == f.speakers[0] and speakers[-1] == f.speakers[f.replier]
        assert all(a != b for a, b in zip(speakers, speakers[1:]))  # turns alternate
        assert lines[-1] == f"{f.speakers[f.replier]}: {reply(f)}"  # the last turn is the reply
        # at least one rejected alternative, so copying the dialogue never states the plan alone
        text = "\n".join(lines)
        got = found(text, "en")
        assert len(got["what"]) + len(got["where"]) + len(got["day"]) > 3


# --- gold answers pass, perturbations fail -----------------------------------------------------

def test_gold_of_every_task_passes_the_judge():
    for task in ALL_TASKS:
        rng = random.Random(task)
        results = []
        for f in FRAMES:
            row = make_example(task, f, rng, "test")
            results.append(judge(row["frame"], task, row["completion"]))
            assert results[-1]["pass"], (task, row["completion"], results[-1])
        assert judge_summary(results)["pass_rate"] == 1.0


def test_every_template_passes_in_every_language_and_tone():
    for f in FRAMES[:20]:
        for k in range(3):
            for prim, kind in (("summarize", "summary"), ("reply", "reply")):
                for lang in LANGS:
                    task = prim if lang == "en" else f"{prim}+{lang}"
                    assert judge(f, task, sentence(f, kind, lang, variant=k))["pass"]
                for tone in TONES:
                    r = judge(f, f"{prim}+{tone}", sentence(f, kind, tone=tone, variant=k))
                    assert r["pass"] and r["tone"] == tone


@pytest.mark.parametrize("slot", ["who", "what", "where", "when"])
def test_a_wrong_fact_fails_only_that_slot(slot):
    for f in FRAMES[:20]:
        for task, kind, lang, tone in (("summarize+es", "summary", "es", None), ("reply+witty", "reply", "en", "witty"),
                                       ("summarize+de", "summary", "de", None), ("reply+fr", "reply", "fr", None)):
            wrong = sentence(other(f, slot), kind, lang, tone)
            r = judge(f, task, wrong)
            assert not r["pass"] and not r["facts"][slot], (task, wrong, r)
            assert all(ok for s, ok in r["facts"].items() if s != slot)
            assert r["language_ok"] and r["tone_ok"]  # facts are checked independently of tone


def test_wrong_language_tone_other_frame_empty_and_copy_fail():
    for i, f in enumerate(FRAMES[:30]):
        r = judge(f, "summarize+es", summary(f, "fr"))
        assert not r["pass"] and r["language"] == "fr"
        assert not judge(f, "reply+de", reply(f))["pass"]  # English instead of German
        r = judge(f, "reply+witty", reply(f, tone="casual"))
        assert not r["pass"] and r["tone"] == "casual" and all(r["facts"].values())
        r = judge(f, "summarize+paraphrase", summary(f))  # the neutral input is no paraphrase
        assert not r["pass"] and r["tone"] is None
        g = FRAMES[(i + 1) % len(FRAMES)]
        assert not judge(f, "summarize", summary(g))["pass"]  # gold of another frame
        r = judge(f, "summarize", "")
        assert not r["pass"] and r["fact_acc"] == 0 and r["language"] is None
        r = judge(f, "reply+es", summary(f, "es"))  # right facts, but a summary is no reply
        assert not r["pass"] and not r["facts"]["who"] and r["facts"]["where"]
        d = dialogue(f, random.Random(i))
        assert not judge(f, "summarize", d)["pass"]
        assert not judge(f, "reply", cut_last_turn(d))["pass"]


def test_one_marker_word_does_not_make_a_tone():
    for f in FRAMES[:20]:
        neutral = summary(f)
        assert detect_tone(neutral) is None
        assert not judge(f, "summarize+casual", neutral + " Cool!")["pass"]
        assert not judge(f, "reply+witty", "Breaking news: " + reply(f))["pass"]
        assert detect_tone("Mark your calendars: " + summary(f, tone="casual")) == "casual"
        # markers of the right tone on wrong content: tone is right, the facts are not
        r = judge(f, "summarize+witty", summary(other(f, "where"), tone="witty"))
        assert r["tone_ok"] and not r["pass"]


def test_judge_tolerates_case_accents_and_word_order():
    f = frame(where="library", what="presentation", day="wed", hour=13)
    assert judge(f, "summarize+es", "anna y tom van a preparar la presentacion en la biblioteca "
                                    "el miercoles a la una de la tarde")["pass"]
    assert judge(f, "summarize+de", "Am Mittwoch um 13:00 Uhr bereiten Tom und Anna in der Bibliothek "
                                    "die Präsentation vor.")["pass"]
    assert judge(f, "summarize", "On Wednesday at 1 p.m. Tom and Anna will prepare the presentation "
                                 "at the library.")["pass"]
    assert detect_language("Anna und Tom treffen sich am Freitag um 10 Uhr im Park.") == "de"
    assert detect_language("Anna et Tom vont jouer au tennis au parc vendredi.") == "fr"
    assert detect_language("Anna") is None
    with pytest.raises(MlxLcError):
        judge(f, "summarize+klingon", "x")


# --- grammar -----------------------------------------------------------------------------------

def test_spanish_grammar():
    f = frame(speakers=("Anna", "Sara"), replier=0, what="book", where="library", hour=13)
    assert summary(f, "es", variant=1) == \
        "Anna y Sara van a hablar del libro en la biblioteca el viernes a la una de la tarde."
    g = frame(where="park", alt_where="library")
    assert reply(g, "es", variant=1).startswith("Genial, entonces jugamos al tenis en el parque el viernes")
    from mlx_lc.world import es
    from mlx_lc.world.frames import context
    c = context(g, 0)
    assert es.place_(c, 0, c.where, "yes") == "¡Me parece bien! ¿Vamos al parque?"
    assert "Prefiero no ir a la biblioteca, siempre está llena de gente." in \
        es.reject_place(c, 1, c.alt_where, c.where)
    tom, anna = context(g, 1), c  # agreement with the speaker
    assert "estoy ocupado." in es.reject_time(tom, 0, "mon", 15, "fri", 10)
    assert "estoy ocupada." in es.reject_time(anna, 0, "mon", 15, "fri", 10)
    assert "juntos" in es.open_(anna, 1, anna.what)  # agreement with the pair
    two_women = context(frame(speakers=("Anna", "Sara")), 0)
    assert "¿por qué no jugamos al tenis juntas pronto?" in es.open_(two_women, 1, two_women.what)


def test_french_grammar():
    from mlx_lc.world import fr
    from mlx_lc.world.frames import context
    f = frame(what="trip", where="hotel", hour=20)
    assert summary(f, "fr", variant=0) == \
        "Anna et Tom ont convenu d'organiser le voyage à l'hôtel vendredi à 20 heures."
    assert fr.at(context(f).where) == "à l'hôtel"
    assert fr.at(context(frame(where="station")).where) == "à la gare"
    assert fr.at(context(frame(where="park")).where) == "au parc"
    assert "jouons aux échecs" in reply(frame(what="chess"), "fr", variant=1)
    assert "jouer du piano" in reply(frame(what="piano"), "fr", variant=0)
    anna = context(frame(alt_where="station"), 0)  # Anna speaks
    assert fr.reject_time(anna, 0, "mon", 15, "fri", 10).startswith("Désolée, je suis prise lundi à 15 heures.")
    assert "elle est toujours bondée" in fr.reject_place(anna, 1, anna.alt_where, anna.where)


def test_german_grammar():
    from mlx_lc.world import de
    from mlx_lc.world.frames import context
    at = {p: de.at(context(frame(where=p)).where) for p in ("library", "park", "station", "market", "university")}
    assert at == {"library": "in der Bibliothek", "park": "im Park", "station": "am Bahnhof",
                  "market": "auf dem Markt", "university": "an der Universität"}
    to = {p: de.to(context(frame(where=p)).where) for p in ("cinema", "library", "station", "university")}
    assert to == {"cinema": "ins Kino", "library": "in die Bibliothek", "station": "zum Bahnhof",
                  "university": "zur Universität"}
    assert summary(frame(), "de", variant=1) == "Am Freitag um 10 Uhr spielen Anna und Tom im Park Tennis."
    p = frame(what="presentation", where="office")
    assert summary(p, "de", variant=1) == "Am Freitag um 10 Uhr bereiten Anna und Tom im Büro die Präsentation vor."
    assert summary(p, "de", variant=0).endswith("im Büro die Präsentation vorzubereiten.")
    assert reply(frame(what="shopping"), "de", variant=2).endswith("um einzukaufen.")
    c = context(frame(what="coffee"), 0)
    assert de.reject_what(c, 1, c.alt_what, c.what).endswith("wenn wir einen Kaffee trinken?")  # verb-final


# --- the written benchmark ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("w") / "world"
    summary_ = build_benchmark(out, seed=3, n_single=40, n_comp=20, n_valid=12, n_test=15,
                               subtasks=["summarize+es", "reply+witty", "reply+de"], n_corpus=300, progress=False)
    return out, summary_


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_benchmark_layout_and_rows(bench):
    out, s = bench
    assert sorted(s["counts"]["single"]) == sorted(tasks.SINGLE)
    assert sorted(s["counts"]["comp"]) == ["reply+de", "reply+witty", "summarize+es"]
    assert s["counts"]["single"]["es"] == {"train": 40, "valid": 12, "test": 15}
    assert s["counts"]["comp"]["reply+de"] == {"train": 20, "valid": 12, "test": 15}
    assert json.loads((out / "benchmark.json").read_text())["counts"] == s["counts"]
    for task in ["summarize", "reply", "es", "witty", "summarize+es", "reply+witty", "reply+de"]:
        group = "comp" if "+" in task else "single"
        for row in _rows(out / group / task / "train.jsonl"):
            assert set(row) >= {"prompt", "completion", "task", "input", "frame"} and row["task"] == task
            assert row["prompt"] == tasks.prompt_text(tasks.get(task), row["input"])
            f = Frame.from_dict(row["frame"])
            if task.startswith("reply"):  # cut before the replier's turn
                assert row["input"].split("\n")[-1].split(":")[0] != f.speakers[f.replier]
            if "+" in task:  # composition gold = secondary applied to the primary's gold
                prim, sec = task.split("+")
                kind = "summary" if prim == "summarize" else "reply"
                lang, tone = (sec, None) if sec in LANGS else ("en", sec)
                assert row["completion"] in {sentence(f, kind, lang, tone, variant=k) for k in range(3)}
            if task == "es" and row["frame"]["kind"] != "turn":  # translation maps variant k to variant k
                k = next(k for k in range(3) if sentence(f, row["frame"]["kind"], variant=k) == row["input"])
                assert row["completion"] == sentence(f, row["frame"]["kind"], "es", variant=k)


def test_build_is_deterministic(bench, tmp_path):
    out, _ = bench
    again = tmp_path / "again"
    build_benchmark(again, seed=3, n_single=40, n_comp=20, n_valid=12, n_test=15,
                    subtasks=["summarize+es", "reply+witty", "reply+de"], n_corpus=300, progress=False)
    for path in sorted(out.rglob("*")):
        if path.is_file():
            assert path.read_bytes() == (again / path.relative_to(out)).read_bytes(), path


def test_test_frames_are_held_out(bench):
    out, _ = bench
    test_keys, seen = set(), set()
    for path in out.rglob("*.jsonl"):
        keys = {Frame.from_dict(r["frame"]).key for r in _rows(path)}
        (test_keys if path.name == "test.jsonl" else seen).update(keys)
    assert len(test_keys) == 15 and not test_keys & seen
    # the corpus states no test frame: no document names all of one test frame's facts
    test_frames = {Frame.from_dict(r["frame"]) for r in _rows(out / "single" / "summarize" / "test.jsonl")}
    docs = (out / "corpus.txt").read_text().split("\n\n")

    def states(doc: str, f: Frame) -> bool:
        got = found(doc, detect_language(doc) or "en")
        return (set(f.speakers) <= got["who"] and f.what in got["what"] and f.where in got["where"]
                and f.day in got["day"] and f.hour in got["hour"])

    assert not [d for d in docs for f in test_frames if states(d, f)]
    f = next(iter(test_frames))
    assert states(summary(f, "de"), f) and states(dialogue(f, random.Random(0), "fr"), f)  # the check can fail


def test_corpus_is_unlabelled_and_covers_languages_and_tones(bench):
    out, s = bench
    text = (out / "corpus.txt").read_text()
    instructions = {t.instruction for t in tasks.SINGLE.values()} | {c.instruction for c in tasks.COMPOSITIONS.values()}
    assert not [i for i in instructions if i in text]
    assert "### Instruction" not in text and "Summarize" not in text and "Translate" not in text
    docs = text.strip().split("\n\n")
    assert len(docs) == s["corpus"]["documents"] == 300
    assert {detect_language(d) for d in docs} == set(LANGS)
    assert {detect_tone(d) for d in docs} >= set(TONES)
    dialogues = [d.split("\n") for d in docs if len(d.split("\n")) >= 5]
    assert len(dialogues) > 150  # most documents are dialogues (7 in 10)
    for scene, *turns in dialogues:  # a scene line first, then the turns, in one language
        assert ": " not in scene and all(": " in t for t in turns)
        assert detect_language(scene) == detect_language("\n".join(turns))


def test_bad_subtask_is_one_clear_error_and_writes_nothing(tmp_path):
    with pytest.raises(MlxLcError, match="unknown subtask"):
        build_benchmark(tmp_path / "w", subtasks=["summarize+klingon"], progress=False)
    assert not (tmp_path / "w").exists()
    assert list(tmp_path.iterdir()) == []


def test_module_cli(tmp_path):
    from click.testing import CliRunner

    from mlx_lc.world.__main__ import main
    res = CliRunner().invoke(main, [str(tmp_path / "w"), "--seed", "1", "--n-single", "3", "--n-comp", "2",
                                    "--n-valid", "2", "--n-test", "2", "--n-corpus", "5", "--subtask", "reply+es"],
                             catch_exceptions=False)
    assert res.exit_code == 0 and '"reply+es"' in res.output
    assert (tmp_path / "w" / "comp" / "reply+es" / "test.jsonl").exists()
    res = CliRunner().invoke(main, [str(tmp_path / "x"), "--subtask", "nope"])
    assert res.exit_code == 1 and "unknown subtask" in res.output and "Traceback" not in res.output
