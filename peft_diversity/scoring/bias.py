"""Entropy of categorical attributes (e.g. the genders of generated personas) and KL to a reference."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

UNKNOWN_VALUES = ("unknown", "")


def _is_unknown(value: Any, unknown_values: Iterable[str]) -> bool:
    return value is None or str(value).strip().lower() in {u.lower() for u in unknown_values}


def _reference(categories: list[str], reference: Mapping[str, float] | None) -> dict[str, float]:
    if reference is None:
        return {c: 1.0 / len(categories) for c in categories} if categories else {}
    total = float(sum(reference.values()))
    if total <= 0 or any(v < 0 for v in reference.values()):
        raise ValueError("reference must hold non-negative weights with a positive sum")
    return {c: float(v) / total for c, v in reference.items()}


def attribute_entropy(
    values: Sequence[str | None],
    reference: Mapping[str, float] | None = None,
    categories: Sequence[str] | None = None,
    unknown_values: Iterable[str] = UNKNOWN_VALUES,
) -> dict[str, Any]:
    """Shannon entropy (bits) of a categorical attribute, normalised entropy and KL to a reference.

    ``values`` holds one category per item (e.g. per generated persona). ``None`` and
    ``unknown_values`` (case-insensitive, default "unknown" and "") are counted apart and
    excluded from the distribution. The category set is ``categories`` if given, else the
    reference's keys plus the observed ones; ``normalized_entropy = H / log2(#categories)``
    (0.0 when there is at most one category). ``kl_to_reference`` is KL(observed || reference)
    in bits; the reference is uniform over the category set by default, or ``reference``
    (weights, normalised here), which must give positive mass to every observed category.

    Returns ``entropy``, ``normalized_entropy``, ``kl_to_reference``, ``num_known``,
    ``num_unknown``, ``unknown_rate``, ``num_categories``, ``counts`` and ``distribution``
    (dicts). With no known value the entropies are 0.0 and the KL is ``None``.
    """
    unknown_values = tuple(unknown_values)
    known = [str(v) for v in values if not _is_unknown(v, unknown_values)]
    counts = Counter(known)
    cats = list(dict.fromkeys([*(categories or []), *(reference or {}), *sorted(counts)]))
    if categories is not None and set(counts) - set(categories):
        raise ValueError(f"observed categories outside `categories`: {sorted(set(counts) - set(categories))}")
    ref = _reference(cats, reference)
    n = len(known)
    dist = {c: counts[c] / n for c in cats} if n else {}
    entropy = max(0.0, -math.fsum(p * math.log2(p) for p in dist.values() if p > 0))
    missing = [c for c, p in dist.items() if p > 0 and ref.get(c, 0.0) <= 0]
    if missing:
        raise ValueError(f"reference gives no mass to observed categories {missing}")
    kl = math.fsum(p * math.log2(p / ref[c]) for c, p in dist.items() if p > 0) if n else None
    return {
        "entropy": float(entropy),
        "normalized_entropy": float(entropy / math.log2(len(cats))) if len(cats) > 1 else 0.0,
        "kl_to_reference": kl,
        "num_known": n,
        "num_unknown": len(values) - n,
        "unknown_rate": (len(values) - n) / len(values) if len(values) else 0.0,
        "num_categories": len(cats),
        "counts": {c: counts[c] for c in cats},
        "distribution": dist,
    }


def attribute_entropies(
    records: Sequence[Mapping[str, str | None]],
    attributes: Sequence[str] | None = None,
    references: Mapping[str, Mapping[str, float]] | None = None,
    categories: Mapping[str, Sequence[str]] | None = None,
    unknown_values: Iterable[str] = UNKNOWN_VALUES,
) -> dict[str, dict[str, Any]]:
    """``attribute_entropy`` of each attribute of ``records`` (dicts such as persona fields).

    A record lacking an attribute counts as unknown for it. ``attributes`` defaults to every
    key seen; ``references`` / ``categories`` are per-attribute options.
    """
    names = attributes or list(dict.fromkeys(k for r in records for k in r))
    unknown_values = tuple(unknown_values)
    return {
        name: attribute_entropy(
            [r.get(name) for r in records],
            (references or {}).get(name),
            (categories or {}).get(name),
            unknown_values,
        )
        for name in names
    }
