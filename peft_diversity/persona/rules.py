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
from dataclasses import replace
from functools import lru_cache

from peft_diversity.persona.categories import (
    RESOURCES,
    UNKNOWN,
    LexiconMatch,
    fold,
    load_categories,
    plain_text,
)

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
    """Spelled-out numbers below 100 as digits ("thirty-two" -> "32"); decades ("thirties") are left alone, and
    so is a lone "one" unless "year" follows ("I'm one of those people" holds no age)."""

    def digits(m: re.Match) -> str:
        if m.group(3) == "one" and not re.match(r"[\s-]+years?\b", m.string[m.end() :]):
            return m.group(0)
        if m.group(3):
            return str(_UNITS[m.group(3)])
        return str(_TENS[m.group(1)] + (_UNITS[m.group(2)] if m.group(2) else 0))

    return _NUMBER_WORDS.sub(digits, text)


# ----- age --------------------------------------------------------------------------------------------------
MAX_AGE = 120
# "I'm N" is an age only when nothing but punctuation or a few words follow ("I'm 5'10", "I'm 2 hours away")
_SELF_END = (
    r"(?=\s*(?:$|[.,!?;:)/-]|(?:and|but|so|now|though|today|myself|actually|soon|already|this year|going on|"
    r"years?\s+(?:old|young|of age)|yrs?\s+old|y/?o)\b|(?:years?|yrs?)\s*(?:$|[.,!?;:])))"
)
_SELF_AGE = re.compile(
    r"\b(?:i'?m|i am)\s+(?:(?:about|almost|nearly|around|only|just|barely|now|currently|actually)\s+)?"
    rf"(\d{{1,3}}){_SELF_END}"
)
# (pattern, how the age group is read: "age" N, "turning" N-1..N, "away" M-N)
_STATED_AGES = [
    (re.compile(r"\b(\d{1,3})\s*(?:-|\s)?\s*(?:years?|yrs?)(?:\s*-\s*|\s+)(?:old|young)\b"), "age"),
    (re.compile(r"\b(\d{1,3})\s*(?:yo|y/o|y\.o\.)(?!\w)"), "age"),
    (re.compile(r"\b(?:my age is|age is|age\s*[:=]|aged?|(?:just )?turned)\s*(\d{1,3})\b"), "age"),
    (re.compile(r"\b(?:turning|about to turn|(?:i'll|i will) be)\s+(\d{1,3})\b"), "turning"),
    (
        re.compile(
            r"\b(an?|\d{1,2})\s+(?:more\s+)?years?\s+(?:away from|short of|shy of|off|until|till|before|from)\s+"
            r"(?:turning\s+|hitting\s+)?(\d{1,3})\b"
        ),
        "away",
    ),
]
_BORN = re.compile(
    r"\bborn\s+(?:in\s+)?(?:the\s+year\s+)?(?:((?:19|20)\d\d)|'(\d\d))\b|\b((?:19|20)\d\d)\s+baby\b"
)
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
_BORN_IN_DECADE = re.compile(r"\bborn\s+(?:in\s+)?(?:the\b)?\s*$")
_LOOSE_AGE = re.compile(r"\b(\d{1,3})\s*(?:years?|yrs?)\b")
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3})(?!\w|\.\d)")
# "over 40" is no age
_BOUND = re.compile(r"\b(?:over|under|above|below|past|more than|less than|at least|at most)\s*$")
_UNIT = r"(?:years?|yrs?|months?|weeks?|days?|hours?)"
# numbers that are no one's age: durations, heights and weights, counts, lists of children's ages
_NOT_AGE = re.compile(
    r"\b(?:for|been|spent|past|last|next|over|in|after|within|married|together|working|here|there)\s+(?:the\s+)?"
    rf"(?:past\s+|last\s+)?(?:about\s+|almost\s+|nearly\s+|over\s+)?\d{{1,3}}\s*{_UNIT}"
    rf"|\b\d{{1,3}}\s*{_UNIT}\s+(?:ago|of|in|at|as|on|working|experience|later|since|back)\b"
    r"|\d\s*'\s*\d{1,2}\b|\b\d{1,3}(?:\.\d+)?\s*(?:cm|ft|feet|foot|inch(?:es)?|kg|kilos?|lbs?|pounds|stone|%|percent)"
    r"|\b\d{1,3}\s+(?:kids|children|sons|daughters|grandkids|grandchildren|siblings|brothers|sisters|dogs|cats|"
    r"pets|times|people|employees|students|countries|languages|jobs|books|hours|minutes|months|weeks|days)\b"
    r"|\baged?\s+\d{1,3}(?:\s*(?:,|and|&)\s*\d{1,3})+"
)
_OTHER_PERSON = re.compile(
    r"\b(?:sons?|daughters?|kids?|child(?:ren)?|boys?|girls?|twins?|bab(?:y|ies)|toddlers?|teens?|grand\w+|"
    r"husband|wife|partner|spouse|boyfriend|girlfriend|mom|mum|mother|dad|father|parents?|brothers?|sisters?|"
    r"siblings?|nieces?|nephews?|cousins?|friends?|dogs?|cats?|pets?|students?|pupils?|he|she|they|his|her|their)\b"
)
_HAVE_A = re.compile(r"\b(?:have|has|got|with|raising|of)\s+(?:an?|\d+)\s+$")
_AGE_CLAUSE = re.compile(r"[.;!?,(]|\b(?:and|but|while|whereas|i'?m|i am|i)\b")

