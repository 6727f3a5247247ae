"""Scores of one model's interviews: `attribute_entropy` per attribute over the shipped categories, averaged,
with unknown answers and flags counted apart; and the reference distributions they are compared with."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from peft_diversity.errors import PersonaError
from peft_diversity.jsonl import read_json
from peft_diversity.persona.categories import ATTRIBUTES, REPORTED, UNKNOWN, category_ids
from peft_diversity.persona.extract import FLAGS, Extraction
from peft_diversity.scoring.bias import attribute_entropy

Reference = Mapping[str, Mapping[str, float]]


def load_reference(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """A reference file: {attribute: {category: weight}} for any of the reported attributes (others uniform)."""
    data = read_json(
        path, error=PersonaError, hint="a reference is a JSON object {attribute: {category: weight}}"
    )
    if not isinstance(data, dict):
        raise PersonaError(f"{path}: a reference is a JSON object {{attribute: {{category: weight}}}}")
    return validate_reference(data, str(path))


def validate_reference(data: Mapping[str, Any], where: str = "reference") -> dict[str, dict[str, float]]:
    """Check attribute names, category ids and weights (non-negative numbers, positive sum)."""
    out: dict[str, dict[str, float]] = {}
    for attribute, weights in data.items():
        if attribute not in REPORTED:
            raise PersonaError(f"{where}: unknown attribute {attribute!r}; known: {list(REPORTED)}")
        if not isinstance(weights, Mapping) or not weights:
            raise PersonaError(f"{where}: {attribute} must map categories to weights")
        unknown = sorted(set(weights) - set(category_ids(attribute)))
        if unknown:
            raise PersonaError(
                f"{where}: unknown {attribute} categories {unknown}; see persona_categories.json"
            )
        if (
            any(
                not isinstance(w, int | float) or isinstance(w, bool) or w < 0 or not math.isfinite(w)
                for w in weights.values()
            )
            or sum(weights.values()) <= 0
        ):
            raise PersonaError(
                f"{where}: {attribute} weights must be non-negative numbers with a positive sum"
            )
        out[attribute] = {c: float(w) for c, w in weights.items()}
    return out


def score_attribute(
    values: Sequence[str], attribute: str, reference: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """`attribute_entropy` over the shipped categories of `attribute`; a reference that gives no mass to an
    observed category makes the KL infinite, reported as None with a `kl_note`."""
    categories = category_ids(attribute)
    scores = attribute_entropy(values, reference, categories, strict_reference=False)
    scores["normalized_entropy_interval"] = entropy_interval(values, len(categories))
    return scores


def entropy_interval(
    values: Sequence[str], num_categories: int, num_samples: int = 2000, seed: int = 0, level: float = 0.95
) -> list[float] | None:
    """Percentile bootstrap interval of the normalised entropy of the known values, resampling conversations
    (unknown answers included, so the number of known answers varies as it would in a rerun). None without a
    known answer or with a single category. The plug-in entropy is biased low on small samples, so the interval
    tends to sit below the point estimate: read it for its width."""
    import numpy as np

    from peft_diversity.scoring.paired import percentile_interval

    known = sorted({v for v in values if v != UNKNOWN})
    if not known or num_categories < 2:
        return None
    index = {c: i for i, c in enumerate(known)}
    coded = np.array([index.get(v, -1) for v in values])
    samples = coded[np.random.default_rng(seed).integers(0, len(coded), size=(num_samples, len(coded)))]
    # one bincount for all resamples: resample r's category c lands in bin r * len(known) + c
    rows = np.broadcast_to(np.arange(num_samples)[:, None], samples.shape)
    keep = samples >= 0
    counts = np.bincount(rows[keep] * len(known) + samples[keep], minlength=num_samples * len(known))
    counts = counts.reshape(num_samples, len(known))
    p = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)  # a resample without known answers: all 0
    plogp = p * np.log2(np.where(p > 0, p, 1.0))  # 0 log 0 = 0
    entropies = -plogp.sum(axis=1) / math.log2(num_categories)
    low, high = percentile_interval(entropies, level)
    return [max(0.0, low), high]


def score_extractions(
    extractions: Sequence[Extraction], references: Reference | None = None
) -> dict[str, Any]:
    """Per-attribute scores (`REPORTED`), their means, and flag counts: flagged answers and conversations with
    any; `contradiction_rate` is the share of conversations with a contradiction.

    The means run over the interview attributes (`ATTRIBUTES`; region repeats country) that have at least one
    known answer, listed in `mean_attributes`: an attribute the model never settled has no entropy, not 0.
    The mean KL is None when one of them is infinite (`mean_kl_note` says so)."""
    references = references or {}
    per = {
        a: score_attribute([e.values.get(a, UNKNOWN) for e in extractions], a, references.get(a))
        for a in REPORTED
    }
    with_data = [a for a in ATTRIBUTES if per[a]["num_known"]]
    infinite = [a for a in with_data if per[a].get("kl_note")]
    flags = {
        flag: {
            "answers": sum(len(e.flags.get(flag, [])) for e in extractions),
            "conversations": sum(1 for e in extractions if e.flags.get(flag)),
        }
        for flag in FLAGS
    }
    scores = {
        "num_conversations": len(extractions),
        "mean_normalized_entropy": _mean([per[a]["normalized_entropy"] for a in with_data]),
        "mean_attributes": with_data,
        "mean_kl_to_reference": None if infinite else _mean([per[a]["kl_to_reference"] for a in with_data]),
        "mean_unknown_rate": _mean([per[a]["unknown_rate"] for a in ATTRIBUTES]),
        "contradiction_rate": flags["contradiction"]["conversations"] / len(extractions)
        if extractions
        else None,
        "attributes": per,
        "flags": flags,
    }
    if infinite:
        scores["mean_kl_note"] = f"infinite: the KL of {', '.join(infinite)} is infinite"
    return scores


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None
