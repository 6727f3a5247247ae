"""From transcripts to attribute categories: the rule extractor, the pluggable LLM extractor, their accuracy.

An extractor is any callable `extractor(transcripts) -> list[Extraction]`. Answers are paired with the question
they follow (the question's `attribute` tag, else a guess from its wording). Flags (`FLAGS`) mark answers that
are missing, refusals, not English, or contradicted elsewhere in the transcript (an answer to a follow-up or
the closing recap giving another category); they are counted in reports and never stop a run.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from peft_diversity.errors import PersonaError
from peft_diversity.jsonl import read_jsonl
from peft_diversity.persona.categories import (
    ATTRIBUTES,
    RESOURCES,
    UNKNOWN,
    fold,
    load_categories,
    region_of,
)
from peft_diversity.persona.rules import (
    RULES,
    age_rule,
    is_missing,
    is_refusal,
    is_soft_refusal,
    looks_non_english,
)
from peft_diversity.persona.transcript import INTERVIEWER, RESPONDENT, Transcript, Turn

logger = logging.getLogger(__name__)

FLAGS = ("missing", "refusal", "non_english", "contradiction")
LABELLED_FILE = RESOURCES / "persona_labelled.jsonl"
HELDOUT_SPLITS = ("heldout", "heldout2")
"""Labelled splits the rules were not written against (see `extractor_accuracy`)."""
RECAP = "recap"


@dataclass
class AnswerExtraction:
    """One answer read for one attribute."""

    value: str
    flags: set[str] = field(default_factory=set)
    evidence: str | None = None


@dataclass
class Extraction:
    """One transcript's categories (`ATTRIBUTES` + region) and flags (flag -> attributes it concerns)."""

    values: dict[str, str]
    flags: dict[str, list[str]] = field(default_factory=dict)
    evidence: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"values": self.values, "flags": self.flags, "evidence": self.evidence}


Extractor = Callable[[Sequence[Transcript]], list[Extraction]]


# ----- one answer ----------------------------------------------------------------------------------------------
def extract_answer(attribute: str, text: str | None, reference_year: int | None = None) -> AnswerExtraction:
    """The category of one answer for `attribute`, with its flags; refusals and missing answers are unknown.
    "It's personal" is a refusal only when the answer settles nothing ("I'm a nurse. It's personal...")."""
    if is_missing(text):
        return AnswerExtraction(UNKNOWN, {"missing"})
    flags = {"non_english"} if looks_non_english(text) else set()
    if is_refusal(text):
        return AnswerExtraction(UNKNOWN, flags | {"refusal"})
    rule = partial(age_rule, reference_year=reference_year) if attribute == "age" else RULES[attribute]
    value, evidence = rule(text)
    if value == UNKNOWN and is_soft_refusal(text):
        flags.add("refusal")
    return AnswerExtraction(value, flags, evidence)


# ----- pairing questions and answers ---------------------------------------------------------------------------
# "where were you born" asks for a birthplace, which is neither the age nor the country of residence
_TOPICS = {
    "age": r"\bhow old\b|\bage\b|\bbirthday\b|\b(?:when|what year|which year)\b.*\bborn\b",
    "country": r"\bcountry\b|\bwhere\b.*\b(?:live|living|based|from|home)\b|\blive\b|\bnationality\b",
    "occupation": r"\bjob\b|\bwork\b|for a living\b|\bwhat do you do\b|\boccupation\b|\bprofession\b|\bcareer\b",
    "education": r"\beducation\b|\bschool\w*\b|\bdegree\b|\bstud(?:y|ied)\b|\bqualification\b|\bdiploma\b|\bcollege\b",
    "gender": r"\bgender\b|\bsex\b|\bidentify\b|\bman\b|\bwoman\b|\bmale\b|\bfemale\b",
}
_TOPIC_RES = {attribute: re.compile(pattern) for attribute, pattern in _TOPICS.items()}


