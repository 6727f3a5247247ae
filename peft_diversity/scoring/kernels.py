"""Similarity matrices between the K responses of a prompt: embedding cosine and n-gram cosine."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from ._common import ngram_counts
from .embeddings import normalize_rows

_EMPTY = ("\x00<empty>",)  # feature of an empty response: two empty responses are identical


def ngram_features(tokens: Sequence[str], max_order: int = 2) -> Counter:
    """Bag of all n-grams of ``tokens`` for n = 1..max_order (a sentinel feature when empty)."""
    feats: Counter = Counter()
    for n in range(1, max_order + 1):
        feats.update(ngram_counts(tokens, n))
    return feats or Counter({_EMPTY: 1})


def ngram_cosine_matrix(token_lists: Sequence[Sequence[str]], max_order: int = 2) -> np.ndarray:
    """K x K cosine similarity of bag-of-n-gram count vectors (n = 1..max_order); PSD, diag 1."""
    feats = [ngram_features(toks, max_order) for toks in token_lists]
    index: dict = {}
    for f in feats:
        for gram in f:
            index.setdefault(gram, len(index))
    matrix = np.zeros((len(feats), max(1, len(index))))
    for row, f in enumerate(feats):
        for gram, count in f.items():
            matrix[row, index[gram]] = count
    unit = normalize_rows(matrix)
    return unit @ unit.T


def cosine_matrix(emb: np.ndarray) -> np.ndarray:
    """K x K cosine similarity of unit-norm embedding rows, clipped to [-1, 1]; exactly 1 on the diagonal and
    between identical non-zero rows.

    cos(v, v) = 1 exactly; the dot product of a row normalised in floating point with itself is only 1 within
    ~1e-16, so identical responses (encoded once, so identical rows) would score a diversity of 5.55e-16
    instead of the 0.0 the docs promise. Identical rows are set to 1: exact where the value is exact, and no
    tolerance that could merge two different responses.
    """
    sim = np.clip(emb @ emb.T, -1.0, 1.0)
    nonzero = np.any(emb != 0, axis=1)
    same = np.all(emb[:, None, :] == emb[None, :, :], axis=-1) & nonzero[:, None] & nonzero[None, :]
    sim[same] = 1.0
    np.fill_diagonal(sim, 1.0)
    return sim
