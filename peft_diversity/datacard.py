"""Statistics of a one-to-many dataset, for its card: counts, lengths, within-context SBERT similarity.

Used by Hub dataset cards, the builder's quality report and `scripts/refresh_data_card.py` (the bundled card).
"""

from __future__ import annotations

import itertools
from statistics import mean, median
from typing import Any

import numpy as np


def within_context_cosines(records: list[dict[str, Any]], embedder: Any = None) -> list[list[float]]:
    """SBERT cosine of every pair of candidates of the same record, per record (one batched encode).

    A record with fewer than two candidates has an empty list.
    """
    from peft_diversity.scoring.embeddings import encode_texts

    cands = [r["candidates"] for r in records]
    flat = [c for group in cands for c in group]
    if not flat:
        return [[] for _ in cands]
    emb = encode_texts(flat, embedder)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True).clip(min=1e-12)
    out, start = [], 0
    for group in cands:
        block = emb[start : start + len(group)]
        start += len(group)
        out.append([float(block[i] @ block[j]) for i, j in itertools.combinations(range(len(group)), 2)])
    return out


def dataset_stats(records: list[dict[str, Any]], embedder: Any = None) -> dict[str, Any]:
    """Counts, word lengths, and SBERT cosine between candidates of the same context (one batched encode)."""
    cands = [r["candidates"] for r in records]
    flat = [c for group in cands for c in group]
    sims = within_context_cosines(records, embedder)
    per_context = [mean(s) for s in sims if s]
    pooled = [x for s in sims for x in s]
    top = max([0.0, *pooled])
    turns = [len(r["context"]) if isinstance(r.get("context"), list) else 1 for r in records]
    lengths = [len(c.split()) for c in flat]
    return {
        "contexts": len(records),
        "candidates": len(flat),
        "candidates_per_context": f"{min(map(len, cands))}–{max(map(len, cands))}",
        "turns_per_context": f"{min(turns)}–{max(turns)}",
        "words_per_candidate_mean": round(mean(lengths), 1),
        "words_per_candidate_median": median(lengths),
        "words_per_candidate_max": max(lengths),
        "within_context_cosine_mean": round(mean(per_context), 3),
        "within_context_cosine_pooled": round(mean(pooled), 3),
        "within_context_cosine_max": round(top, 3),
    }
