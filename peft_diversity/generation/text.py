"""Text clean-up shared by every decoder (echoes, labels, next-turn cuts) and the listing baseline's parser."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from peft_diversity.templates import (
    LISTING_SENTENCE,
    PossibilityTemplate,
)

logger = logging.getLogger(__name__)


# ----- clean-up ----------------------------------------------------------------------------------------------
ROLE_LABELS = ("assistant", "user", "system")
_NUMBERED_LABEL = r"(?:response|reply|answer|possibility|option)\s*(?:number\s*)?#?\s*\d*"


def clean_response(text: str, *, speakers: Iterable[str] = (), echoes: Iterable[str] = ()) -> str:
    """Normalise one generated response; every decoder's outputs go through this one function.

    1. Template echoes are removed: each string of `echoes` (e.g. the possibility sentence) wherever it occurs,
       matched case- and spacing-insensitively (WordPiece decoding puts spaces around punctuation); a string
       with `{k}` matches any number there.
    2. Leading labels are stripped, repeatedly: a known speaker (`Maya:`), a chat role (`assistant:`) or a
       numbered label (`Response 2:`, `possibility #3:`).
    3. The text is cut where a new turn starts: a chat role label anywhere after the start, or a known speaker
       label at a line start or after a sentence end.
    4. Whitespace is normalised: runs of spaces/tabs become one space, lines are stripped, blank lines dropped.
    """
    text = strip_echoes(text, echoes)
    names = [name for name in {str(s).strip() for s in speakers} if name]
    labels = [_loose_pattern(name).pattern for name in names] + list(ROLE_LABELS) + [_NUMBERED_LABEL]
    leading = re.compile(rf"^\s*(?:{'|'.join(labels)})\s*:\s*", re.IGNORECASE)
    while (match := leading.match(text)) and match.end() > 0:
        text = text[match.end() :]
    text = _cut_at_next_turn(text, names)
    lines = (re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def strip_echoes(text: str, echoes: Iterable[str]) -> str:
    """`text` without any occurrence of the `echoes` (see `clean_response`, step 1)."""
    for echo in echoes:
        if echo and echo.strip():
            text = _loose_pattern(echo).sub(" ", text)
    return text


def _loose_pattern(text: str) -> re.Pattern:
    """Regex for `text` ignoring case and spacing between words/punctuation; `{k}` / `{count}` match a number."""
    parts = [
        r"\d+" if piece in ("{k}", "{count}") else re.escape(piece)
        for piece in re.findall(r"\{(?:k|count)\}|\w+|[^\w\s]", text)
    ]
    return re.compile(r"\s*".join(parts), re.IGNORECASE)


def _cut_at_next_turn(text: str, speakers: Sequence[str]) -> str:
    roles = rf"(?:^|(?<=\s))(?:{'|'.join(ROLE_LABELS)})\s*:"
    cuts = [m.start() for m in re.finditer(roles, text, re.IGNORECASE) if m.start() > 0]
    if speakers:
        names = "|".join(_loose_pattern(name).pattern for name in speakers)
        turn = rf"(?:\n|(?<=[.!?])\s+)\s*(?:{names})\s*:"
        cuts += [m.start() for m in re.finditer(turn, text, re.IGNORECASE) if m.start() > 0]
    return text[: min(cuts)] if cuts else text


def clean_for_record(text: str, record: dict[str, Any], template: PossibilityTemplate) -> str:
    """`clean_response` with the record's speakers and the template's sentences as echoes."""
    return clean_response(text, speakers=_speakers(record), echoes=_template_echoes(template))


def listing_text(text: str, record: dict[str, Any], template: PossibilityTemplate) -> str:
    """A listing generation made ready to parse: template echoes removed, cut where a new turn starts.

    Numbered labels are the list markers here, so they stay until `parse_numbered_list` has split the items.
    """
    return _cut_at_next_turn(strip_echoes(text, _template_echoes(template)), _speakers(record))


def _speakers(record: dict[str, Any]) -> list[str]:
    source = record.get("context")
    if isinstance(source, list):
        return [str(turn["speaker"]) for turn in source if isinstance(turn, dict) and turn.get("speaker")]
    return []


def _template_echoes(template: PossibilityTemplate) -> list[str]:
    return [template.possibility_sentence, template.plain_sentence, LISTING_SENTENCE]


# ----- listing parse -----------------------------------------------------------------------------------------
@dataclass
class ListParse:
    """Items parsed from a listing-prompt generation."""

    items: list[str]
    """Non-empty items, in list order (at most K)."""
    failures: list[int]
    """Numbers 1..K that were missing or empty."""


_MARKER = re.compile(
    r"(?:^|(?<=\s)|(?<=[.!?:;]))(?:(?:response|possibility|option|reply|answer)\s*(?:number\s*)?)?"
    r"#?\s*(\d{1,3})\s*(?:[.):]|\s-)(?=\s|$)",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^\s*[-*\u2022]\s+(.*)$")


def parse_numbered_list(text: str, count: int) -> ListParse:
    """Split a generation into K responses: "1." / "1)" / "#1:" / "Response 1:" markers, else bullets, else lines.

    Numbered markers are accepted only in sequence (1, 2, 3, ...), so a stray number inside a response does
    not split it; markers need not start a line (some tokenizers drop newlines). Missing or empty items are
    reported in `failures`; items past K are ignored.
    """
    items = _numbered_items(text) or _bullet_items(text) or _line_items(text)
    items = items[:count] + [""] * max(0, count - len(items))
    failures = [i for i, item in enumerate(items, start=1) if not item.strip()]
    return ListParse([item.strip() for item in items if item.strip()], failures)


def _numbered_items(text: str) -> list[str]:
    accepted: list[re.Match] = []
    for match in _MARKER.finditer(text):
        if int(match.group(1)) == len(accepted) + 1:
            accepted.append(match)
    if not accepted:
        return []
    ends = [m.start() for m in accepted[1:]] + [len(text)]
    return [text[m.end() : end].strip() for m, end in zip(accepted, ends, strict=True)]


def _bullet_items(text: str) -> list[str]:
    items: list[str] = []
    for line in text.splitlines():
        if match := _BULLET.match(line):
            items.append(match.group(1))
        elif items and line.strip():
            items[-1] += " " + line.strip()
    return items


def _line_items(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]
