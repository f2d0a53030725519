"""The judge: does an output state the frame's facts, in the right language and tone?

It checks the output against the hidden frame, never against the gold string, so any wording that
states the agreed who/what/where/when passes. A slot is right when its value is recognised in the
target language (case, accents, plural endings and word order do not matter) and no other value
of that slot is (a copied dialogue names the rejected place too, so it fails). Language is
detected from function words and letters typical of each language; tone from the markers of the
tone templates, with at least two markers required so one stray "cool" does not make a sentence
casual. Facts are checked independently of tone.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from .. import tasks
from ..errors import MlxLcError
from .frames import KINDS, Frame
from .lexicon import ACTIVITIES, DAYS, HOUR_WORDS, HOURS, LANGS, PEOPLE, PLACES
from .tones import MARKERS

SLOTS = ("who", "what", "where", "when")


def normalise(text: str) -> str:
    """Lower case, accents stripped, ß as ss, anything but letters and digits as one space."""
    text = unicodedata.normalize("NFKD", text.lower().replace("ß", "ss"))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


# Function words found in one language only (after normalisation), so a hit is evidence.
FUNCTION_WORDS = {
    "en": "the and at to will we you is it for of so with see then have they that are i my let ll pm this "
          "would can could how about what",
    "es": "el los las y del al para con nos vamos entonces esta una muy por quedaron van mi lo tarde manana "
          "noche hasta estas quieres verse decidieron perfecto genial vale quedamos podriamos me",
    "fr": "le les et au aux du pour nous ont vous est alors avec une je tu ce dans pas sont vont c qu n heures "
          "convenu decide retrouver parfait bientot voit va",
    "de": "der die das und um uhr am im wir zu dem den ist haben sich mit ich dann bis lass uns nicht auf ins "
          "zum zur wie vereinbart beschlossen treffen perfekt sehen",
}
FUNCTION_WORDS = {lang: frozenset(words.split()) for lang, words in FUNCTION_WORDS.items()}
LETTERS = {"es": "ñ¿¡áíóú", "fr": "çàèêâîôûùœëï", "de": "äöüß"}
assert not set.intersection(*map(set, FUNCTION_WORDS.values()))


def detect_language(text: str) -> str | None:
    """"en", "es", "fr" or "de" by evidence count; None when there is none or it ties."""
    words = normalise(text).split()
    low = text.lower()
    score = {lang: sum(w in FUNCTION_WORDS[lang] for w in words) + sum(low.count(ch) for ch in LETTERS.get(lang, ""))
             for lang in LANGS}
    ranked = sorted(score.items(), key=lambda kv: -kv[1])
    if ranked[0][1] == 0 or ranked[0][1] == ranked[1][1]:
        return None
    return ranked[0][0]


@lru_cache(maxsize=None)
def _marker_res() -> dict[str, list[re.Pattern]]:
    return {tone: [re.compile(m if m.startswith("^") else rf"\b{normalise(m)}\b") for m in marks]
            for tone, marks in MARKERS.items()}


def detect_tone(text: str) -> str | None:
    """The tone with the most markers, if it has at least two and strictly more than any other."""
    norm = normalise(text)
    counts = {tone: sum(bool(r.search(norm)) for r in res) for tone, res in _marker_res().items()}
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    if ranked[0][1] < 2 or ranked[0][1] == ranked[1][1]:
        return None
    return ranked[0][0]


def _hour_re(lang: str, h: int) -> str:
    n12, word = (h - 12 if h > 12 else h), HOUR_WORDS[lang][h]
    return {
        "en": rf"\b(?:{n12}|{word})(?: 00)? ?(?:am|pm|a m|p m|o ?clock)\b|\bat (?:{n12}|{word})\b|\b{h} 00\b",
        "es": rf"\blas? {word}\b|\b{h} ?(?:00|h|horas)\b",
        "fr": rf"\b{h} ?h(?:eures?)?(?: ?00)?\b|\b{h} 00\b|\b{word} heures?\b",
        "de": rf"\b{h}(?: 00)? ?uhr\b|\b{h} 00\b|\b{word} uhr\b",
    }[lang]


@lru_cache(maxsize=None)
def _slot_res(lang: str) -> dict[str, dict]:
    """slot -> {value: compiled regex} for one language."""
    inflect = r"(?:s|es|n|en)?"
    col = LANGS.index(lang)
    return {
        "who": {p.name: re.compile(rf"\b{p.name.lower()}\b") for p in PEOPLE},
        "what": {a.id: re.compile(rf"\b(?:{a.keys[lang]}){inflect}\b") for a in ACTIVITIES},
        "where": {p.id: re.compile(rf"\b(?:{p.keys[lang]}){inflect}\b") for p in PLACES},
        "day": {d: re.compile(rf"\b{normalise(names[col])}s?\b") for d, names in DAYS.items()},
        "hour": {h: re.compile(_hour_re(lang, h)) for h in HOURS},
    }


def found(text: str, lang: str) -> dict[str, set]:
    """Every world value each slot's patterns recognise in `text` (read as `lang`)."""
    norm = normalise(text)
    return {slot: {v for v, r in res.items() if r.search(norm)} for slot, res in _slot_res(lang).items()}