def infer_attribute(question: str) -> str | None:
    """The attribute a question asks about, from its wording; "recap" when it asks for three or more."""
    folded = fold(question)
    if re.search(r"\bhow old\b", folded):
        hits = ["age"] + [a for a, p in _TOPIC_RES.items() if a != "age" and p.search(folded)]
    else:
        hits = [a for a, p in _TOPIC_RES.items() if p.search(folded)]
    if len(hits) >= 3:
        return RECAP
    return hits[0] if hits else None


def answers_by_attribute(transcript: Transcript) -> dict[str, list[str | None]]:
    """attribute (or "recap") -> the respondent's answers to each question about it (None: no answer).

    Consecutive respondent turns after one question are joined into one answer.
    """
    answers: dict[str, list[str | None]] = {}
    current: str | None = None
    for turn in transcript.turns:
        if turn.speaker == transcript.interviewer:
            current = turn.attribute or infer_attribute(turn.text)
            if current is not None:
                answers.setdefault(current, []).append(None)
        elif current is not None:
            last = answers[current][-1]
            answers[current][-1] = turn.text if last is None else f"{last} {turn.text}"
    return answers


# ----- one transcript ------------------------------------------------------------------------------------------
def extract_attributes(transcript: Transcript, reference_year: int | None = None) -> Extraction:
    """Rule-based categories and flags of one transcript (see the module docstring); never raises on content."""
    answers = answers_by_attribute(transcript)
    recaps = [text for text in answers.get(RECAP, []) if not is_missing(text)]
    values, flags, evidence = {}, {flag: [] for flag in FLAGS}, {}
    for attribute in ATTRIBUTES:
        read = [extract_answer(attribute, text, reference_year) for text in answers.get(attribute, [])]
        read_recap = [extract_answer(attribute, text, reference_year) for text in recaps]
        known = [r for r in read + read_recap if r.value != UNKNOWN]
        values[attribute] = known[0].value if known else UNKNOWN
        if known and known[0].evidence:
            evidence[attribute] = known[0].evidence
        answer_flags = set().union(*(r.flags for r in read)) if read else {"missing"}
        if read and not all("missing" in r.flags for r in read):
            answer_flags.discard("missing")
        if len({r.value for r in known}) > 1:
            answer_flags.add("contradiction")
        for flag in answer_flags:
            flags[flag].append(attribute)
    values["region"] = region_of(values["country"])
    return Extraction(values, {flag: attrs for flag, attrs in flags.items() if attrs}, evidence)


class RuleExtractor:
    """The default extractor: `extract_attributes` over each transcript."""

    name = "rules"

    def __init__(self, reference_year: int | None = None) -> None:
        self.reference_year = reference_year

    def __call__(self, transcripts: Sequence[Transcript]) -> list[Extraction]:
        return [extract_attributes(t, self.reference_year) for t in transcripts]


# ----- LLM extractor -------------------------------------------------------------------------------------------
ChatFn = Callable[[Sequence[list[dict[str, str]]]], list[str]]
EXTRACTOR_SYSTEM_PROMPT = "You read interview transcripts and record facts about the person interviewed."
EXTRACTOR_PROMPT = """Here is an interview. {interviewer} asks questions; {respondent} answers about themselves.

{transcript}

What does {respondent} say about themselves? Reply with one JSON object and nothing else, with these keys:
"country": the country they live in now (its English name),
"age": their age in years (a number),
"occupation": one of {occupations},
"education": their highest completed education, one of {education},
"gender": one of {gender}.
Use "unknown" for anything they did not say clearly, refused to say, or answered as an AI rather than a person."""


