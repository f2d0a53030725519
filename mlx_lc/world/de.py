"""German realisation, parallel to en.py (variant k translates variant k).

Grammar handled: der/die/das in nominative, accusative and dative; locative prepositions by place
(in der Bibliothek, am Bahnhof, auf dem Markt) with contractions (im, am, ins, zum, zur); motion
with the accusative or zu; verb-second main clauses with inversion (Am Freitag spielen Anna und
Tom Tennis), verb-final subordinate and infinitive clauses (wenn wir ... spielen; um ... zu
spielen), separable verbs (bereiten ... vor, vorzubereiten, einzukaufen) and er/sie/es for places.
"""

from __future__ import annotations

from .en import cap
from .es import lower_first
from .frames import Ctx
from .lexicon import DAYS, Activity, Place

ART = {"m": ("der", "den", "dem"), "f": ("die", "die", "der"), "n": ("das", "das", "dem")}  # nom, acc, dat
CONTRACT = {("in", "dem"): "im", ("an", "dem"): "am", ("in", "das"): "ins", ("auf", "das"): "aufs",
            ("zu", "dem"): "zum", ("zu", "der"): "zur"}


def _pp(prep: str, article: str, noun: str) -> str:
    short = CONTRACT.get((prep, article))
    return f"{short} {noun}" if short else f"{prep} {article} {noun}"


def the(p: Place) -> str:
    noun, g, _ = p.de
    return f"{ART[g][0]} {noun}"


def at(p: Place) -> str:
    """Location (dative): im Park, am Bahnhof, in der Bibliothek, auf dem Markt."""
    noun, g, prep = p.de
    return _pp(prep, ART[g][2], noun)


def to(p: Place) -> str:
    """Motion: in + accusative (ins Kino, in die Bibliothek), zu + dative for an-places (zum Bahnhof)."""
    noun, g, prep = p.de
    if prep == "an":
        return _pp("zu", ART[g][2], noun)
    return _pp(prep, ART[g][1], noun)


def with_(p: Place) -> str:
    noun, g, _ = p.de
    return f"mit {ART[g][2]} {noun}"


def pronoun(p: Place) -> str:
    return {"m": "er", "f": "sie", "n": "es"}[p.de[1]]


def when(d: str, h: int) -> str:
    return f"am {DAYS[d][3]} um {h} Uhr"


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def inf(a: Activity) -> str:
    obj, verb, part = a.de
    return _join(obj, part + verb)


def zu_inf(a: Activity) -> str:
    """Infinitive with zu; a separable particle takes zu inside: vorzubereiten."""
    obj, verb, part = a.de
    return _join(obj, f"{part}zu{verb}" if part else f"zu {verb}")


def finite(a: Activity) -> tuple[str, str]:
    """(finite verb, clause-final rest) for a verb-second clause with a plural subject: every verb
    of this world has its plural present equal to the infinitive; the particle goes last."""
    obj, verb, part = a.de
    return verb, _join(obj, part)


def summary(c: Ctx, k: int) -> str:
    A, B, w, t = c.A.name, c.B.name, at(c.where), when(c.day, c.hour)
    verb, rest = finite(c.what)
    return (f"{A} und {B} haben vereinbart, {t} {w} {zu_inf(c.what)}.",
            f"{cap(t)} {verb} {A} und {B} {_join(w, rest)}.",
            f"{A} und {B} haben beschlossen, sich {t} {w} zu treffen, um {zu_inf(c.what)}.")[k]


def reply(c: Ctx, k: int) -> str:
    O, w, t = c.other.name, at(c.where), when(c.day, c.hour)
    verb, rest = finite(c.what)
    return (f"Perfekt, {O}! Lass uns {t} {w} {inf(c.what)}.",
            f"Super, dann {verb} wir {t} {_join(w, rest)}. Bis dann, {O}!",
            f"Okay, {O}, wir sehen uns {t} {w}, um {zu_inf(c.what)}.")[k]


def open_(c: Ctx, k: int, what: Activity) -> str:
    return (f"Hallo {c.other.name}! Hast du Lust, diese Woche {zu_inf(what)}?",
            f"Hey {c.other.name}, wollen wir bald zusammen {inf(what)}?")[k]


def reject_what(c: Ctx, k: int, alt: Activity, what: Activity) -> str:
    return (f"Hmm, ich habe nicht so große Lust, {zu_inf(alt)}. Könnten wir stattdessen {inf(what)}?",
            f"Diesmal möchte ich lieber etwas anderes machen als {inf(alt)}. Wie wäre es, wenn wir {inf(what)}?")[k]


ACK = {"yes": "Klingt gut!", "anyway": "Na gut,"}


def place_(c: Ctx, k: int, where: Place, ack: str) -> str:
    body = (f"Gehen wir {to(where)}?", f"Treffen wir uns {at(where)}.")[k]
    return f"{ACK[ack]} {body if ack == 'yes' else lower_first(body)}"


def reject_place(c: Ctx, k: int, alt: Place, where: Place) -> str:
    return (f"{cap(the(alt))} ist mir ein bisschen zu weit. Wie wäre es {with_(where)}?",
            f"Ich möchte lieber nicht {to(alt)} gehen, {pronoun(alt)} ist immer so voll. Vielleicht {at(where)}?")[k]


def time_(c: Ctx, k: int, where: Place, d: str, h: int) -> str:
    return (f"{cap(the(where))} passt mir. Hast du {when(d, h)} Zeit?",
            f"Einverstanden. Wie wäre es {when(d, h)}?")[k]


def reject_time(c: Ctx, k: int, alt_d: str, alt_h: int, d: str, h: int) -> str:
    return (f"Tut mir leid, {when(alt_d, alt_h)} habe ich keine Zeit. Wie wäre es {when(d, h)}?",
            f"Am {DAYS[alt_d][3]} passt es mir nicht. Können wir uns {when(d, h)} treffen?")[k]


YES = "Gerne!"


def small_say(c: Ctx, k: int, topic: str) -> str:
    return YES + " " + {"sister": "Übrigens, meine Schwester kommt nächsten Monat zu Besuch.",
            "rain": "Es regnet schon die ganze Woche.",
            "busy": "Ich hatte in letzter Zeit so viel Arbeit.",
            "cat": "Meine Katze hat heute Morgen eine Vase kaputt gemacht.",
            "bus": "Hast du gehört, dass die Busfahrkarten teurer werden?",
            "parents": "Ich bin gerade von meinen Eltern zurückgekommen."}[topic]


def small_react(c: Ctx, k: int, topic: str) -> str:
    return {"sister": "Oh, wie schön! Du freust dich bestimmt.",
            "rain": "Ich weiß, ich vermisse die Sonne wirklich.",
            "busy": "Ich auch, es ist ein verrückter Monat.",
            "cat": "Oh nein! So sind Katzen eben.",
            "bus": "Ja, das ist wirklich ärgerlich.",
            "parents": "Schön, ich hoffe, es geht ihnen gut."}[topic]


ACTS = {"open": open_, "reject_what": reject_what, "place": place_, "reject_place": reject_place,
        "time": time_, "reject_time": reject_time, "small_say": small_say, "small_react": small_react}
