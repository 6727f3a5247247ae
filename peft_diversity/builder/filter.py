"""Per-record candidate selection: parse, clean, drop empty / echo / duplicate / near-duplicate candidates."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from peft_diversity.builder.inputs import InputItem, echo_keys, encodable, normalise
from peft_diversity.builder.teachers import TeacherFailure
from peft_diversity.errors import BuildError
from peft_diversity.templates import (
    PossibilityTemplate,
)

logger = logging.getLogger(__name__)


# ----- per-record candidate selection ---------------------------------------------------------------------------
DROP_REASONS = ("empty", "invalid_utf8", "echo", "duplicate", "near_duplicate", "surplus")


@dataclass
class CandidateState:
    """Candidates gathered so far for one input, and what was dropped on the way."""

    item: InputItem
    record: dict[str, Any]
    kept: list[str] = field(default_factory=list)
    kept_norm: set[str] = field(default_factory=set)
    kept_emb: list[np.ndarray] = field(default_factory=list)
    attempts: int = 0
    parse_failures: list[list[int]] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    error: TeacherFailure | None = None


def parse_reply(
    raw: str, record: dict[str, Any], n: int, template: PossibilityTemplate
) -> tuple[list[str], list[int]]:
    """(cleaned items, numbers 1..N that were missing) of one listing reply; items may be empty after cleaning."""
    from peft_diversity.generation.text import clean_for_record, listing_text, parse_numbered_list

    parsed = parse_numbered_list(listing_text(raw, record, template), n)
    return [clean_for_record(item, record, template) for item in parsed.items], parsed.failures


class CandidateFilter:
    """Exact and semantic de-duplication against the candidates already kept for the same input.

    Semantic: a candidate whose SBERT cosine with a kept sibling is above `threshold` is a near-duplicate;
    `embedder=False` (or threshold >= 1) turns this off. One encode call per batch of inputs.
    """

    def __init__(self, threshold: float = 0.9, embedder: Any = None) -> None:
        if not 0.0 < threshold <= 1.0:
            raise BuildError(f"similarity_threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.semantic = embedder is not False and threshold < 1.0
        self.embedder = None if embedder is False else embedder

    def text_pass(self, state: CandidateState, items: list[str]) -> list[str]:
        """Drop empty items, unwritable ones (a lone surrogate), echoes of the input and exact duplicates; the rest
        still needs the semantic pass."""
        echoes = echo_keys(state.item.source)
        fresh: list[str] = []
        seen = set(state.kept_norm)
        for item in items:
            norm = normalise(item)
            reason = (
                "empty"
                if not norm
                else "invalid_utf8"
                if not encodable(item)
                else "echo"
                if norm in echoes
                else "duplicate"
                if norm in seen
                else None
            )
            if reason:
                state.dropped[reason] += 1
            else:
                seen.add(norm)
                fresh.append(item)
        return fresh

    def keep(self, batch: list[tuple[CandidateState, list[str]]], n: int) -> None:
        """Keep candidates in order until N, skipping near-duplicates of kept ones (ONE encode for the batch)."""
        texts = [text for _, items in batch for text in items]
        emb = self._encode(texts)
        row = 0
        for state, items in batch:
            for text in items:
                vector, row = (emb[row] if emb is not None else None), row + 1
                if len(state.kept) >= n:
                    state.dropped["surplus"] += 1
                elif (
                    vector is not None
                    and state.kept_emb
                    and max(float(k @ vector) for k in state.kept_emb) > self.threshold
                ):
                    state.dropped["near_duplicate"] += 1
                else:
                    state.kept.append(text)
                    state.kept_norm.add(normalise(text))
                    if vector is not None:
                        state.kept_emb.append(vector)

    def _encode(self, texts: list[str]) -> np.ndarray | None:
        if not self.semantic or not texts:
            return None
        from peft_diversity.scoring.embeddings import encode_texts

        return encode_texts(texts, self.embedder)