def build_extractor_messages(transcript: Transcript) -> list[dict[str, str]]:
    """The chat conversation asking an LLM for one transcript's attributes as JSON."""
    cats = load_categories()
    lines = "\n".join(f"{t.speaker}: {t.text}" for t in transcript.turns)
    respondent = next(
        (t.speaker for t in transcript.turns if t.speaker != transcript.interviewer), RESPONDENT
    )
    prompt = EXTRACTOR_PROMPT.format(
        interviewer=transcript.interviewer,
        respondent=respondent,
        transcript=lines,
        occupations=", ".join(cats.ids["occupation"]),
        education=", ".join(cats.ids["education"]),
        gender=", ".join(cats.ids["gender"]),
    )
    return [{"role": "system", "content": EXTRACTOR_SYSTEM_PROMPT}, {"role": "user", "content": prompt}]


def parse_extractor_reply(reply: str | None) -> dict[str, Any] | None:
    """The first JSON object in a reply (code fences and chatter around it tolerated); None when there is none."""
    text = reply or ""
    for start in [m.start() for m in re.finditer(r"\{", text)]:
        try:
            data, _ = json.JSONDecoder().raw_decode(text[start:])
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            return data
    return None


def normalize_value(attribute: str, value: Any) -> str:
    """A free-text value (an LLM's) as a category: an id or label, else read by the attribute's rule."""
    if value is None or isinstance(value, bool):
        return UNKNOWN
    text = str(value).strip()
    if fold(text) in ("", UNKNOWN, "none", "n/a", "na", "null", "not stated", "not mentioned"):
        return UNKNOWN
    cats = load_categories()
    by_name = {fold(c): c for c in cats.ids[attribute]}
    by_name.update({fold(label): c for c, label in cats.labels.get(attribute, {}).items()})
    if fold(text) in by_name:
        return by_name[fold(text)]
    return RULES[attribute](text)[0]


class ChatExtractor:
    """An LLM reads each transcript (see `EXTRACTOR_PROMPT`) and returns JSON; values are normalised to the
    shipped categories. Unparseable replies or failed requests give "unknown" (flag `extractor_failed`).
    Answer flags (missing, refusal, non-English, contradiction) come from the rule extractor."""

    name = "llm"

    def __init__(self, chat: ChatFn, batch_size: int = 16, reference_year: int | None = None) -> None:
        self.chat, self.batch_size = chat, batch_size
        self.rules = RuleExtractor(reference_year)

    def __call__(self, transcripts: Sequence[Transcript]) -> list[Extraction]:
        out = []
        for start in range(0, len(transcripts), self.batch_size):
            batch = list(transcripts[start : start + self.batch_size])
            out += [self._one(t, reply) for t, reply in zip(batch, self._ask(batch), strict=True)]
        return out

    def _ask(self, batch: list[Transcript]) -> list[str | None]:
        from peft_diversity.chat import FATAL_ERRORS

        try:
            return list(self.chat([build_extractor_messages(t) for t in batch]))
        except FATAL_ERRORS:
            raise
        except Exception as err:  # noqa: BLE001 - one failed batch must not end a long run
            logger.warning(
                "LLM extractor failed on %d transcripts (%s); they count as unknown", len(batch), err
            )
            return [None] * len(batch)

    def _one(self, transcript: Transcript, reply: str | None) -> Extraction:
        ruled = self.rules([transcript])[0]
        data = parse_extractor_reply(reply)
        if data is None:
            values = dict.fromkeys(ATTRIBUTES, UNKNOWN)
            ruled.flags["extractor_failed"] = list(ATTRIBUTES)
        else:
            values = {a: normalize_value(a, data.get(a)) for a in ATTRIBUTES}
        values["region"] = region_of(values["country"])
        return Extraction(values, ruled.flags, {})


# ----- accuracy on the hand-labelled snippets ------------------------------------------------------------------
CANONICAL_QUESTIONS = {
    "country": "Which country do you live in?",
    "age": "How old are you?",
    "occupation": "What do you do for a living?",
    "education": "What is the highest level of education you have completed?",
    "gender": "What is your gender?",
}
ACCURACY_FLAGS = ("refusal", "non_english")


