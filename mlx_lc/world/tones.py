"""English tones: professional, casual, witty and paraphrase versions of the summary and the reply,
and the markers the judge uses to recognise them.

Variant k of a tone rewrites variant k of the neutral sentence (en.py), with the same content.
Every template carries at least two markers of its own tone and none of another's, so the judge
can ask for two markers before it calls a tone: one stray "cool" does not make a sentence casual.
"""

from __future__ import annotations

from .en import at, when
from .frames import Ctx

TONES = ("professional", "casual", "witty", "paraphrase")


def summary(c: Ctx, k: int, tone: str) -> str:
    A, B, inf, w, t = c.A.name, c.B.name, c.what.en, at(c.where), when(c.day, c.hour)
    return {
        "professional": (
            f"Please note that {A} and {B} have confirmed an appointment to {inf} {w} on {t}.",
            f"{A} and {B} have formally scheduled a meeting to {inf} {w} on {t}.",
            f"It has been arranged that {A} and {B} will {inf} {w} on {t}, as agreed."),
        "casual": (
            f"So yeah, {A} and {B} are gonna {inf} {w} on {t}. Cool!",
            f"{A} and {B} are totally gonna {inf} {w} on {t}, no big deal.",
            f"Yep, {A} and {B} wanna {inf} {w} on {t}, sounds fun!"),
        "witty": (
            f"Mark your calendars: {A} and {B} will {inf} {w} on {t}, and history will never be the same.",
            f"Against all odds, {A} and {B} have sworn to {inf} {w} on {t}, and nothing can stop them now.",
            f"Breaking news: {A} and {B} plan to {inf} {w} on {t}, and the whole town holds its breath."),
        "paraphrase": (
            f"On {t}, {A} and {B} are meeting {w} to {inf}.",
            f"The plan {A} and {B} settled on is to {inf} {w} on {t}.",
            f"{A} and {B} are going to get together {w} on {t}, where they will {inf}."),
    }[tone][k]


def reply(c: Ctx, k: int, tone: str) -> str:
    O, inf, w, t = c.other.name, c.what.en, at(c.where), when(c.day, c.hour)
    return {
        "professional": (
            f"Thank you, {O}. I can confirm that we will {inf} {w} on {t}.",
            f"Certainly, {O}. I have noted that we will {inf} {w} on {t}, and I look forward to it.",
            f"Dear {O}, I would be pleased to {inf} {w} on {t}. Kind regards."),
        "casual": (
            f"Cool, {O}! Let's {inf} {w} on {t}. See ya!",
            f"Yeah, sounds awesome, {O}! We're gonna {inf} {w} on {t}.",
            f"Sure thing, {O}, I'm down to {inf} {w} on {t}. Catch you later!"),
        "witty": (
            f"{O}, my calendar just did a happy dance: we'll {inf} {w} on {t}!",
            f"Consider it written in the stars, {O}: we {inf} {w} on {t}, and not even rain can stop us.",
            f"Deal, {O}! We'll {inf} {w} on {t}, and I promise to be only slightly late."),
        "paraphrase": (
            f"Alright, {O}, {t} {w} works for me, so we can {inf} then.",
            f"That plan suits me, {O}: we meet {w} on {t} and {inf}.",
            f"I agree, {O}: {t} {w} is a good time and place for us to {inf}."),
    }[tone][k]


# Markers as phrases (normalised by the judge: lower case, punctuation and apostrophes as spaces).
# "^on <day>" is structural: the paraphrase that fronts the time.
MARKERS = {
    "professional": ["please note", "have confirmed", "appointment", "formally", "scheduled", "a meeting",
                     "it has been arranged", "as agreed", "thank you", "i can confirm", "certainly",
                     "i have noted", "look forward", "dear", "would be pleased", "kind regards"],
    "casual": ["so yeah", "gonna", "cool", "totally", "no big deal", "yep", "wanna", "sounds fun",
               "see ya", "yeah sounds", "awesome", "sure thing", "i m down", "catch you later"],
    "witty": ["mark your calendars", "history will never be the same", "against all odds", "sworn",
              "nothing can stop", "breaking news", "holds its breath", "my calendar", "happy dance",
              "written in the stars", "not even rain", "i promise", "only slightly late"],
    "paraphrase": ["^on (?:mon|tues|wednes|thurs|fri|satur|sun)day", "are meeting", "the plan",
                   "settled on", "are going to get together", "where they will", "alright", "works for me", "so we can",
                   "that plan suits me", "we meet", "i agree", "good time and place"],
}
