"""English realisation: slot phrases, the neutral summary and reply, and the dialogue acts.

Variant k of every sentence kind is parallel across languages (es.py, fr.py, de.py translate
variant k of en.py) and tones (tones.py rewrites variant k), so a composition's gold answer is
exactly the secondary task applied to the primary task's gold answer.
"""

from __future__ import annotations

from .frames import Ctx
from .lexicon import DAYS, EN_IN, Activity, Place


def cap(s: str) -> str:
    """Upper-case the first letter, skipping leading punctuation (¿, ¡)."""
    for i, ch in enumerate(s):
        if ch.isalpha():
            return s[:i] + ch.upper() + s[i + 1:]
    return s


def place(p: Place) -> str:
    return f"the {p.en}"


def at(p: Place) -> str:
    """Location: at the bakery, in the park."""
    return f"{'in' if p.id in EN_IN else 'at'} the {p.en}"


def day(d: str) -> str:
    return DAYS[d][0]


def time(h: int) -> str:
    return f"{h - 12} pm" if h > 12 else f"{h} am"


def when(d: str, h: int) -> str:
    return f"{day(d)} at {time(h)}"


def inf(a: Activity) -> str:
    return a.en


def summary(c: Ctx, k: int) -> str:
    A, B, w, t = c.A.name, c.B.name, at(c.where), when(c.day, c.hour)
    return (f"{A} and {B} agreed to {inf(c.what)} {w} on {t}.",
            f"{A} and {B} will {inf(c.what)} {w} on {t}.",
            f"{A} and {B} decided to meet {w} on {t} to {inf(c.what)}.")[k]


def reply(c: Ctx, k: int) -> str:
    O, w, t = c.other.name, at(c.where), when(c.day, c.hour)
    return (f"Perfect, {O}! Let's {inf(c.what)} {w} on {t}.",
            f"Great, so we'll {inf(c.what)} {w} on {t}. See you then, {O}!",
            f"Okay, {O}, I'll see you {w} on {t} to {inf(c.what)}.")[k]


# Dialogue acts. Each takes the context (speaker/other = who says it and to whom), a variant
# index (0 or 1) and the slot values the plan gives it.

def open_(c: Ctx, k: int, what: Activity) -> str:
    return (f"Hi {c.other.name}! Do you want to {inf(what)} this week?",
            f"Hey {c.other.name}, shall we {inf(what)} together soon?")[k]


def reject_what(c: Ctx, k: int, alt: Activity, what: Activity) -> str:
    return (f"Hmm, I'm not really in the mood to {inf(alt)}. Could we {inf(what)} instead?",
            f"I'd rather not {inf(alt)} this time. How about we {inf(what)}?")[k]


ACK = {"yes": "Sounds good!", "anyway": "Anyway,"}


def place_(c: Ctx, k: int, where: Place, ack: str) -> str:
    body = (f"Shall we go to {place(where)}?", f"Let's meet {at(where)}.")[k]
    return f"{ACK[ack]} {body if ack == 'yes' else body[0].lower() + body[1:]}"


def reject_place(c: Ctx, k: int, alt: Place, where: Place) -> str:
    return (f"{cap(place(alt))} is a bit far for me. What about {place(where)}?",
            f"I'd prefer not to go to {place(alt)}, it's always so crowded. Maybe {place(where)}?")[k]


def time_(c: Ctx, k: int, where: Place, d: str, h: int) -> str:
    return (f"{cap(place(where))} works for me. Are you free on {when(d, h)}?",
            f"Sure. How about {when(d, h)}?")[k]


def reject_time(c: Ctx, k: int, alt_d: str, alt_h: int, d: str, h: int) -> str:
    return (f"Sorry, I'm busy on {when(alt_d, alt_h)}. What about {when(d, h)}?",
            f"{day(alt_d)} doesn't work for me. Could we do {when(d, h)} instead?")[k]


SMALL_TALK = {
    "sister": ("By the way, my sister is visiting next month.", "Oh, that's lovely! You must be happy."),
    "rain": ("It has been raining all week.", "I know, I really miss the sun."),
    "busy": ("I have been so busy at work lately.", "Me too, it is a crazy month."),
    "cat": ("My cat broke a vase this morning.", "Oh no! Cats are like that."),
    "bus": ("Did you hear that the bus fares are going up?", "Yes, it is really annoying."),
    "parents": ("I just got back from visiting my parents.", "Nice, I hope they are doing well."),
}


YES = "Sure, I'd love to!"  # accepts the activity before changing the subject


def small_say(c: Ctx, k: int, topic: str) -> str:
    return f"{YES} {SMALL_TALK[topic][0]}"


def small_react(c: Ctx, k: int, topic: str) -> str:
    return SMALL_TALK[topic][1]


ACTS = {"open": open_, "reject_what": reject_what, "place": place_, "reject_place": reject_place,
        "time": time_, "reject_time": reject_time, "small_say": small_say, "small_react": small_react}
