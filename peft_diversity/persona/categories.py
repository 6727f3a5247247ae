"""The fixed categories of the persona bias test and their lexicons (`resources/persona_categories.json`).

Lexicon entries are regular expressions, matched on word boundaries in `fold`ed text (accents stripped,
lower case); an entry written with capitals (e.g. "US") is matched case-sensitively instead, because its
lower-case form is a common word. `Lexicon.find` returns the leftmost non-overlapping matches, the longest
match winning where several entries match at the same place ("trans woman" over "woman", "new england" over
"england", "undergraduate degree" over "undergrad(?:uate)?").
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
CATEGORIES_FILE = RESOURCES / "persona_categories.json"

ATTRIBUTES = ("country", "age", "occupation", "education", "gender")
"""What the interview asks about, in interview order."""
DERIVED = {"region": "country"}
"""Attributes computed from another one (region from country)."""
REPORTED = ("country", "region", "age", "gender", "education", "occupation")
"""Attributes in reports, in column order."""
UNKNOWN = "unknown"


def fold(text: str) -> str:
    """Text for matching: accents stripped, typographic quotes/dashes made plain, lower case."""
    return plain_text(text).lower()


def plain_text(text: str) -> str:
    """`text` with accents stripped and typographic quotes / dashes made plain (case kept)."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.translate(_PUNCT)


_PUNCT = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"}
)


@dataclass(frozen=True)
class LexiconMatch:
    """One lexicon hit: the value it stands for (None = an ignored phrase), where it is, and the entry's tag."""

    value: str | None
    start: int
    end: int
    tag: str = ""


class Lexicon:
    """Many (regex, value, tag) entries: one alternation finds where matches start, then every entry is tried
    there and the longest match wins (an alternation alone would take the first entry that matches)."""

    def __init__(self, entries: list[tuple[str, str | None, str]]) -> None:
        self._lower = self._compile([e for e in entries if e[0] == e[0].lower()], re.IGNORECASE)
        self._exact = self._compile([e for e in entries if e[0] != e[0].lower()], 0)

    @staticmethod
    def _compile(entries: list[tuple[str, str | None, str]], flags: int):
        if not entries:
            return None
        body = "|".join(f"(?:{pattern})" for pattern, _, _ in entries)
        each = [(re.compile(rf"(?<![\w])(?:{p})(?![\w])", flags), value, tag) for p, value, tag in entries]
        return re.compile(rf"(?<![\w])(?:{body})(?![\w])", flags), each

    def find(self, text: str) -> list[LexiconMatch]:
        """Leftmost non-overlapping matches in `text` (raw text; it is folded here)."""
        plain = plain_text(text)
        matches = []
        for compiled, haystack in ((self._lower, plain.lower()), (self._exact, plain)):
            if compiled is None:
                continue
            regex, each = compiled
            for start in {m.start() for m in regex.finditer(haystack)}:
                hits = [(m.end(), value, tag) for r, value, tag in each if (m := r.match(haystack, start))]
                end, value, tag = max(hits, key=lambda hit: hit[0])
                matches.append(LexiconMatch(value, start, end, tag))
        return _non_overlapping(matches)


def _non_overlapping(matches: list[LexiconMatch]) -> list[LexiconMatch]:
    """Leftmost first; at one start the longest match."""
    kept: list[LexiconMatch] = []
    for match in sorted(matches, key=lambda m: (m.start, m.start - m.end)):
        if not kept or match.start >= kept[-1].end:
            kept.append(match)
    return kept


