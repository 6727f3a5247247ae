"""Straightforward reference implementations the fast metrics are checked and timed against.

Written independently of ``peft_diversity.scoring`` (they share only the tokenizer, which is
an input of the metrics, not part of what is checked): NLTK's ``sentence_bleu`` in a
leave-one-out loop, one ``encode`` call per prompt, plain ``Counter`` distinct-n,
``scipy.stats.entropy``, and an eigen-decomposition Vendi score.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np


def nltk_self_bleu(
    predictions: Sequence[Sequence[str]],
    tokenize: Callable[[str], list[str]],
    max_order: int = 4,
    smoothing: str = "method1",
) -> list[list[float]]:
    """Per response: NLTK ``sentence_bleu`` against the other responses of its prompt."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    fn = None if smoothing == "none" else getattr(SmoothingFunction(), smoothing)
    weights = tuple(1.0 / max_order for _ in range(max_order))
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NLTK warns about zero n-gram overlaps
        for responses in predictions:
            toks = [tokenize(t) for t in responses]
            scores = []
            for j, hyp in enumerate(toks):
                refs = toks[:j] + toks[j + 1 :]
                scores.append(
                    float(sentence_bleu(refs, hyp, weights, smoothing_function=fn)) if refs else 1.0
                )
            out.append(scores if len(toks) > 1 else [])
    return out


def loop_semantic_diversity(predictions: Sequence[Sequence[str]], model) -> list[float]:
    """Per prompt: encode its responses alone, 1 - mean off-diagonal cosine (sentence-transformers); a blank
    response has cosine 1 with every other (the documented empty-response rule)."""
    from sentence_transformers import util

    out = []
    for responses in predictions:
        if len(responses) < 2:
            out.append(0.0)
            continue
        emb = model.encode(list(responses), convert_to_tensor=True, show_progress_bar=False)
        sim = util.cos_sim(emb, emb).double().cpu().numpy()
        blank = np.array([not text.strip() for text in responses])
        sim[blank, :] = sim[:, blank] = 1.0  # docs/metrics.md: an empty response is a copy of every other one
        k = len(responses)
        out.append(1.0 - (sim.sum() - np.trace(sim)) / (k * (k - 1)))
    return out


def counter_distinct(
    predictions: Sequence[Sequence[str]], n: int, tokenize: Callable[[str], list[str]]
) -> list[float]:
    """Per prompt: unique / total n-grams over its responses, with a plain Counter."""
    out = []
    for responses in predictions:
        grams: Counter = Counter()
        for text in responses:
            toks = tokenize(text)
            for i in range(len(toks) - n + 1):
                grams[tuple(toks[i : i + n])] += 1
        total = sum(grams.values())
        out.append(len(grams) / total if total else 0.0)
    return out


def scipy_entropy(values: Sequence[str], reference: dict[str, float] | None = None) -> tuple[float, float]:
    """(entropy in bits, KL in bits to ``reference`` or uniform) of the category counts of ``values``."""
    from scipy.stats import entropy

    counts = Counter(values)
    cats = sorted(set(counts) | set(reference or {}))
    p = np.array([counts[c] for c in cats], dtype=float)
    q = np.array([(reference or {}).get(c, 1.0) if reference else 1.0 for c in cats], dtype=float)
    return float(entropy(p, base=2)), float(entropy(p, q, base=2))


def eig_vendi(kernel: np.ndarray) -> float:
    """Vendi score exp(H(eigenvalues of K / n)) with scipy's symmetric eigen-solver."""
    from scipy.linalg import eigh

    lam = eigh(kernel / kernel.shape[0], eigvals_only=True)
    lam = lam[lam > 1e-12]
    return math.exp(-float(np.sum(lam * np.log(lam))))
