"""Rule-based reading of one answer: its category for an attribute, and whether it is a refusal / not English.

Every rule returns `(category, evidence)`; the category is "unknown" when the answer does not settle it (no
cue, several conflicting cues, an age range straddling two groups). Rules work on any text, so they also
normalise the free-text values an LLM extractor returns ("34" -> "25-34", "Lisbon" -> "Portugal").
"""

from __future__ import annotations

import datetime
import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache

from peft_diversity.persona.categories import RESOURCES, UNKNOWN, LexiconMatch, fold, load_categories

Rule = Callable[[str], tuple[str, str | None]]

# ----- numbers written as words ---------------------------------------------------------------------------
_UNITS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen".split()
    )
}
_TENS = {
    w: 10 * i
    for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split())
    if i > 1
}
_NUMBER_WORDS = re.compile(
    rf"\b(?:({'|'.join(_TENS)})(?:[\s-]+({'|'.join(w for w in _UNITS if _UNITS[w] < 10 and w != 'zero')}))?"
    rf"|({'|'.join(_UNITS)}))\b"
)


def words_to_digits(text: str) -> str:
    """Spelled-out numbers below 100 as digits ("thirty-two" -> "32"); decades ("thirties") are left alone."""

    def digits(m: re.Match) -> str:
        if m.group(3):
            return str(_UNITS[m.group(3)])
        return str(_TENS[m.group(1)] + (_UNITS[m.group(2)] if m.group(2) else 0))

    return _NUMBER_WORDS.sub(digits, text)


# ----- age --------------------------------------------------------------------------------------------------
_EXPLICIT_AGE = [
    re.compile(r"\b(\d{1,3})\s*(?:-|\s)?\s*(?:years?|yrs?)(?:\s*-\s*|\s+)old\b"),
    re.compile(r"\b(\d{1,3})\s*(?:yo|y/o|y\.o\.)(?![\w])"),
    re.compile(
        r"\b(?:i'?m|i am|im|aged?|age is|turned|turning|just turned)\s+"
        r"(?:about\s+|almost\s+|nearly\s+|around\s+|only\s+|just\s+)?(\d{1,3})\b(?!\s*(?:%|kg|lbs?|cm|feet|foot|ft|years? of))"
    ),
    re.compile(r"\bage\s*[:=]\s*(\d{1,3})\b"),
]
_LOOSE_AGE = re.compile(r"\b(\d{1,3})\s*(?:years?|yrs?)\b(?!\s+(?:of|in|at|as|ago|working|experience))")
_BORN = re.compile(r"\bborn in (?:the year )?((?:19|20)\d\d)\b")
_DECADES = {
    w: 10 * i
    for i, w in enumerate(
        "_ teens twenties thirties forties fifties sixties seventies eighties nineties".split()
    )
    if i
}
_DECADE = re.compile(
    r"\b(early|mid|late)?[\s-]*(?:(teens|twenties|thirties|forties|fifties|sixties|seventies|eighties|nineties)"
    r"|'?([1-9]0)'?s)\b"
)
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3})(?!\w|\.\d)")
# "over 40" is no age
_BOUND = re.compile(r"\b(?:over|under|above|below|past|more than|less than|at least|at most)\s*$")
MAX_AGE = 120


def age_rule(text: str, reference_year: int | None = None) -> tuple[str, str | None]:
    """Age group from "34", "thirty-four", "34 years old", "I'm in my early thirties", "born in 1950", ...

    Order: explicit phrases ("I'm 34", "34 years old"), a birth year (against `reference_year`, default this
    year), decades ("late forties"; unknown when the decade spans two groups, as "thirties" does), "N years",
    and last a lone number in the answer.
    """
    cats = load_categories()
    folded = words_to_digits(fold(text))
    for pattern in _EXPLICIT_AGE:
        if (m := pattern.search(folded)) and 0 < int(m.group(1)) <= MAX_AGE:
            return cats.age_group(int(m.group(1))), m.group(0)
    if m := _BORN.search(folded):
        age = (reference_year or datetime.date.today().year) - int(m.group(1))
        group = cats.age_group(max(age - 1, 0), age) if 0 < age <= MAX_AGE else UNKNOWN  # birthday passed?
        return group, m.group(0)
    if m := _DECADE.search(folded):
        low, high = _decade_range(m)
        return cats.age_group(low, high), m.group(0).strip()
    if (m := _LOOSE_AGE.search(folded)) and 0 < int(m.group(1)) <= MAX_AGE:
        return cats.age_group(int(m.group(1))), m.group(0)
    numbers = {int(m.group(1)) for m in _NUMBER.finditer(folded) if not _BOUND.search(folded[: m.start()])}
    if len(numbers) == 1 and 10 <= (age := numbers.pop()) <= MAX_AGE:
        return cats.age_group(age), str(age)
    return UNKNOWN, None


