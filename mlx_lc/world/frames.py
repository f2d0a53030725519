"""The hidden frame behind every example: who meets, what they do, where and when, plus the
distractors a dialogue mentions and rejects. Deterministic from a seed."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields

from ..errors import MlxLcError
from .lexicon import (ACTIVITIES, ACTIVITY, DAYS, HOURS, HOURS_FOR, PEOPLE, PERSON, PLACE, PLACES, TOPICS, Activity,
                      Person, Place)

KINDS = ("summary", "reply")  # sentence kinds with a realisation in every language and tone
N_VARIANTS = 3  # surface templates per kind; variant k is parallel across languages and tones


@dataclass(frozen=True)
class Frame:
    seed: int
    speakers: tuple[str, str]  # the first one opens the dialogue
    replier: int  # index into speakers of who gives the last turn (the reply)
    what: str  # activity id
    where: str  # place id
    day: str  # "mon" .. "sun"
    hour: int  # 24-hour clock
    # distractors: an activity, place and time proposed and rejected, and a small-talk topic
    alt_what: str
    alt_where: str
    alt_day: str
    alt_hour: int
    topic: str

    @property
    def addressee(self) -> str:
        """Who the reply is addressed to: the other speaker."""
        return self.speakers[1 - self.replier]

    @property
    def key(self) -> tuple:
        """The who/what/where/when combination, used to hold test frames out of training."""
        return (tuple(sorted(self.speakers)), self.what, self.where, self.day, self.hour)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["speakers"] = list(self.speakers)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Frame":
        """Build a frame from `to_dict` output; extra keys (e.g. a dataset row's "kind") are ignored."""
        if isinstance(d, Frame):
            return d
        names = {f.name for f in fields(cls)}
        missing = names - set(d)
        if missing:
            raise MlxLcError(f"frame is missing {', '.join(sorted(missing))}")
        kw = {k: d[k] for k in names}
        kw["speakers"] = tuple(kw["speakers"])
        frame = cls(**kw)
        frame.validate()
        return frame

    def validate(self) -> None:
        bad = [n for n in self.speakers if n not in PERSON]
        if len(self.speakers) != 2 or bad or self.speakers[0] == self.speakers[1]:
            raise MlxLcError(f"frame speakers must be two different known names, got {list(self.speakers)}")
        for slot, value, table in (("what", self.what, ACTIVITY), ("alt_what", self.alt_what, ACTIVITY),
                                   ("where", self.where, PLACE), ("alt_where", self.alt_where, PLACE),
                                   ("day", self.day, DAYS), ("alt_day", self.alt_day, DAYS)):
            if value not in table:
                raise MlxLcError(f"frame {slot} {value!r} is not in the world")
        if self.hour not in HOURS or self.alt_hour not in HOURS or self.replier not in (0, 1):
            raise MlxLcError(f"frame hour/replier out of range: {self.hour}, {self.alt_hour}, {self.replier}")


@dataclass(frozen=True)
class Ctx:
    """A frame resolved to lexicon entries, as seen by the speaker of one turn."""
    A: Person  # first speaker
    B: Person
    speaker: Person  # who says the current sentence (the replier for a reply)
    other: Person  # whom it is addressed to
    what: Activity
    where: Place
    day: str
    hour: int
    alt_what: Activity
    alt_where: Place
    alt_day: str
    alt_hour: int
    topic: str

    @property
    def pair_gender(self) -> str:
        """Gender of the pair for plural agreement: feminine only when both are women."""
        return "f" if self.A.gender == self.B.gender == "f" else "m"


def context(frame: Frame, speaker: int | None = None) -> Ctx:
    """Resolve `frame`; `speaker` (index into frame.speakers) defaults to the replier."""
    speaker = frame.replier if speaker is None else speaker
    a, b = (PERSON[n] for n in frame.speakers)
    me, you = (a, b) if speaker == 0 else (b, a)
    return Ctx(a, b, me, you, ACTIVITY[frame.what], PLACE[frame.where], frame.day, frame.hour,
               ACTIVITY[frame.alt_what], PLACE[frame.alt_where], frame.alt_day, frame.alt_hour, frame.topic)


def make_frame(seed: int) -> Frame:
    """The frame for `seed`: slots drawn independently and uniformly (meals at meal times), each
    rejected alternative different from the agreed value."""
    rng = random.Random(seed)
    a, b = rng.sample(PEOPLE, 2)
    what, alt_what = rng.sample(ACTIVITIES, 2)
    where, alt_where = rng.sample(PLACES, 2)
    day, alt_day = rng.sample(list(DAYS), 2)
    hour = rng.choice(HOURS_FOR.get(what.id, HOURS))
    alt_hour = rng.choice([h for h in HOURS if h != hour])
    return Frame(seed=seed, speakers=(a.name, b.name), replier=rng.randrange(2), what=what.id,
                 where=where.id, day=day, hour=hour, alt_what=alt_what.id, alt_where=alt_where.id,
                 alt_day=alt_day, alt_hour=alt_hour, topic=rng.choice(TOPICS))


def sample_frame(rng: random.Random, exclude: set | frozenset = frozenset()) -> Frame:
    """A fresh frame whose key is not in `exclude` (held-out frames)."""
    for _ in range(10_000):
        frame = make_frame(rng.getrandbits(48))
        if frame.key not in exclude:
            return frame
    raise MlxLcError("could not draw a frame outside the excluded set; the world is too small")


def default_variant(frame: Frame, kind: str) -> int:
    """The template used when the caller gives no variant: fixed per frame and kind, shared by all
    languages and tones, so `summary(f, "es")` is the translation of `summary(f)`."""
    return random.Random(f"{frame.seed}:{kind}").randrange(N_VARIANTS)
