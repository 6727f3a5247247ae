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
    strict_reference: bool = True,
) -> dict[str, Any]:
    """Shannon entropy (bits) of a categorical attribute, normalised entropy and KL to a reference.

    ``values`` holds one category per item (e.g. per generated persona). ``None`` and
    ``unknown_values`` (case-insensitive, default "unknown" and "") are counted apart and
    excluded from the distribution; a value equal to a known category but for case ("Female")
    counts as that category. The category set is ``categories`` if given, else the
    reference's keys plus the observed ones; ``normalized_entropy = H / log2(#categories)``
    (0.0 when there is at most one category). ``kl_to_reference`` is KL(observed || reference)
    in bits; the reference is uniform over the category set by default, or ``reference``
    (weights, normalised here). A reference giving no mass to an observed category raises
    ValueError, or with ``strict_reference=False`` gives ``kl_to_reference=None`` and a
    ``kl_note`` saying the KL is infinite.

    With n known values, H cannot exceed log2(min(n, #categories)): ``max_normalized_entropy``
    is that ceiling (it depends on the unknown rate, so read the two together);
    ``effective_categories`` = 2**H; ``entropy_miller_madow`` adds the Miller-Madow
    correction (m-1)/(2n ln 2) bits, m = observed categories, for the plug-in estimate's
    downward bias on small samples.

    Returns those keys and ``entropy``, ``num_known``, ``num_unknown``, ``unknown_rate``,
    ``num_categories``, ``counts`` and ``distribution`` (dicts). With no known value the
    entropy is 0.0 and the normalised entropy, its ceiling, the effective categories, the
    Miller-Madow entropy and the KL are ``None`` (no data, not "no spread").
    """
    unknown_values = tuple(unknown_values)
    named = [*(categories or []), *(reference or {})]
    known = _canonical([str(v).strip() for v in values if not _is_unknown(v, unknown_values)], named)
    counts = Counter(known)
    cats = list(dict.fromkeys([*named, *sorted(counts)]))
    if categories is not None and set(counts) - set(categories):
        raise ValueError(f"observed categories outside `categories`: {sorted(set(counts) - set(categories))}")
    n, k = len(known), len(cats)
    dist = {c: counts[c] / n for c in cats} if n else {}
    entropy = max(0.0, -math.fsum(p * math.log2(p) for p in dist.values() if p > 0))
    return {
        "entropy": float(entropy),
        "normalized_entropy": (entropy / math.log2(k) if k > 1 else 0.0) if n else None,
        "max_normalized_entropy": (math.log2(min(n, k)) / math.log2(k) if k > 1 else 0.0) if n else None,
        "effective_categories": 2.0**entropy if n else None,
        "entropy_miller_madow": entropy + (len(counts) - 1) / (2 * n * math.log(2)) if n else None,
        **_kl(dist, _reference(cats, reference), strict_reference),
        "num_known": n,
        "num_unknown": len(values) - n,
        "unknown_rate": (len(values) - n) / len(values) if len(values) else 0.0,
        "num_categories": k,
        "counts": {c: counts[c] for c in cats},
        "distribution": dist,
    }


def _canonical(values: list[str], categories: Sequence[str]) -> list[str]:
    """Values differing from a named category only in case become that category."""
    by_case = {c.casefold(): c for c in categories}
    return [v if v in by_case.values() else by_case.get(v.casefold(), v) for v in values]


def _kl(dist: dict[str, float], ref: dict[str, float], strict: bool) -> dict[str, Any]:
    if not dist:
        return {"kl_to_reference": None}
    missing = [c for c, p in dist.items() if p > 0 and ref.get(c, 0.0) <= 0]
    if missing:
        message = f"reference gives no mass to observed categories {missing}"
        if strict:
            raise ValueError(message)
        return {"kl_to_reference": None, "kl_note": f"infinite: {message}"}
    return {"kl_to_reference": math.fsum(p * math.log2(p / ref[c]) for c, p in dist.items() if p > 0)}


def attribute_entropies(
    records: Sequence[Mapping[str, str | None]],
    attributes: Sequence[str] | None = None,
    references: Mapping[str, Mapping[str, float]] | None = None,
    categories: Mapping[str, Sequence[str]] | None = None,
    unknown_values: Iterable[str] = UNKNOWN_VALUES,
    strict_reference: bool = True,
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
            strict_reference,
        )
        for name in names
    }