AgeCandidate = tuple[int, int, int, str]
"""(start, youngest, oldest, evidence) of one age reading."""


def age_rule(text: str, reference_year: int | None = None) -> tuple[str, str | None]:
    """Age group from "34", "thirty-four", "34 years old", "I'm in my early thirties", "born in '85", ...

    Readings, strongest first: the speaker's stated age ("I'm 34", "a 29-year-old", "turned 50", "a year shy
    of 30"), a birth year (against `reference_year`, default this year), a decade ("late forties"; unknown
    when it spans two groups, as "thirties" does), "N years", and last a lone number. Within one kind the
    leftmost wins. Ages of someone else ("my daughter is 6", "a 5-year-old son"), durations ("for 20 years"),
    heights and counts are never read.
    """
    cats = load_categories()
    folded = words_to_digits(fold(text))
    year = reference_year or datetime.date.today().year
    masked = [m.span() for m in _NOT_AGE.finditer(folded)]
    for find in (_stated_ages, _birth_ages, _decade_ages, _loose_ages, _lone_ages):
        found = [c for c in find(folded, year, masked) if 0 <= c[1] <= c[2] <= MAX_AGE]
        if found:
            _, low, high, evidence = min(found)
            return cats.age_group(low, high), evidence
    return UNKNOWN, None


def _about_someone_else(folded: str, start: int, end: int) -> bool:
    """An age of someone else: "my daughter is 6", "kids aged 5", "a 5-year-old son", "I have a 3-year-old"."""
    before = _AGE_CLAUSE.split(folded[max(0, start - 60) : start])[-1]
    after = folded[end : end + 20].lstrip(" -")
    return bool(_OTHER_PERSON.search(before) or _HAVE_A.search(before) or _OTHER_PERSON.match(after))


def _stated_ages(folded: str, year: int, masked: list[tuple[int, int]]) -> list[AgeCandidate]:
    found = [(m.start(), int(m.group(1)), int(m.group(1)), m.group(0)) for m in _SELF_AGE.finditer(folded)]
    for pattern, kind in _STATED_AGES:
        for m in pattern.finditer(folded):
            if _about_someone_else(folded, m.start(), m.end()):
                continue
            if kind == "away":
                age = int(m.group(2)) - (1 if m.group(1) in ("a", "an") else int(m.group(1)))
                found.append((m.start(), age, age, m.group(0)))
            else:
                age = int(m.group(1))
                found.append((m.start(), age - (kind == "turning"), age, m.group(0)))
    return [c for c in found if c[1] > 0]


