"""The world's vocabulary: people, activities, places, days and hours, with their forms in
English, Spanish, French and German.

Every item carries what the grammar needs (gender, the German locative preposition, separable
verb particles, irregular first-person-plural forms) and the judge's keys: regular expressions
over normalised text (lower case, no accents, punctuation as spaces) that recognise the item in
each language, tolerant to plural endings and word order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LANGS = ("en", "es", "fr", "de")


@dataclass(frozen=True)
class Person:
    name: str
    gender: str  # "f" or "m": drives agreement (es juntas/juntos, fr prise/pris, ...)


@dataclass(frozen=True)
class Activity:
    id: str
    en: str  # bare infinitive phrase: "have coffee"
    es: tuple[str, str]  # (infinitive phrase, 1st person plural present)
    fr: tuple[str, str]  # (infinitive phrase, "nous" present)
    de: tuple[str, str, str]  # (object, verb stem infinitive, separable particle or "")
    keys: dict = field(default_factory=dict)  # lang -> regex on normalised text


@dataclass(frozen=True)
class Place:
    id: str
    en: str  # noun without article: "bakery"; its preposition is in EN_IN
    es: tuple[str, str]  # (noun, gender)
    fr: tuple[str, str]  # (noun, gender); elision is decided from the spelling
    de: tuple[str, str, str]  # (noun, gender m/f/n, locative preposition in/an/auf)
    keys: dict = field(default_factory=dict)


PEOPLE = [Person(n, "f") for n in ("Anna", "Maria", "Sara", "Emma", "Laura", "Julia", "Chloe", "Lena",
                                   "Sofia", "Elena", "Rosa", "Alice", "Hannah", "Olivia")] + \
         [Person(n, "m") for n in ("Tom", "David", "Lucas", "Paul", "Marco", "Ben", "Max", "Daniel",
                                   "Hugo", "Oscar", "Felix", "Victor", "Jonas", "Samuel")]


def _a(id, en, es, fr, de, keys):
    return Activity(id, en, es, fr, de, dict(zip(LANGS, keys)))


ACTIVITIES = [
    _a("coffee", "have coffee", ("tomar un café", "tomamos un café"), ("prendre un café", "prenons un café"),
       ("einen Kaffee", "trinken", ""), ("coffee", "cafe", "cafe", "kaffee")),
    _a("lunch", "have lunch", ("almorzar", "almorzamos"), ("déjeuner", "déjeunons"),
       ("zu Mittag", "essen", ""), ("lunch", "almorz\\w*|almuerz\\w*", "dejeun\\w*", "mittag\\w*")),
    _a("dinner", "have dinner", ("cenar", "cenamos"), ("dîner", "dînons"),
       ("zu Abend", "essen", ""), ("dinner", "cen(?:a|ar|amos|an|o)", "din(?:er|ons|ent|e)", "abend\\w*")),
    _a("tennis", "play tennis", ("jugar al tenis", "jugamos al tenis"), ("jouer au tennis", "jouons au tennis"),
       ("Tennis", "spielen", ""), ("tennis", "tenis", "tennis", "tennis")),
    _a("chess", "play chess", ("jugar al ajedrez", "jugamos al ajedrez"), ("jouer aux échecs", "jouons aux échecs"),
       ("Schach", "spielen", ""), ("chess", "ajedrez", "echecs", "schach")),
    _a("exam", "study for the exam", ("estudiar para el examen", "estudiamos para el examen"),
       ("réviser pour l'examen", "révisons pour l'examen"), ("für die Prüfung", "lernen", ""),
       ("exam", "examen", "examen", "prufung")),
    _a("cards", "play cards", ("jugar a las cartas", "jugamos a las cartas"), ("jouer aux cartes", "jouons aux cartes"),
       ("Karten", "spielen", ""), ("cards?", "cartas?", "cartes?", "karten?")),
    _a("presentation", "prepare the presentation", ("preparar la presentación", "preparamos la presentación"),
       ("préparer la présentation", "préparons la présentation"), ("die Präsentation", "bereiten", "vor"),
       ("presentation", "presentacion", "presentation", "prasentation")),
    _a("budget", "go over the budget", ("revisar el presupuesto", "revisamos el presupuesto"),
       ("revoir le budget", "revoyons le budget"), ("das Budget", "gehen", "durch"),
       ("budget", "presupuesto", "budget", "budget")),
    _a("film", "watch a film", ("ver una película", "vemos una película"), ("regarder un film", "regardons un film"),
       ("einen Film", "sehen", ""), ("film", "pelicula", "film", "film")),
    _a("trip", "plan the trip", ("planear el viaje", "planeamos el viaje"),
       ("organiser le voyage", "organisons le voyage"),
       ("die Reise", "planen", ""), ("trip", "viaje", "voyage", "reise")),
    _a("run", "go for a run", ("salir a correr", "salimos a correr"), ("faire un jogging", "faisons un jogging"),
       ("joggen", "gehen", ""), ("run", "correr", "jogging", "joggen")),
    _a("shopping", "go grocery shopping", ("hacer la compra", "hacemos la compra"),
       ("faire les courses", "faisons les courses"),
       ("", "kaufen", "ein"), ("shopping", "compra", "courses", "einzukaufen|\\w*kauf\\w*")),
    _a("piano", "practise the piano", ("tocar el piano", "tocamos el piano"), ("jouer du piano", "jouons du piano"),
       ("Klavier", "üben", ""), ("piano", "piano", "piano", "klavier")),
    _a("book", "talk about the book", ("hablar del libro", "hablamos del libro"),
       ("parler du livre", "parlons du livre"),
       ("über das Buch", "sprechen", ""), ("book", "libro", "livre", "buch")),
    _a("report", "write the report", ("escribir el informe", "escribimos el informe"),
       ("rédiger le rapport", "rédigeons le rapport"), ("den Bericht", "schreiben", ""),
       ("report", "informe", "rapport", "bericht")),
    _a("yoga", "do yoga", ("hacer yoga", "hacemos yoga"), ("faire du yoga", "faisons du yoga"),
       ("Yoga", "machen", ""), ("yoga", "yoga", "yoga", "yoga")),
    _a("bike", "fix the bike", ("arreglar la bici", "arreglamos la bici"), ("réparer le vélo", "réparons le vélo"),
       ("das Fahrrad", "reparieren", ""), ("bike", "bici\\w*", "velo", "fahrrad")),
    _a("contract", "sign the contract", ("firmar el contrato", "firmamos el contrato"),
       ("signer le contrat", "signons le contrat"), ("den Vertrag", "unterschreiben", ""),
       ("contract", "contrato", "contrat", "vertrag")),
    _a("photos", "look at the photos", ("mirar las fotos", "miramos las fotos"),
       ("regarder les photos", "regardons les photos"), ("die Fotos", "schauen", "an"),
       ("photo", "foto", "photo", "foto")),
]


def _p(id, en, es, fr, de, keys=None):
    keys = keys or (en, es[0], fr[0], de[0].lower())
    return Place(id, en, es, fr, de, dict(zip(LANGS, keys)))


PLACES = [
    _p("library", "library", ("biblioteca", "f"), ("bibliothèque", "f"), ("Bibliothek", "f", "in"),
       ("library", "biblioteca", "bibliotheque", "bibliothek")),
    _p("park", "park", ("parque", "m"), ("parc", "m"), ("Park", "m", "in")),
    _p("station", "station", ("estación", "f"), ("gare", "f"), ("Bahnhof", "m", "an"),
       ("station", "estacion", "gare", "bahnhof")),
    _p("office", "office", ("oficina", "f"), ("bureau", "m"), ("Büro", "n", "in"),
       ("office", "oficina", "bureau", "buro")),
    _p("bakery", "bakery", ("panadería", "f"), ("boulangerie", "f"), ("Bäckerei", "f", "in"),
       ("bakery|bakeries", "panaderia", "boulangerie", "backerei")),
    _p("market", "market", ("mercado", "m"), ("marché", "m"), ("Markt", "m", "auf"),
       ("market", "mercado", "marche", "markt")),
    _p("museum", "museum", ("museo", "m"), ("musée", "m"), ("Museum", "n", "in"),
       ("museum", "museo", "musee", "museum")),
    _p("beach", "beach", ("playa", "f"), ("plage", "f"), ("Strand", "m", "an")),
    _p("hotel", "hotel", ("hotel", "m"), ("hôtel", "m"), ("Hotel", "n", "in"),
       ("hotel", "hotel", "hotel", "hotel")),
    _p("restaurant", "restaurant", ("restaurante", "m"), ("restaurant", "m"), ("Restaurant", "n", "in")),
    _p("bookshop", "bookshop", ("librería", "f"), ("librairie", "f"), ("Buchhandlung", "f", "in"),
       ("bookshop", "libreria", "librairie", "buchhandlung")),
    _p("garden", "garden", ("jardín", "m"), ("jardin", "m"), ("Garten", "m", "in"),
       ("garden", "jardin", "jardin", "garten")),
    _p("gym", "gym", ("gimnasio", "m"), ("salle de sport", "f"), ("Fitnessstudio", "n", "in"),
       ("gym", "gimnasio", "salle de sport", "fitnessstudio")),
    _p("airport", "airport", ("aeropuerto", "m"), ("aéroport", "m"), ("Flughafen", "m", "an"),
       ("airport", "aeropuerto", "aeroport", "flughafen")),
    _p("university", "university", ("universidad", "f"), ("université", "f"), ("Universität", "f", "an"),
       ("university", "universidad", "universite", "universitat")),
    _p("cinema", "cinema", ("cine", "m"), ("cinéma", "m"), ("Kino", "n", "in"),
       ("cinema", "cine", "cinema", "kino")),
]

DAYS = {
    "mon": ("Monday", "lunes", "lundi", "Montag"),
    "tue": ("Tuesday", "martes", "mardi", "Dienstag"),
    "wed": ("Wednesday", "miércoles", "mercredi", "Mittwoch"),
    "thu": ("Thursday", "jueves", "jeudi", "Donnerstag"),
    "fri": ("Friday", "viernes", "vendredi", "Freitag"),
    "sat": ("Saturday", "sábado", "samedi", "Samstag"),
    "sun": ("Sunday", "domingo", "dimanche", "Sonntag"),
}
# 24-hour clock; their 12-hour numbers (9, 10, 11, 1, 3, 5, 7, 8) are distinct, so English
# "3 pm" names one hour unambiguously.
HOURS = (9, 10, 11, 13, 15, 17, 19, 20)

# Meals keep to meal times; every other activity may happen at any hour.
HOURS_FOR = {"lunch": (11, 13), "dinner": (19, 20)}
# English places taking "in" rather than "at".
EN_IN = {"park", "garden"}

# Spoken hour words, for the judge (outputs may spell a time out).
HOUR_WORDS = {
    "en": {9: "nine", 10: "ten", 11: "eleven", 13: "one", 15: "three", 17: "five", 19: "seven", 20: "eight"},
    "es": {9: "nueve", 10: "diez", 11: "once", 13: "una", 15: "tres", 17: "cinco", 19: "siete", 20: "ocho"},
    "fr": {9: "neuf", 10: "dix", 11: "onze", 13: "treize", 15: "quinze", 17: "dix sept", 19: "dix neuf", 20: "vingt"},
    "de": {9: "neun", 10: "zehn", 11: "elf", 13: "dreizehn", 15: "funfzehn", 17: "siebzehn", 19: "neunzehn",
           20: "zwanzig"},
}

# Small-talk topics for distractor turns (texts live in the language modules).
TOPICS = ("sister", "rain", "busy", "cat", "bus", "parents")

PERSON = {p.name: p for p in PEOPLE}
ACTIVITY = {a.id: a for a in ACTIVITIES}
PLACE = {p.id: p for p in PLACES}
