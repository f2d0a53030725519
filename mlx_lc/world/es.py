"""Spanish realisation, parallel to en.py (variant k translates variant k).

Grammar handled: article gender (el/la), the contractions a+el = al and de+el = del, adjective
agreement with the speaker, the listener or a place (ocupado/ocupada, lleno/llena, juntos/juntas),
first-person-plural present (tomamos, jugamos), "y" -> "e" before an /i/ sound, and the 12-hour
clock with "la una" and "de la mañana/tarde/noche".
"""

from __future__ import annotations

from .en import cap
from .frames import Ctx
from .lexicon import DAYS, Activity, Place

HOURS = {9: "las nueve de la mañana", 10: "las diez de la mañana", 11: "las once de la mañana",
         13: "la una de la tarde", 15: "las tres de la tarde", 17: "las cinco de la tarde",
         19: "las siete de la tarde", 20: "las ocho de la noche"}


def agree(adj: str, gender: str) -> str:
    """Masculine adjective in -o/-os to the gender given: ocupado -> ocupada, juntos -> juntas."""
    if gender != "f":
        return adj
    if adj.endswith("os"):
        return adj[:-2] + "as"
    return adj[:-1] + "a" if adj.endswith("o") else adj


def lower_first(s: str) -> str:
    for i, ch in enumerate(s):
        if ch.isalpha():
            return s[:i] + ch.lower() + s[i + 1:]
    return s


def y(a: str, b: str) -> str:
    """'a y b', with 'e' before a word that starts with an /i/ sound (Isabel, Hilda)."""
    low = b.lower()
    conj = "e" if (low.startswith("i") or low.startswith("hi")) and not low.startswith(("hie", "ia", "io")) else "y"
    return f"{a} {conj} {b}"


def the(p: Place) -> str:
    noun, g = p.es
    return f"{'la' if g == 'f' else 'el'} {noun}"


def en(p: Place) -> str:
    return f"en {the(p)}"


def to(p: Place) -> str:
    """Motion: al parque, a la biblioteca."""
    noun, g = p.es
    return f"a la {noun}" if g == "f" else f"al {noun}"


def when(d: str, h: int) -> str:
    return f"el {DAYS[d][1]} a {HOURS[h]}"


def inf(a: Activity) -> str:
    return a.es[0]


def we(a: Activity) -> str:
    return a.es[1]


def summary(c: Ctx, k: int) -> str:
    AB, w, t = y(c.A.name, c.B.name), en(c.where), when(c.day, c.hour)
    return (f"{AB} quedaron en {inf(c.what)} {w} {t}.",
            f"{AB} van a {inf(c.what)} {w} {t}.",
            f"{AB} decidieron verse {w} {t} para {inf(c.what)}.")[k]


def reply(c: Ctx, k: int) -> str:
    O, w, t = c.other.name, en(c.where), when(c.day, c.hour)
    return (f"¡Perfecto, {O}! Vamos a {inf(c.what)} {w} {t}.",
            f"Genial, entonces {we(c.what)} {w} {t}. ¡Hasta entonces, {O}!",
            f"Vale, {O}, nos vemos {w} {t} para {inf(c.what)}.")[k]


def open_(c: Ctx, k: int, what: Activity) -> str:
    return (f"¡Hola, {c.other.name}! ¿Quieres {inf(what)} esta semana?",
            f"Oye, {c.other.name}, ¿por qué no {we(what)} {agree('juntos', c.pair_gender)} pronto?")[k]


def reject_what(c: Ctx, k: int, alt: Activity, what: Activity) -> str:
    return (f"Mmm, no tengo muchas ganas de {inf(alt)}. ¿Podríamos {inf(what)} mejor?",
            f"Esta vez prefiero no {inf(alt)}. ¿Y si {we(what)}?")[k]


ACK = {"yes": "¡Me parece bien!", "anyway": "Bueno,"}


def place_(c: Ctx, k: int, where: Place, ack: str) -> str:
    body = (f"¿Vamos {to(where)}?", f"Quedamos {en(where)}.")[k]
    return f"{ACK[ack]} {body if ack == 'yes' else lower_first(body)}"


def reject_place(c: Ctx, k: int, alt: Place, where: Place) -> str:
    full = agree("lleno", alt.es[1])
    return (f"{cap(the(alt))} me queda un poco lejos. ¿Qué tal {en(where)}?",
            f"Prefiero no ir {to(alt)}, siempre está {full} de gente. ¿Quizás {en(where)}?")[k]


def time_(c: Ctx, k: int, where: Place, d: str, h: int) -> str:
    return (f"{cap(the(where))} me va bien. ¿Estás libre {when(d, h)}?",
            f"De acuerdo. ¿Qué tal {when(d, h)}?")[k]


def reject_time(c: Ctx, k: int, alt_d: str, alt_h: int, d: str, h: int) -> str:
    busy = agree("ocupado", c.speaker.gender)
    return (f"Lo siento, {when(alt_d, alt_h)} estoy {busy}. ¿Qué tal {when(d, h)}?",
            f"El {DAYS[alt_d][1]} no me viene bien. ¿Podríamos quedar {when(d, h)}?")[k]


YES = "¡Claro, me encantaría!"


def small_say(c: Ctx, k: int, topic: str) -> str:
    return YES + " " + {"sister": "Por cierto, mi hermana viene de visita el mes que viene.",
            "rain": "Lleva toda la semana lloviendo.",
            "busy": f"Últimamente estoy muy {agree('liado', c.speaker.gender)} en el trabajo.",
            "cat": "Mi gato ha roto un jarrón esta mañana.",
            "bus": "¿Has oído que va a subir el precio del autobús?",
            "parents": "Acabo de volver de visitar a mis padres."}[topic]


def small_react(c: Ctx, k: int, topic: str) -> str:
    return {"sister": f"¡Qué bien! Estarás {agree('contento', c.other.gender)}.",
            "rain": "Ya lo sé, echo mucho de menos el sol.",
            "busy": "Yo también, es un mes de locos.",
            "cat": "¡Oh, no! Los gatos son así.",
            "bus": "Sí, es muy molesto.",
            "parents": "Qué bien, espero que estén bien."}[topic]


ACTS = {"open": open_, "reject_what": reject_what, "place": place_, "reject_place": reject_place,
        "time": time_, "reject_time": reject_time, "small_say": small_say, "small_react": small_react}