def _birth_ages(folded: str, year: int, masked: list[tuple[int, int]]) -> list[AgeCandidate]:
    found = []
    for m in _BORN.finditer(folded):
        born = int(m.group(1) or m.group(3) or 0) or _century(int(m.group(2)), year)
        age = year - born
        found.append((m.start(), max(age - 1, 0), age, m.group(0)))  # birthday passed or not
    return [c for c in found if c[2] > 0]


def _century(two_digits: int, year: int) -> int:
    return 2000 + two_digits if 2000 + two_digits <= year else 1900 + two_digits


def _decade_ages(folded: str, year: int, masked: list[tuple[int, int]]) -> list[AgeCandidate]:
    found = []
    for m in _DECADE.finditer(folded):
        if _about_someone_else(folded, m.start(), m.end()):
            continue
        low, high = _decade_range(m)
        if _BORN_IN_DECADE.search(folded[: m.start()]) and m.group(3):  # "born in the 80s": a birth decade
            first = _century(int(m.group(3)), year)
            low, high = year - (first + high - int(m.group(3))) - 1, year - (first + low - int(m.group(3)))
        found.append((m.start(), low, high, m.group(0).strip()))
    return found


def _decade_range(m: re.Match) -> tuple[int, int]:
    base = _DECADES[m.group(2)] if m.group(2) else int(m.group(3))
    low, high = (13, 19) if base == 10 else (base, base + 9)
    span = {"early": (low, low + 3), "mid": (low + 3, low + 6), "late": (high - 2, high)}
    return span.get(m.group(1) or "", (low, high))


def _free(masked: list[tuple[int, int]], m: re.Match) -> bool:
    return not any(lo <= m.start(1) < hi for lo, hi in masked)


def _loose_ages(folded: str, year: int, masked: list[tuple[int, int]]) -> list[AgeCandidate]:
    return [
        (m.start(), int(m.group(1)), int(m.group(1)), m.group(0))
        for m in _LOOSE_AGE.finditer(folded)
        if _free(masked, m) and not _about_someone_else(folded, m.start(), m.end())
    ]


def _lone_ages(folded: str, year: int, masked: list[tuple[int, int]]) -> list[AgeCandidate]:
    """The one number left in the answer (10..MAX_AGE), when there is exactly one."""
    numbers = {
        int(m.group(1))
        for m in _NUMBER.finditer(folded)
        if _free(masked, m)
        and not _BOUND.search(folded[: m.start()])
        and not _about_someone_else(folded, m.start(), m.end())
    }
    numbers = {n for n in numbers if 10 <= n <= MAX_AGE}
    if len(numbers) != 1:
        return []
    age = numbers.pop()
    return [(0, age, age, str(age))]


# ----- negation / past tense near a match --------------------------------------------------------------------
_NEGATED = re.compile(
    r"(?:\bnot|n't|\bnever|\bno|\bnor|\bneither|\bdropped out of|\bquit)\s+"
    r"(?:(?:really|even|just|have|had|got|get|a|an|my|any|the|finish(?:ed)?|complete(?:d)?|earn(?:ed)?|"
    r"obtain(?:ed)?|do|did|go to|went to|attend(?:ed)?|graduate(?:d)? from)\s+){0,3}$"
)
_PAST = re.compile(
    r"(?:\bused to|\bformer(?:ly)?|\bpreviously|\bonce was|\bi was|\bretired|\bex-?|\bback then)"
    r"\s*(?:(?:be|work(?:ed)?|as|an?|in|the|for)\s+){0,3}$"
)
# someone else's: "my sister", "married to a wonderful woman", "father of a girl"
_RELATIONAL = re.compile(
    r"(?:\b(?:my|your|his|her|their|our|whose)|\b(?:married to|engaged to|dating|of|with|to|for|have|has|got|had|"
    r"raising)\s+(?:an?|the|my|our|two|three|four|five|\d+))\s+(?:[\w'-]+\s+){0,2}$"
)