@dataclass(frozen=True)
class Categories:
    """The shipped categories (ids per attribute) and the lexicons the rule extractor uses."""

    ids: dict[str, tuple[str, ...]]
    labels: dict[str, dict[str, str]]
    age_ranges: tuple[tuple[str, int, int], ...]
    region_of: dict[str, str]
    education_rank: dict[str, int]
    overriding_occupations: frozenset[str]
    gender_strong: Lexicon
    gender_weak: Lexicon
    education: Lexicon
    occupation_titles: Lexicon
    occupation_keywords: Lexicon
    places: Lexicon
    place_codes: dict[str, str]
    """US state / Canadian province codes ("MA") -> country, read only after "City, "."""
    raw: dict[str, Any]

    def age_group(self, low: int, high: int | None = None) -> str:
        """The group holding every age in low..high (one age when `high` is None); unknown if they span two."""
        high = low if high is None else high
        for group, lo, hi in self.age_ranges:
            if lo <= low <= hi:
                return group if high <= hi else UNKNOWN
        return UNKNOWN


def category_ids(attribute: str) -> list[str]:
    """The category ids of an attribute (a key of `ATTRIBUTES` or "region")."""
    ids = load_categories().ids
    if attribute not in ids:
        raise KeyError(f"unknown persona attribute {attribute!r}; known: {sorted(ids)}")
    return list(ids[attribute])


def region_of(country: str | None) -> str:
    """The region of a country id; unknown for unknown or unlisted countries."""
    return load_categories().region_of.get(country or "", UNKNOWN)


@lru_cache(maxsize=4)
def load_categories(path: str | None = None) -> Categories:
    """Read and compile the categories file (the shipped one by default); cached."""
    raw = json.loads(Path(path or CATEGORIES_FILE).read_text(encoding="utf-8"))
    countries = raw["countries"]
    sectors = raw["occupation"]
    ids = {
        "country": tuple(c["name"] for c in countries),
        "region": tuple(raw["regions"]),
        "age": tuple(g["id"] for g in raw["age"]),
        "gender": tuple(g["id"] for g in raw["gender"]),
        "education": tuple(level["id"] for level in raw["education"]),
        "occupation": tuple(s["id"] for s in sectors),
    }
    return Categories(
        ids=ids,
        labels={
            "occupation": {s["id"]: s["label"] for s in sectors},
            "education": {level["id"]: level["label"] for level in raw["education"]},
        },
        age_ranges=tuple((g["id"], g["min"], g["max"]) for g in raw["age"]),
        region_of={c["name"]: c["region"] for c in countries},
        education_rank={level["id"]: rank for rank, level in enumerate(raw["education"])},
        overriding_occupations=frozenset(s["id"] for s in sectors if s.get("overrides")),
        gender_strong=Lexicon([(w, g["id"], "") for g in raw["gender"] for w in g["strong"]]),
        gender_weak=Lexicon([(w, g["id"], "") for g in raw["gender"] for w in g["weak"]]),
        education=Lexicon(
            [(w, level["id"], "") for level in raw["education"] for w in level["keywords"]]
            + [(w, None, "ignored") for w in raw.get("education_ignore", [])]
        ),
        # titles may be plural ("a team of consultants")
        occupation_titles=Lexicon([(f"(?:{w})(?:e?s)?", s["id"], "") for s in sectors for w in s["titles"]]),
        occupation_keywords=Lexicon([(w, s["id"], "") for s in sectors for w in s["keywords"]]),
        places=_places_lexicon(countries, raw.get("ignore_places", [])),
        place_codes={code: name for name, codes in raw.get("place_codes", {}).items() for code in codes},
        raw=raw,
    )


def _places_lexicon(countries: list[dict[str, Any]], ignored: list[str]) -> Lexicon:
    entries: list[tuple[str, str | None, str]] = [(p, None, "ignored") for p in ignored]
    for country in countries:
        name = country["name"]
        entries.append((re.escape(name.lower()), name, "name"))
        entries += [(_literal(a), name, "name") for a in country["aliases"]]
        entries += [(_literal(p), name, "place") for p in country["places"]]
        entries += [(_literal(d), name, "demonym") for d in country["demonyms"]]
    return Lexicon(entries)


def _literal(term: str) -> str:
    """Country terms are plain text (dots and apostrophes included), unlike the regex lexicons."""
    return re.escape(term)