def _decade_range(m: re.Match) -> tuple[int, int]:
    base = _DECADES[m.group(2)] if m.group(2) else int(m.group(3))
    low, high = (13, 19) if base == 10 else (base, base + 9)
    span = {"early": (low, low + 3), "mid": (low + 3, low + 6), "late": (high - 2, high)}
    return span.get(m.group(1) or "", (low, high))


# ----- negation / past tense near a match --------------------------------------------------------------------
_NEGATED = re.compile(
    r"(?:\bnot|n't|\bnever|\bno|\bnor|\bneither)\s+(?:(?:really|even|just|have|had|got|a|an|my|any)\s+){0,3}$"
)
_PAST = re.compile(
    r"(?:\bused to|\bformer(?:ly)?|\bpreviously|\bonce was|\bi was|\bretired|\bex-?|\bback then)"
    r"\s*(?:(?:be|work(?:ed)?|as|an?|in|the|for)\s+){0,3}$"
)


_POSSESSIVE = re.compile(
    r"\b(?:my|your|his|her|their|our|the|whose|(?:have|has|got|with) (?:an?|two|three|one))\s+"
    r"(?:(?:own|older|younger|little|big|elder)\s+)?$"
)


def _before(folded: str, match: LexiconMatch, width: int = 30) -> str:
    return folded[max(0, match.start - width) : match.start]


def _live(folded: str, matches: list[LexiconMatch], past: bool = False) -> list[LexiconMatch]:
    """Matches not negated ("not a nurse") and, with `past`, not in the past ("used to be a nurse")."""
    return [
        m
        for m in matches
        if m.value is not None
        and not _NEGATED.search(_before(folded, m))
        and not (past and _PAST.search(_before(folded, m)))
    ]


# ----- gender, education, occupation ---------------------------------------------------------------------------
def gender_rule(text: str) -> tuple[str, str | None]:
    """female / male / non-binary from strong words ("woman", "male", "non-binary"), else the speaker's own
    family role ("I'm a mother", not "my mother")."""
    cats, folded = load_categories(), fold(text)
    for lexicon in (cats.gender_strong, cats.gender_weak):
        hits = _live(folded, lexicon.find(text))
        if lexicon is cats.gender_weak:  # "my sister" says nothing about the speaker
            hits = [m for m in hits if not _POSSESSIVE.search(_before(folded, m))]
        values = {m.value for m in hits}
        if len(values) == 1:
            return values.pop(), folded[hits[0].start : hits[0].end]
        if values:
            return UNKNOWN, "conflicting: " + ", ".join(sorted(v for v in values if v))
    return UNKNOWN, None


def education_rule(text: str) -> tuple[str, str | None]:
    """The highest level mentioned ("a bachelor's and a master's" -> master); studies in progress count one
    level down ("doing my PhD" -> master, "college student" -> secondary)."""
    cats, folded = load_categories(), fold(text)
    hits = _live(folded, cats.education.find(text))
    if not hits:
        return UNKNOWN, None
    best = max(hits, key=lambda m: cats.education_rank[m.value])
    return best.value, folded[best.start : best.end]


def occupation_rule(text: str) -> tuple[str, str | None]:
    """Occupation sector: a status that overrides any job ("retired", "unemployed"), else the first job title
    that is not negated or past ("used to be a nurse"), else the first workplace/domain keyword."""
    cats, folded = load_categories(), fold(text)
    titles = cats.occupation_titles.find(text)
    overriding = [m for m in _live(folded, titles) if m.value in cats.overriding_occupations]
    current = (
        overriding or _live(folded, titles, past=True) or _live(folded, cats.occupation_keywords.find(text))
    )
    if not current:
        return UNKNOWN, None
    return current[0].value, folded[current[0].start : current[0].end]


# ----- country ----------------------------------------------------------------------------------------------
_RESIDENCE_CUES = (
    r"(?:i've|i have|have|has) (?:lived|been living)|live|lives|living|reside|resides|residing|based|settled|"
    r"located|staying|moved|relocated|now|currently|home"
)
_ORIGIN_CUES = r"from|born|grew up|raised|originally|native|lived|used to"
_CUE = re.compile(rf"\b(?:({_RESIDENCE_CUES})|({_ORIGIN_CUES}))\b")
_WEIGHT = {"residence": 3, "neutral": 2, "origin": 1}