def _before(folded: str, match: LexiconMatch, width: int = 30) -> str:
    return folded[max(0, match.start - width) : match.start]


def _live(folded: str, matches: list[LexiconMatch], past: bool = False) -> list[LexiconMatch]:
    """Matches not negated ("not a nurse", "never finished my PhD") and, with `past`, not in the past ("used to
    be a nurse")."""
    return [
        m
        for m in matches
        if m.value is not None
        and not _NEGATED.search(_before(folded, m, 40))
        and not (past and _PAST.search(_before(folded, m)))
    ]


# ----- gender, education, occupation ---------------------------------------------------------------------------
def gender_rule(text: str) -> tuple[str, str | None]:
    """female / male / non-binary from strong words ("woman", "male", "non-binary"), else the speaker's own
    family role ("I'm a mother", not "my mother"); words about someone else ("married to a woman", "father of a
    girl") are left out, and conflicting words give unknown."""
    cats, folded = load_categories(), fold(text)
    for lexicon, relational in ((cats.gender_strong, _RELATIONAL), (cats.gender_weak, _RELATIONAL_WEAK)):
        hits = [m for m in _live(folded, lexicon.find(text)) if not relational.search(_before(folded, m, 40))]
        values = {m.value for m in hits}
        if len(values) == 1:
            return values.pop(), folded[hits[0].start : hits[0].end]
        if values:
            return UNKNOWN, "conflicting: " + ", ".join(sorted(v for v in values if v))
    return UNKNOWN, None


_RELATIONAL_WEAK = re.compile(rf"{_RELATIONAL.pattern}|\bthe\s+$")


def education_rule(text: str) -> tuple[str, str | None]:
    """The highest level mentioned ("a bachelor's and a master's" -> master) and not negated ("never finished
    my PhD"); studies in progress count one level down ("doing my PhD" -> master, "college student" ->
    secondary); job phrases ("high school teacher", "at a university") say nothing."""
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
_CUE = re.compile(rf"\b(?:({_RESIDENCE_CUES})|({_ORIGIN_CUES})|(to))\b")
_MOVE = re.compile(r"\b(?:moved|moving|relocated|relocating|emigrated|immigrated|came|settled)\b")
_PLACE_CLAUSE = re.compile(r"[.;!?,]|\b(?:but|and|with|though|although|near|close to|while|whereas)\b")
_WEIGHT = {"residence": 3, "neutral": 2, "origin": 1}
# words after a demonym that still describe the speaker ("I'm Canadian born and raised")
_SELF_AFTER_DEMONYM = re.compile(
    r"citizen|national|native|expat|immigrant|guy|girl|boy|man|woman|lady|person|dude|gal|born|raised|living|"
    r"myself|through|too"
)
_CODE = re.compile(r",\s*([A-Z]{2})(?!\w|\s*\?)")
_REGION_END = re.compile(r"\s*(?:$|[.,;!?)-]|(?:and|but|with|though|where|which)\b)")


def country_rule(text: str) -> tuple[str, str | None]:
    """Country of residence: a place right after a residence cue ("I live in Lisbon", "moved from Germany to
    Canada") beats plain mentions, which beat origins ("I'm from", "born in", a demonym: "Brazilian"). A cue
    names only the first place after it in its clause; "City, ST" / "City, Region" counts as the region's
    country; a demonym before a noun ("my Polish wife") is no claim. Two countries tied at the top -> unknown."""
    folded = fold(text)
    places = _places(text, folded)
    best: dict[str, tuple[int, str]] = {}
    for match in places:
        if match.value is None:
            continue
        weight = _WEIGHT[_place_role(folded, match, places)]
        if weight > best.get(match.value, (0, ""))[0]:
            best[match.value] = (weight, folded[match.start : match.end])
    if not best:
        return UNKNOWN, None
    top = max(weight for weight, _ in best.values())
    winners = [country for country, (weight, _) in best.items() if weight == top]
    if len(winners) > 1:
        return UNKNOWN, "conflicting: " + ", ".join(sorted(winners))
    return winners[0], best[winners[0]][1]