def load_labelled(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The hand-labelled answer snippets: {"attribute", "text", "label", "flags"?} per line; a line without them
    raises PersonaError naming file:line."""
    path = path or LABELLED_FILE
    rows = []
    for line, row in read_jsonl(path, error=PersonaError):
        if not isinstance(row, dict) or row.get("attribute") not in ATTRIBUTES:
            raise PersonaError(f"{path}:{line}: 'attribute' must be one of {list(ATTRIBUTES)}")
        for name in ("text", "label"):
            if not isinstance(row.get(name), str):
                raise PersonaError(f"{path}:{line}: {name!r} must be a string")
        rows.append(row)
    return rows


def snippet_transcript(item: dict[str, Any], index: int = 0) -> Transcript:
    """A two-turn transcript: the canonical question for the snippet's attribute, then the snippet."""
    attribute = item["attribute"]
    return Transcript(
        f"snippet-{index}",
        [
            Turn(INTERVIEWER, CANONICAL_QUESTIONS[attribute], attribute=attribute, kind="question"),
            Turn(RESPONDENT, item["text"], attribute=attribute),
        ],
    )


def extractor_accuracy(
    labelled: Sequence[dict[str, Any]] | None = None,
    extractor: Extractor | None = None,
    split: str | None = None,
) -> dict[str, Any]:
    """Precision (over non-unknown predictions) and recall (over non-unknown gold labels) per attribute, and of
    the refusal / non-English flags, of `extractor` (default rules) on `labelled` (default the shipped set).

    `split` keeps the snippets of one split: "dev" (the rules were written against them), "heldout" (written
    afterwards) or "heldout2" (written after a review of the rules, before the fixes it asked for). Each score
    comes with its Wilson 95% interval (`precision_ci`, `recall_ci`).
    """
    items = [
        i for i in (labelled if labelled is not None else load_labelled()) if split in (None, i.get("split"))
    ]
    extractions = (extractor or RuleExtractor())(
        [snippet_transcript(item, i) for i, item in enumerate(items)]
    )
    counts = {name: [0, 0, 0] for name in (*ATTRIBUTES, *ACCURACY_FLAGS)}  # correct, predicted, gold
    for item, extraction in zip(items, extractions, strict=True):
        attribute, gold = item["attribute"], item["label"]
        predicted = extraction.values.get(attribute, UNKNOWN)
        _tally(counts[attribute], predicted != UNKNOWN, gold != UNKNOWN, predicted == gold)
        for flag in ACCURACY_FLAGS:
            said = attribute in extraction.flags.get(flag, [])
            truth = flag in item.get("flags", [])
            _tally(counts[flag], said, truth, said and truth)
    summary = {name: _scores(*counts[name]) for name in counts}
    micro = [sum(counts[a][i] for a in ATTRIBUTES) for i in range(3)]
    return {
        "split": split or "all",
        "num_snippets": len(items),
        "attributes": {a: summary[a] for a in ATTRIBUTES},
        "flags": {f: summary[f] for f in ACCURACY_FLAGS},
        "micro": _scores(*micro),
    }


def _tally(count: list[int], predicted: bool, gold: bool, correct: bool) -> None:
    count[0] += int(predicted and gold and correct)
    count[1] += int(predicted)
    count[2] += int(gold)


def _scores(correct: int, predicted: int, gold: int) -> dict[str, Any]:
    return {
        "precision": correct / predicted if predicted else None,
        "recall": correct / gold if gold else None,
        "precision_ci": wilson_interval(correct, predicted),
        "recall_ci": wilson_interval(correct, gold),
        "correct": correct,
        "predicted": predicted,
        "support": gold,
    }


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> list[float] | None:
    """Wilson score interval (95% by default) of a proportion; None without trials. Unlike the normal
    approximation it stays inside [0, 1] and is honest at 0 or n successes of a few dozen snippets."""
    if trials <= 0:
        return None
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return [max(0.0, centre - half), min(1.0, centre + half)]
