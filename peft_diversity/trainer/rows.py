"""Training rows: each one-to-many record becomes N positives (k_i, candidate_i) and, in `poexft` mode,
negatives (k_i, candidate_j != i) for the unlikelihood term."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from peft_diversity.errors import DataValidationError, TrainConfigError

MODES = ("poexft", "otm", "oto")
# each mode's name and Hub tag on model cards (TRL's and ours): the baselines are trained by the same recipe but are
# not PoExFT, so their cards must not say they are
MODE_CARDS = {
    "poexft": ("PoExFT", "poexft"),
    "otm": ("OTMFT (PoExFT's one-to-many baseline)", "otmft"),
    "oto": ("OTOFT (PoExFT's one-to-one baseline)", "otoft"),
}


# ----- training rows ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingRow:
    """One (prompt, response) pair: a positive trains by MLE, a negative by unlikelihood."""

    record_index: int
    k: int | None
    response: str
    negative: bool


def truncate_words(text: str, max_words: int | None) -> str:
    words = text.split()
    return text if max_words is None or len(words) <= max_words else " ".join(words[:max_words])


def build_training_rows(
    records: list[dict[str, Any]],
    mode: str = "poexft",
    num_candidates: int = 4,
    max_possibility: int = 9,
    max_negatives: int | None = None,
    seed: int = 0,
    max_response_words: int | None = None,
) -> list[TrainingRow]:
    """Expand records into training rows.

    poexft: N candidates get N distinct k from 1..max_possibility; positives (k_i, cand_i) and negatives
    (k_i, cand_j), j != i, at most `max_negatives` per record (None = all N(N-1)).
    otm: the same N candidates untagged, positives only. oto: one candidate per record, untagged.
    """
    check_row_settings(mode, num_candidates, max_possibility, max_negatives)
    rng = random.Random(seed)
    rows: list[TrainingRow] = []
    for index, record in enumerate(records):
        cands = record["candidates"]
        if len(cands) < num_candidates:
            raise DataValidationError(
                f"record {record.get('id', index)!r}: field 'candidates': has {len(cands)}, "
                f"fewer than num_candidates={num_candidates}"
            )
        chosen = [truncate_words(c, max_response_words) for c in rng.sample(cands, num_candidates)]
        if mode == "oto":
            rows.append(TrainingRow(index, None, chosen[0], False))
        elif mode == "otm":
            rows.extend(TrainingRow(index, None, c, False) for c in chosen)
        else:
            ks = rng.sample(range(1, max_possibility + 1), num_candidates)
            rows.extend(TrainingRow(index, k, c, False) for k, c in zip(ks, chosen, strict=True))
            pairs = [(i, j) for i in range(num_candidates) for j in range(num_candidates) if i != j]
            if max_negatives is not None and max_negatives < len(pairs):
                pairs = rng.sample(pairs, max_negatives)
            rows.extend(TrainingRow(index, ks[i], chosen[j], True) for i, j in pairs)
    return rows


def check_row_settings(
    mode: str, num_candidates: int, max_possibility: int, max_negatives: int | None = None
) -> None:
    """THE check of the row settings (PossibilityConfig's and build_training_rows' own): TrainConfigError naming
    the setting, raised before any model loads."""
    if mode not in MODES:
        raise TrainConfigError(f"unknown mode {mode!r}; choose one of {MODES}")
    if num_candidates < 1:
        raise TrainConfigError(f"num_candidates must be >= 1, got {num_candidates}")
    if mode == "poexft" and max_possibility < num_candidates:
        raise TrainConfigError(
            f"max_possibility ({max_possibility}) must be >= num_candidates ({num_candidates}): each candidate of "
            "a context needs its own possibility number"
        )
    if max_negatives is not None and max_negatives < 0:
        raise TrainConfigError(f"max_negatives must be >= 0 or None, got {max_negatives}")
