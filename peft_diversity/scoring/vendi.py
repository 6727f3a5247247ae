"""Vendi score: exp of the Shannon entropy of the eigenvalues of the similarity kernel / K."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._common import Tokenizer, check_predictions, count_summary, flatten, non_empty, resolve_tokenizer
from .embeddings import DEFAULT_BATCH_SIZE, EmbedderSpec, encode_texts
from .kernels import cosine_matrix, ngram_cosine_matrix

KERNELS = ("embedding", "ngram")


def vendi_from_kernel(kernel: np.ndarray) -> float:
    """Vendi score of a K x K PSD similarity matrix with unit diagonal; 0.0 when K == 0.

    ``exp(-sum(l * log l))`` over the eigenvalues ``l`` of ``kernel / K`` (0 log 0 = 0):
    1.0 for K identical items, K for K mutually orthogonal ones (Friedman & Dieng, 2023).
    """
    k = kernel.shape[0]
    if k < 2:
        return float(k)
    eig = np.linalg.eigvalsh((kernel + kernel.T) / (2.0 * k))
    eig = eig[eig > 1e-12]
    return float(np.exp(-np.sum(eig * np.log(eig))))


def similarity_matrices(
    predictions: list[list[str]],
    kernel: str,
    embedder: EmbedderSpec,
    max_order: int,
    tokenizer: str | Tokenizer,
    lowercase: bool,
    batch_size: int,
) -> list[np.ndarray]:
    """One K x K similarity matrix per prompt (one batched encode for the embedding kernel)."""
    if kernel == "embedding":
        texts, offsets = flatten(predictions)
        emb = encode_texts(texts, embedder, batch_size)
        return [cosine_matrix(emb[a:b]) for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    if kernel == "ngram":
        tok = resolve_tokenizer(tokenizer, lowercase)
        return [ngram_cosine_matrix([tok(t) for t in responses], max_order) for responses in predictions]
    raise ValueError(f"unknown kernel {kernel!r}; choose one of {KERNELS}")


def vendi_score(
    predictions: Sequence[Sequence[str]],
    kernel: str = "embedding",
    embedder: EmbedderSpec = None,
    max_order: int = 2,
    tokenizer: str | Tokenizer = "regex",
    lowercase: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    return_per_prompt: bool = False,
) -> dict[str, Any]:
    """Vendi score (effective number of distinct responses) of each prompt's K responses.

    ``kernel="embedding"``: cosine of sentence embeddings (see ``semantic_diversity`` for
    ``embedder``); ``kernel="ngram"``: cosine of bag-of-n-gram count vectors, n = 1..max_order.
    Returns ``vendi_score`` (mean over prompts, in [1, K]), ``vendi_score_normalized``
    (mean of score / K, in [1/K, 1]) and ``num_prompts``; ``vendi_score_per_prompt`` on request.
    There is no pooled variant (the score is defined per set).

    Edge cases: K = 1 gives 1.0; identical responses give 1.0; an empty prompt (K = 0) gives
    0.0. Empty (blank) responses are left out of the kernel (they are no distinct item) but count
    in K for the normalised score, so adding one never raises either; all-empty responses give 1.0.
    """
    predictions = check_predictions(predictions)
    kept = [non_empty(responses) for responses in predictions]  # an empty response is no distinct item
    sims = similarity_matrices(kept, kernel, embedder, max_order, tokenizer, lowercase, batch_size)
    # a prompt whose responses are all empty holds one (empty) item: 1.0, as identical responses
    scores = [
        vendi_from_kernel(s) if len(k) else float(min(len(r), 1))
        for s, k, r in zip(sims, kept, predictions, strict=True)
    ]
    return count_summary("vendi_score", "vendi_score_normalized", scores, predictions, return_per_prompt)