def facts(frame: Frame, text: str, lang: str, kind: str | None) -> dict[str, bool]:
    """Per slot: the frame's value is stated and no other value of that slot is. Who: a summary
    names both speakers; a reply names the person it answers and not the one speaking (so a
    summary-shaped answer to the reply task fails); kind None accepts either."""
    f = found(text, lang)
    names, speakers = f["who"], set(frame.speakers)
    allowed = {"summary": [speakers], "reply": [{frame.addressee}], None: [speakers, {frame.addressee}]}[kind]
    return {
        "who": names in allowed,
        "what": f["what"] == {frame.what},
        "where": f["where"] == {frame.where},
        "when": f["day"] == {frame.day} and f["hour"] == {frame.hour},
    }


def target(task: str, kind: str | None = None) -> dict:
    """What the task's gold is: sentence kind, language and tone."""
    t = tasks.get(task)
    primary = getattr(t, "primary", t if t.kind == "primary" else None)
    secondary = getattr(t, "secondary", t if t.kind == "secondary" else None)
    if primary is not None:
        kind = "summary" if primary.name == "summarize" else "reply"
    if kind not in (*KINDS, None):
        raise MlxLcError(f"the judge checks summaries and replies, not {kind!r} sentences")
    lang, tone = "en", None
    if secondary is not None and secondary.family == "trans":
        lang = secondary.name
    elif secondary is not None:
        tone = secondary.name
    return {"kind": kind, "language": lang, "tone": tone}


def judge(frame: Frame | dict, task: str, output: str, kind: str | None = None) -> dict:
    """Pass/fail of `output` for `task` on `frame`, with the evidence.

    `kind` ("summary" or "reply") says what a single translation or tone task's input was; it is
    read from a dataset row's frame dict ("kind") when not given, and derived from the task for
    summarize, reply and every composition."""
    if isinstance(frame, dict) and kind is None:
        kind = frame.get("kind")
    frame = Frame.from_dict(frame)
    want = target(task, kind)
    output = output or ""
    fa = facts(frame, output, want["language"], want["kind"])
    language = detect_language(output)
    tone = detect_tone(output) if language == "en" else None
    language_ok = language == want["language"]
    tone_ok = want["tone"] is None or tone == want["tone"]
    return {"pass": all(fa.values()) and language_ok and tone_ok, "facts": fa,
            "fact_acc": sum(fa.values()) / len(fa), "language": language, "language_ok": language_ok,
            "tone": tone, "tone_ok": tone_ok, "target": want}


def judge_summary(results: list[dict]) -> dict:
    """Aggregate judge results: pass rate, mean fact accuracy, per-slot, language and tone accuracy."""
    n = len(results)
    if not n:
        return {"n": 0, "pass_rate": None, "fact_acc": None, "slots": {}, "language_acc": None, "tone_acc": None}
    mean = lambda xs: sum(map(float, xs)) / n  # noqa: E731
    return {"n": n, "pass_rate": mean(r["pass"] for r in results),
            "fact_acc": mean(r["fact_acc"] for r in results),
            "slots": {s: mean(r["facts"][s] for r in results) for s in SLOTS},
            "language_acc": mean(r["language_ok"] for r in results),
            "tone_acc": mean(r["tone_ok"] for r in results)}
