"""distinct_k: number of equivalence classes among K responses (NoveltyBench-style greedy partition)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._common import Tokenizer, check_predictions, count_summary, is_empty_response
from .embeddings import DEFAULT_BATCH_SIZE, EmbedderSpec
from .vendi import similarity_matrices

DEFAULT_THRESHOLDS = {"embedding": 0.85, "ngram": 0.6}


def greedy_partition(similarity: np.ndarray, threshold: float) -> list[int]:
    """Class label of each item: item i joins the first class whose first member has similarity
    >= ``threshold`` with it, else opens a new class (labels 0, 1, ... in order of appearance)."""
    representatives: list[int] = []
    labels = []
    for i in range(similarity.shape[0]):
        label = next((c for c, r in enumerate(representatives) if similarity[i, r] >= threshold), None)
        if label is None:
            label = len(representatives)
            representatives.append(i)
        labels.append(label)
    return labels


def _labels(size: int, kept: list[int], kept_labels: list[int]) -> list[int]:
    """Labels of all ``size`` responses: the partition's for the non-empty ones (``kept``), 0 for the empty."""
    labels = [0] * size
    for index, label in zip(kept, kept_labels, strict=True):
        labels[index] = label
    return labels


def distinct_k(
    predictions: Sequence[Sequence[str]],
    method: str = "embedding",
    threshold: float | None = None,
    embedder: EmbedderSpec = None,
    max_order: int = 2,
    tokenizer: str | Tokenizer = "regex",
    lowercase: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    return_per_prompt: bool = False,
) -> dict[str, Any]:
    """Number of distinct responses per prompt, by greedy partition into equivalence classes.

    In NoveltyBench's manner (each response is compared with one representative, the first
    member, of each class found so far), but the equivalence test is NOT NoveltyBench's
    official trained classifier: two responses are equivalent when their similarity is
    >= ``threshold`` under ``method="embedding"`` (sentence-embedding cosine, default 0.85)
    or ``method="ngram"`` (cosine of bag-of-n-gram counts, n = 1..max_order, default 0.6).

    Returns ``distinct_k`` (mean number of classes per prompt, in [1, K]), ``distinct_k_ratio``
    (mean of classes / K) and ``num_prompts``; with ``return_per_prompt`` also
    ``distinct_k_per_prompt`` and ``distinct_k_classes`` (class label of every response).

    Edge cases: K = 1 gives 1; identical responses give 1; K = 0 gives 0 (ratio 0.0). An empty
    (blank) response opens no class: it joins the first one (label 0), so adding one never raises
    the count; all-empty responses give 1.
    """
    predictions = check_predictions(predictions)
    threshold = (
        DEFAULT_THRESHOLDS[method] if threshold is None and method in DEFAULT_THRESHOLDS else threshold
    )
    kept = [[i for i, text in enumerate(r) if not is_empty_response(text)] for r in predictions]
    sims = similarity_matrices(
        [[r[i] for i in idx] for r, idx in zip(predictions, kept, strict=True)],
        method,
        embedder,
        max_order,
        tokenizer,
        lowercase,
        batch_size,
    )
    labels = [
        _labels(len(r), idx, greedy_partition(s, float(threshold)))
        for r, idx, s in zip(predictions, kept, sims, strict=True)
    ]
    counts = [float(max(lab, default=-1) + 1) for lab in labels]
    result = count_summary("distinct_k", "distinct_k_ratio", counts, predictions, return_per_prompt)
    if return_per_prompt:
        result["distinct_k_classes"] = labels
    return result