def _places(text: str, folded: str) -> list[LexiconMatch]:
    """Place matches, demonyms used as adjectives dropped, a city followed by its state or region ("Cambridge,
    MA", "London, Ontario") given the region's country."""
    cats, plain = load_categories(), plain_text(text)
    matches = [m for m in cats.places.find(text) if not _adjective_demonym(folded, m)]
    out = []
    for i, m in enumerate(matches):
        after = matches[i + 1] if i + 1 < len(matches) else None
        code = _CODE.match(plain, m.end)
        if m.tag == "place" and code and code.group(1) in cats.place_codes:
            m = replace(m, value=cats.place_codes[code.group(1)])
        elif (
            m.tag == "place"
            and after is not None
            and after.value is not None
            and after.tag != "demonym"
            and re.fullmatch(r",\s*", folded[m.end : after.start])
            and _REGION_END.match(folded, after.end)
        ):
            m = replace(m, value=after.value)
        out.append(m)
    return out


def _adjective_demonym(folded: str, match: LexiconMatch) -> bool:
    """A demonym before a noun ("my Polish wife", "a Japanese company") describes something else."""
    following = re.match(r" ([a-z][\w'-]*)", folded[match.end :])
    return (
        match.tag == "demonym"
        and following is not None
        and following.group(1) not in _english_function_words()
        and not _SELF_AFTER_DEMONYM.fullmatch(following.group(1))
    )


def _place_role(folded: str, match: LexiconMatch, places: list[LexiconMatch]) -> str:
    """residence / origin from the nearest cue before the place in its clause, when no other place comes
    between them; "to" is a residence cue only after a move ("moved from X to Y"); demonyms lean origin."""
    default = "origin" if match.tag == "demonym" else "neutral"
    clause_start = max((m.end() for m in _PLACE_CLAUSE.finditer(folded, 0, match.start)), default=0)
    cues = list(_CUE.finditer(folded, clause_start, match.start))
    if not cues or any(cues[-1].end() <= p.start < match.start for p in places):
        return default
    cue = cues[-1]
    if cue.group(3):
        return "residence" if _MOVE.search(folded, clause_start, cue.start()) else default
    return "residence" if cue.group(1) else "origin"


RULES: dict[str, Rule] = {
    "country": country_rule,
    "age": age_rule,
    "occupation": occupation_rule,
    "education": education_rule,
    "gender": gender_rule,
}


