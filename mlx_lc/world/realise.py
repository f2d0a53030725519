"""Realising a frame: the summary and the reply in any language or English tone, and the dialogue.

A dialogue is first planned (which distractors it uses, who says what, which template), language
free, then rendered; rendering one plan in two languages gives parallel turns for translation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..errors import MlxLcError
from . import de, en, es, fr, tones
from .frames import KINDS, N_VARIANTS, Frame, context, default_variant
from .lexicon import ACTIVITY, LANGS, PLACE

MODULES = {"en": en, "es": es, "fr": fr, "de": de}
N_ACT_VARIANTS = 2


def as_frame(frame: Frame | dict) -> Frame:
    return frame if isinstance(frame, Frame) else Frame.from_dict(frame)


def _check(lang: str, tone: str | None) -> None:
    if lang not in LANGS:
        raise MlxLcError(f"unknown language {lang!r}; the world speaks {', '.join(LANGS)}")
    if tone is not None and tone not in tones.TONES:
        raise MlxLcError(f"unknown tone {tone!r}; tones: {', '.join(tones.TONES)}")
    if tone is not None and lang != "en":
        raise MlxLcError("tones exist in English only")


def sentence(frame: Frame | dict, kind: str, lang: str = "en", tone: str | None = None,
             rng: random.Random | None = None, variant: int | None = None) -> str:
    """The `kind` ("summary" or "reply") sentence of `frame`. The template is `variant` if given,
    else drawn from `rng`, else the frame's default (the same k for every language and tone)."""
    frame = as_frame(frame)
    _check(lang, tone)
    if kind not in KINDS:
        raise MlxLcError(f"unknown sentence kind {kind!r}; kinds: {', '.join(KINDS)}")
    if variant is None:
        variant = rng.randrange(N_VARIANTS) if rng is not None else default_variant(frame, kind)
    if not 0 <= variant < N_VARIANTS:
        raise MlxLcError(f"variant must be in 0..{N_VARIANTS - 1}, got {variant}")
    c = context(frame)
    if tone is not None:
        return getattr(tones, kind)(c, variant, tone)
    return getattr(MODULES[lang], kind)(c, variant)


def summary(frame: Frame | dict, lang: str = "en", tone: str | None = None,
            rng: random.Random | None = None, variant: int | None = None) -> str:
    """One sentence of what the two agreed (DialogSum-like)."""
    return sentence(frame, "summary", lang, tone, rng, variant)


def reply(frame: Frame | dict, lang: str = "en", tone: str | None = None,
          rng: random.Random | None = None, variant: int | None = None) -> str:
    """The replier's next turn after the cut dialogue: it confirms the plan to the other speaker."""
    return sentence(frame, "reply", lang, tone, rng, variant)


@dataclass(frozen=True)
class Turn:
    speaker: int  # index into frame.speakers
    act: str  # a key of en.ACTS, or "reply" for the last turn
    variant: int
    args: dict = field(default_factory=dict)  # slot ids: what, where, d, h, alt, ...


def plan_dialogue(frame: Frame, rng: random.Random, reply_variant: int | None = None) -> list[Turn]:
    """Which distractors the dialogue uses and who says what. 4 to 8 turns, alternating from the
    first speaker, at least one rejected alternative (activity, place or time), optional small talk,
    and the last turn spoken by the frame's replier."""
    shapes = [(aw, st, ap, at) for aw in (0, 1) for st in (0, 1) for ap in (0, 1) for at in (0, 1)
              if aw + ap + at >= 1 and 4 + aw + 2 * st + ap + at <= 8
              and (3 + aw + 2 * st + ap + at) % 2 == frame.replier]
    alt_what, small, alt_place, alt_time = rng.choice(shapes)
    turns: list[Turn] = []

    def add(act: str, **args) -> None:
        turns.append(Turn(len(turns) % 2, act, rng.randrange(N_ACT_VARIANTS), args))

    add("open", what=frame.alt_what if alt_what else frame.what)
    if alt_what:
        add("reject_what", alt=frame.alt_what, what=frame.what)
    if small:
        add("small_say", topic=frame.topic)
        add("small_react", topic=frame.topic)
    ack = "anyway" if small else "yes"
    if alt_place:
        add("place", where=frame.alt_where, ack=ack)
        add("reject_place", alt=frame.alt_where, where=frame.where)
    else:
        add("place", where=frame.where, ack=ack)
    if alt_time:
        add("time", where=frame.where, d=frame.alt_day, h=frame.alt_hour)
        add("reject_time", alt_d=frame.alt_day, alt_h=frame.alt_hour, d=frame.day, h=frame.hour)
    else:
        add("time", where=frame.where, d=frame.day, h=frame.hour)
    k = default_variant(frame, "reply") if reply_variant is None else reply_variant
    turns.append(Turn(len(turns) % 2, "reply", k))
    assert turns[-1].speaker == frame.replier and 4 <= len(turns) <= 8
    return turns


def _resolve(act: str, args: dict) -> dict:
    """Slot ids -> lexicon entries; "alt" is an activity when rejecting one, else a place."""
    out = dict(args)
    if "what" in out:
        out["what"] = ACTIVITY[out["what"]]
    if "where" in out:
        out["where"] = PLACE[out["where"]]
    if "alt" in out:
        out["alt"] = (ACTIVITY if act == "reject_what" else PLACE)[out["alt"]]
    return out


def render_turn(frame: Frame, turn: Turn, lang: str = "en") -> str:
    """The text of one planned turn in `lang` (without the speaker's name)."""
    _check(lang, None)
    if turn.act == "reply":
        return reply(frame, lang, variant=turn.variant)
    c = context(frame, turn.speaker)
    return MODULES[lang].ACTS[turn.act](c, turn.variant, **_resolve(turn.act, turn.args))


def render(frame: Frame, turns: list[Turn], lang: str = "en") -> str:
    return "\n".join(f"{frame.speakers[t.speaker]}: {render_turn(frame, t, lang)}" for t in turns)


def dialogue(frame: Frame | dict, rng: random.Random | None = None, lang: str = "en",
             reply_variant: int | None = None) -> str:
    """An everyday two-person dialogue that negotiates the frame's plan, one "Name: text" line per
    turn. Its last turn is `reply(frame, lang, variant=reply_variant)`; cut it for the reply task."""
    frame = as_frame(frame)
    rng = rng if rng is not None else random.Random(f"{frame.seed}:dialogue")
    return render(frame, plan_dialogue(frame, rng, reply_variant), lang)


def cut_last_turn(dialogue_text: str) -> str:
    """The dialogue without its last turn: the reply task's input."""
    lines = dialogue_text.strip().split("\n")
    return "\n".join(lines[:-1])
