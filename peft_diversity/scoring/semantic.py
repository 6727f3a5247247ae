"""Semantic diversity: 1 - mean pairwise cosine similarity of sentence embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._common import check_predictions, flatten, is_empty_response, mean
from .embeddings import DEFAULT_BATCH_SIZE, EmbedderSpec, encode_texts
from .kernels import cosine_matrix


def pairwise_cosine_sums(
    emb: np.ndarray, offsets: Sequence[int], texts: Sequence[str]
) -> list[tuple[float, int]]:
    """Per prompt: (sum of cosines over unordered distinct pairs, number of pairs).

    Identical responses have cosine exactly 1 (``cosine_matrix``); an empty response counts as a copy of every
    other response of its prompt (cosine 1: ``is_empty_response``), so it can only lower the diversity.
    """
    out = []
    for start, stop in zip(offsets[:-1], offsets[1:], strict=True):
        k = stop - start
        if k < 2:
            out.append((0.0, 0))
            continue
        sim = cosine_matrix(emb[start:stop])
        empty = np.array([is_empty_response(t) for t in texts[start:stop]])
        sim[empty, :] = 1.0
        sim[:, empty] = 1.0
        total = np.triu(sim, 1).sum()
        out.append((float(total), k * (k - 1) // 2))
    return out


def semantic_diversity(
    predictions: Sequence[Sequence[str]],
    embedder: EmbedderSpec = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | None = None,
    return_per_prompt: bool = False,
) -> dict[str, Any]:
    """Semantic diversity of the K responses of each prompt: ``1 - mean pairwise cosine``.

    All texts of the call are encoded in one batched call (identical texts once), then
    sliced per prompt. The embedder is a SentenceTransformer, any object with
    ``encode(list[str])``, a local path/id, or ``None`` for all-MiniLM-L6-v2 (cached).

    Returns a dict:
      - ``semantic_diversity``: mean over prompts of (1 - mean cosine of the prompt's pairs);
      - ``semantic_diversity_pooled``: 1 - mean cosine over all pairs of all prompts pooled
        (the paper's figure; equals the former when every prompt has the same K);
      - ``mean_cosine`` / ``mean_cosine_pooled``: the similarities themselves;
      - ``num_prompts``, ``num_pairs``; ``semantic_diversity_per_prompt`` on request.

    Edge cases: a prompt with K < 2 has no pair and is defined as diversity 0.0 (cosine 1.0);
    it counts in the per-prompt mean and adds no pair to the pooled mean (pooled is 0.0
    when there is no pair at all). Identical responses give exactly 0.0. An empty (blank)
    response is a copy of every other response of its prompt (cosine 1), so adding one never
    raises the diversity; any Unicode is embedded like other text. Values can exceed 1 when
    cosines are negative.
    """
    predictions = check_predictions(predictions)
    texts, offsets = flatten(predictions)
    emb = encode_texts(texts, embedder, batch_size, device)
    sums = pairwise_cosine_sums(emb, offsets, texts)
    per_prompt_cos = [s / n if n else 1.0 for s, n in sums]
    num_pairs = sum(n for _, n in sums)
    pooled_cos = sum(s for s, _ in sums) / num_pairs if num_pairs else 1.0
    result: dict[str, Any] = {
        "semantic_diversity": 1.0 - mean(per_prompt_cos),
        "semantic_diversity_pooled": 1.0 - float(pooled_cos),
        "mean_cosine": mean(per_prompt_cos),
        "mean_cosine_pooled": float(pooled_cos),
        "num_prompts": len(predictions),
        "num_pairs": num_pairs,
    }
    if return_per_prompt:
        result["semantic_diversity_per_prompt"] = [1.0 - c for c in per_prompt_cos]
    return result