# ----- answer flags ------------------------------------------------------------------------------------------------
# bare "assistant" / "machine" / "bot" only when no job noun follows ("a machine operator", "assistant manager")
_AI_NOUN = (
    r"(?:ai|a\.i\.|artificial intelligence|(?:large )?language model|llm|chatbot|computer program|virtual assistant|"
    r"ai assistant|(?:assistant|machine|bot)(?=\s*(?:$|[.,!?;:)]|and\b|so\b|that\b|who\b|which\b|without\b|"
    r"created\b|made\b|trained\b|designed\b|built\b|developed\b|programmed\b)))"
)
_REFUSALS = [
    re.compile(p)
    for p in (
        rf"\bas an? {_AI_NOUN}",
        rf"\bi(?:'m| am) (?:just |only |merely |actually )?(?:an? )?{_AI_NOUN}",
        r"\b(?:large )?language model\b",
        r"\bi (?:do not|don't) (?:have|possess) (?:a |an |any )?(?:personal |physical |real )?(?:age|gender|body|"
        r"country|job|occupation|education|nationality|location|identity|personal (?:information|details|life))\b",
        r"\bi(?:'d| would) (?:rather|prefer) not\b",
        r"\b(?:prefer|want|like) not to (?:say|share|answer|disclose|tell)\b",
        # "I can't say that", not "I can't say I love it"
        r"\bi (?:can't|cannot|can not|won't|will not|don't want to) (?:share|say|tell|disclose|answer|provide|reveal|"
        r"give)(?: out)?(?: you)?(?=\s*(?:$|[.,!?;:]|(?:that|this|it|my|where|how|what|which|when|much|more|anything|"
        r"any|personal|details|specifics|information|info)\b))",
        r"\bi(?:'m| am) not (?:comfortable|able to) (?:sharing|saying|answering|telling|disclos)",
        r"\bi(?:'m| am) not (?:a )?(?:real|human|person|real person)\b(?! estate)",
        r"\bnone of your business\b",
        r"\bnot something i(?:'d| would)? (?:like|want|care|wish) to (?:share|say|discuss|talk about)\b",
        r"\b(?:rather|prefer to) keep (?:that|it) (?:private|to myself)\b",
    )
]
# a refusal only when the answer settles nothing: "I'm a nurse. It's personal, but I love it"
_SOFT_REFUSAL = re.compile(r"\b(?:that's|that is|it's|it is) (?:private|personal|confidential)\b")


def is_refusal(text: str) -> bool:
    """An AI disclaimer ("as an AI", "I'm a language model") or a refusal to share ("I'd rather not say")."""
    folded = fold(text)
    return any(p.search(folded) for p in _REFUSALS)


def is_soft_refusal(text: str) -> bool:
    """ "It's personal" / "that's private": a refusal when the answer settles no category."""
    return bool(_SOFT_REFUSAL.search(fold(text)))


_FOREIGN = frozenset(
    """
el la los las un una unos y o que de del en es soy estoy tengo vivo trabajo mi mis pero con por para como muy
anos hombre mujer yo tambien
le les des une et je suis j'ai habite travaille mon ma mes avec pour dans sur tres ans homme femme ne pas
der das ein eine und ich bin habe wohne arbeite mein meine mit fur auf sehr jahre jahr alt mann frau nicht
il lo gli sono ho vivo lavoro mio mia anni uomo donna con per della molto
eu sou tenho moro trabalho meu minha com anos homem mulher nao muito
ik ben heb woon werk mijn jaar oud en met het een
""".split()
)
# "I am" / "I have" verbs count twice: "Soy ingeniero civil." is Spanish, "Des Moines" is no French
_FIRST_PERSON = frozenset("soy estoy tengo suis bin habe sono sou tenho ben heb".split())
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


@lru_cache(maxsize=1)
def _english_function_words() -> frozenset[str]:
    words: list[str] = []
    for line in (RESOURCES / "stopwords_en.txt").read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            words.extend(line.split())
    return frozenset(words)


def looks_non_english(text: str) -> bool:
    """Cheap language guess: mostly non-Latin letters, or at least two Spanish/French/German/Italian/Portuguese/
    Dutch function words (a first-person verb such as "soy" counts two) and more of them than English ones.
    Place names ("El Salvador", "Des Moines") are removed first."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return False
    latin = sum(1 for c in letters if unicodedata.name(c, "").startswith("LATIN"))
    if latin / len(letters) < 0.5:
        return True
    folded = fold(text)
    for place in reversed(load_categories().places.find(text)):
        folded = folded[: place.start] + " " + folded[place.end :]
    english = _english_function_words()
    words = _WORD.findall(folded)
    foreign = sum(1 + (w in _FIRST_PERSON) for w in words if w in _FOREIGN and w not in english)
    known = sum(1 for w in words if w in english)
    return foreign >= 2 and foreign > known


def is_missing(text: str | None) -> bool:
    """No answer: absent, empty, or without a single letter or digit."""
    return text is None or not any(c.isalnum() for c in text)
