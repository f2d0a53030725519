"""French realisation, parallel to en.py (variant k translates variant k).

Grammar handled: le/la and elision (l'hôtel, d'organiser), the contractions à+le = au (au parc,
à la gare, à l'hôtel), du/aux inside activities (jouer du piano, jouer aux échecs), agreement of
adjectives and participles with the speaker, listener or place (désolée, prise, bondée), il/elle
for places, "nous" present with spelling changes (rédigeons), and the 24-hour clock.
"""

from __future__ import annotations

from .en import cap
from .es import lower_first
from .frames import Ctx
from .lexicon import DAYS, Activity, Place

VOWELS = "aeiouyàâäéèêëîïôöûùüh"  # h: every h-word of this world is mute (hôtel)


def elides(word: str) -> bool:
    return word[:1].lower() in VOWELS


def de(phrase: str) -> str:
    """'de' + phrase, elided before a vowel: de prendre, d'organiser."""
    return f"d'{phrase}" if elides(phrase) else f"de {phrase}"


def agree(adj: str, gender: str) -> str:
    return adj + "e" if gender == "f" and not adj.endswith("e") else adj


def the(p: Place) -> str:
    noun, g = p.fr
    return f"l'{noun}" if elides(noun) else f"{'la' if g == 'f' else 'le'} {noun}"


def at(p: Place) -> str:
    """à + article: au parc, à la gare, à l'hôtel."""
    noun, g = p.fr
    if elides(noun):
        return f"à l'{noun}"
    return f"à la {noun}" if g == "f" else f"au {noun}"


def pronoun(p: Place) -> str:
    return "elle" if p.fr[1] == "f" else "il"


def day(d: str) -> str:
    return DAYS[d][2]


def when(d: str, h: int) -> str:
    return f"{day(d)} à {h} heures"


def inf(a: Activity) -> str:
    return a.fr[0]


def we(a: Activity) -> str:
    return a.fr[1]


def summary(c: Ctx, k: int) -> str:
    A, B, w, t = c.A.name, c.B.name, at(c.where), when(c.day, c.hour)
    return (f"{A} et {B} ont convenu {de(inf(c.what))} {w} {t}.",
            f"{A} et {B} vont {inf(c.what)} {w} {t}.",
            f"{A} et {B} ont décidé de se retrouver {w} {t} pour {inf(c.what)}.")[k]


def reply(c: Ctx, k: int) -> str:
    O, w, t = c.other.name, at(c.where), when(c.day, c.hour)
    return (f"Parfait, {O} ! On va {inf(c.what)} {w} {t}.",
            f"Super, alors nous {we(c.what)} {w} {t}. À bientôt, {O} !",
            f"D'accord, {O}, on se voit {w} {t} pour {inf(c.what)}.")[k]


def open_(c: Ctx, k: int, what: Activity) -> str:
    return (f"Salut {c.other.name} ! Tu veux {inf(what)} cette semaine ?",
            f"Dis, {c.other.name}, on pourrait {inf(what)} ensemble bientôt ?")[k]


def reject_what(c: Ctx, k: int, alt: Activity, what: Activity) -> str:
    return (f"Hmm, je n'ai pas trop envie {de(inf(alt))}. On pourrait plutôt {inf(what)} ?",
            f"Cette fois, je préfère ne pas {inf(alt)}. Et si on allait {inf(what)} ?")[k]


ACK = {"yes": "Bonne idée !", "anyway": "Bref,"}


def place_(c: Ctx, k: int, where: Place, ack: str) -> str:
    body = (f"On va {at(where)} ?", f"Retrouvons-nous {at(where)}.")[k]
    return f"{ACK[ack]} {body if ack == 'yes' else lower_first(body)}"


def reject_place(c: Ctx, k: int, alt: Place, where: Place) -> str:
    crowded = agree("bondé", alt.fr[1])
    return (f"{cap(the(alt))} est un peu loin pour moi. Et {at(where)} ?",
            f"Je préfère ne pas aller {at(alt)}, {pronoun(alt)} est toujours {crowded}. Peut-être {at(where)} ?")[k]


def time_(c: Ctx, k: int, where: Place, d: str, h: int) -> str:
    return (f"{cap(the(where))}, ça me va. Tu es libre {when(d, h)} ?",
            f"Entendu. Que dirais-tu de {when(d, h)} ?")[k]


def reject_time(c: Ctx, k: int, alt_d: str, alt_h: int, d: str, h: int) -> str:
    g = c.speaker.gender
    return (f"{agree('Désolé', g)}, je suis {agree('pris', g)} {when(alt_d, alt_h)}. Et {when(d, h)} ?",
            f"{cap(day(alt_d))}, ça ne m'arrange pas. On pourrait plutôt se voir {when(d, h)} ?")[k]


YES = "Avec plaisir !"


def small_say(c: Ctx, k: int, topic: str) -> str:
    return YES + " " + {"sister": "Au fait, ma sœur vient me voir le mois prochain.",
            "rain": "Il a plu toute la semaine.",
            "busy": "J'ai eu beaucoup de travail ces derniers temps.",
            "cat": "Mon chat a cassé un vase ce matin.",
            "bus": "Tu as entendu que les tickets de bus vont augmenter ?",
            "parents": "Je viens de rentrer de chez mes parents."}[topic]


def small_react(c: Ctx, k: int, topic: str) -> str:
    return {"sister": f"Oh, c'est super ! Tu dois être {agree('content', c.other.gender)}.",
            "rain": "Je sais, le soleil me manque vraiment.",
            "busy": "Moi aussi, c'est un mois de fou.",
            "cat": "Oh non ! Les chats sont comme ça.",
            "bus": "Oui, c'est vraiment agaçant.",
            "parents": "Super, j'espère qu'ils vont bien."}[topic]


ACTS = {"open": open_, "reject_what": reject_what, "place": place_, "reject_place": reject_place,
        "time": time_, "reject_time": reject_time, "small_say": small_say, "small_react": small_react}