def country_rule(text: str) -> tuple[str, str | None]:
    """Country of residence: places after a residence cue ("I live in Lisbon") beat plain mentions, which beat
    origins ("I'm from", "born in", a demonym: "Brazilian"). Two countries tied at the top -> unknown."""
    cats, folded = load_categories(), fold(text)
    best: dict[str, tuple[int, str]] = {}
    for match in cats.places.find(text):
        if match.value is None:
            continue
        weight = _WEIGHT[_place_role(folded, match)]
        if weight > best.get(match.value, (0, ""))[0]:
            best[match.value] = (weight, folded[match.start : match.end])
    if not best:
        return UNKNOWN, None
    top = max(weight for weight, _ in best.values())
    winners = [country for country, (weight, _) in best.items() if weight == top]
    if len(winners) > 1:
        return UNKNOWN, "conflicting: " + ", ".join(sorted(winners))
    return winners[0], best[winners[0]][1]


def _place_role(folded: str, match: LexiconMatch) -> str:
    """residence / origin from the nearest cue word in the same clause before the place; demonyms lean origin."""
    clause = re.split(r"[.;!?]|\bbut\b", _before(folded, match, 48))[-1]
    cues = list(_CUE.finditer(clause))
    if cues:
        return "residence" if cues[-1].group(1) else "origin"
    return "origin" if match.tag == "demonym" else "neutral"


RULES: dict[str, Rule] = {
    "country": country_rule,
    "age": age_rule,
    "occupation": occupation_rule,
    "education": education_rule,
    "gender": gender_rule,
}


# ----- answer flags ------------------------------------------------------------------------------------------------
_REFUSALS = [
    re.compile(p)
    for p in (
        r"\bas an? (?:ai|a\.i\.|artificial intelligence|(?:large )?language model|llm|chatbot|bot|virtual assistant|"
        r"ai assistant|assistant|machine|computer program)\b",
        r"\bi(?:'m| am) (?:just |only |merely |actually )?(?:an? )?(?:ai|a\.i\.|artificial intelligence|"
        r"(?:large )?language model|llm|chatbot|bot|computer program|virtual assistant|ai assistant|machine)\b",
        r"\b(?:large )?language model\b",
        r"\bi (?:do not|don't) (?:have|possess) (?:a |an |any )?(?:personal |physical |real )?(?:age|gender|body|"
        r"country|job|occupation|education|nationality|location|identity|personal (?:information|details|life))\b",
        r"\bi(?:'d| would) (?:rather|prefer) not\b",
        r"\b(?:prefer|want|like) not to (?:say|share|answer|disclose|tell)\b",
        r"\bi (?:can't|cannot|can not|won't|will not|don't want to) (?:share|say|tell|disclose|answer|provide|reveal|give)\b",
        r"\bi(?:'m| am) not (?:comfortable|able to) (?:sharing|saying|answering|telling|disclos)",
        r"\bi(?:'m| am) not (?:a )?(?:real|human|person|real person)\b",
        r"\b(?:that's|that is|it's|it is) (?:private|personal|confidential)\b",
        r"\bnone of your business\b",
        r"\bnot something i(?:'d| would)? (?:like|want|care|wish) to (?:share|say|discuss|talk about)\b",
        r"\b(?:rather|prefer to) keep (?:that|it) (?:private|to myself)\b",
    )
]


def is_refusal(text: str) -> bool:
    """An AI disclaimer ("as an AI", "I'm a language model") or a refusal to share ("I'd rather not say")."""
    folded = fold(text)
    return any(p.search(folded) for p in _REFUSALS)


_FOREIGN = frozenset(
    """
el la los las un una unos y o que de del en es soy estoy tengo vivo trabajo mi mis pero con por para como muy
anos hombre mujer yo tambien
le les des une et je suis j'ai habite travaille mon ma mes avec pour dans sur tres ans homme femme
der das ein eine und ich bin habe wohne arbeite mein meine mit fur auf sehr jahre jahr alt mann frau nicht
il lo gli sono ho vivo lavoro mio mia anni uomo donna con per della molto
eu sou tenho moro trabalho meu minha com anos homem mulher nao muito
ik ben heb woon werk mijn jaar oud en met het een
""".split()
)
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


@lru_cache(maxsize=1)
def _english_function_words() -> frozenset[str]:
    words: list[str] = []
    for line in (RESOURCES / "stopwords_en.txt").read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            words.extend(line.split())
    return frozenset(words)


def looks_non_english(text: str) -> bool:
    """Cheap language guess: mostly non-Latin letters, or more Spanish/French/German/Italian/Portuguese/Dutch
    function words than English ones."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return False
    latin = sum(1 for c in letters if unicodedata.name(c, "").startswith("LATIN"))
    if latin / len(letters) < 0.5:
        return True
    english = _english_function_words()
    words = _WORD.findall(fold(text))
    foreign = sum(1 for w in words if w in _FOREIGN and w not in english)
    known = sum(1 for w in words if w in english)
    return foreign > known and (foreign >= 2 or known == 0)


def is_missing(text: str | None) -> bool:
    """No answer: absent, empty, or without a single letter or digit."""
    return text is None or not any(c.isalnum() for c in text)
