"""Self-BLEU: each response scored against the other K-1 (leave-one-out), NLTK-compatible.

Vectorised over all responses of a call: n-grams get dense integer ids, (response, n-gram)
counts come from one ``np.unique`` per order, and the leave-one-out reference max-count of an
n-gram is its top count over the prompt's responses, or the second-highest for the response
holding the top. The BLEU arithmetic (clipping, closest-reference brevity penalty, smoothing)
follows NLTK's ``sentence_bleu``.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np

from ._common import Tokenizer, check_predictions, is_empty_response, mean, resolve_tokenizer

SMOOTHINGS = ("none", "method1", "method2", "method3")


def _smoothed_precisions(nums: np.ndarray, dens: np.ndarray, smoothing: str, epsilon: float) -> np.ndarray:
    """Modified precisions (responses x orders) after smoothing, as NLTK's ``SmoothingFunction``."""
    zero = nums == 0
    if smoothing == "none":  # NLTK method0: a zero precision becomes the tiniest float
        return np.where(zero, sys.float_info.min, nums / dens)
    if smoothing == "method1":  # add epsilon to zero counts
        return np.where(zero, epsilon / dens, nums / dens)
    if smoothing == "method2":  # add one to numerator and denominator for n > 1
        p = (nums + 1) / (dens + 1)
        p[:, 0] = nums[:, 0] / dens[:, 0]
        return p
    if smoothing == "method3":  # NIST geometric: 1 / (2^k * den) for the k-th zero count
        k = np.cumsum(zero, axis=1)
        return np.where(zero, 1.0 / (2.0**k * dens), nums / dens)
    raise ValueError(f"unknown smoothing {smoothing!r}; choose one of {SMOOTHINGS}")


def bleu_from_stats(
    nums: np.ndarray,
    hyp_len: np.ndarray,
    ref_len: np.ndarray,
    weights: Sequence[float],
    smoothing: str = "method1",
    epsilon: float = 0.1,
) -> np.ndarray:
    """Sentence BLEU of each row from clipped matches ``nums`` (rows x orders) and lengths.

    0 when no unigram matches (as NLTK); brevity penalty 1 if hyp > ref, 0 if hyp is empty,
    else exp(1 - ref / hyp).
    """
    orders = np.arange(1, len(weights) + 1)
    dens = np.maximum(1, hyp_len[:, None] - orders[None, :] + 1)
    p = _smoothed_precisions(nums.astype(np.float64), dens.astype(np.float64), smoothing, epsilon)
    logs = np.where(p > 0, np.asarray(weights)[None, :] * np.log(np.where(p > 0, p, 1.0)), 0.0)
    with np.errstate(divide="ignore"):
        bp = np.where(hyp_len > ref_len, 1.0, np.exp(1.0 - ref_len / np.maximum(hyp_len, 1)))
    bp = np.where(hyp_len == 0, 0.0, bp)
    return np.where(nums[:, 0] == 0, 0.0, bp * np.exp(logs.sum(axis=1)))


def _relabel(values: np.ndarray) -> np.ndarray:
    """Dense ids 0..m-1 with equal ids exactly for equal values."""
    return np.unique(values, return_inverse=True)[1].ravel()


def _top_two(keys: np.ndarray, counts: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Highest and second-highest count of each key (ties kept: both equal the max)."""
    order = np.lexsort((-counts, keys))
    k, c = keys[order], counts[order]
    first = np.ones(len(k), dtype=bool)
    first[1:] = k[1:] != k[:-1]
    second = np.zeros(len(k), dtype=bool)
    second[1:] = first[:-1] & ~first[1:]
    top1, top2 = np.zeros(width, dtype=np.int64), np.zeros(width, dtype=np.int64)
    top1[k[first]] = c[first]
    top2[k[second]] = c[second]
    return top1, top2


def _clipped_matches(ids: np.ndarray, lengths: np.ndarray, group: np.ndarray, n: int) -> np.ndarray:
    """Per response: its n-gram counts clipped by the max count among the OTHER responses of its group.

    All responses at once: each n-gram gets a dense id (within its group), the (response, n-gram)
    counts come from one ``np.unique``, and the leave-one-out max is the top count of the n-gram
    unless this response holds it, then the second-highest.
    """
    resp = np.repeat(np.arange(len(lengths)), lengths)
    offset = np.arange(len(ids)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    starts = np.nonzero(offset <= lengths[resp] - n)[0]
    if starts.size == 0:
        return np.zeros(len(lengths), dtype=np.int64)
    vocab = int(ids.max()) + 1
    code = ids[starts]
    packed = vocab ** (n - 1) < 2**62 // vocab  # the whole n-gram fits one int64
    for k in range(1, n):
        code = code * vocab + ids[starts + k]
        if not packed:
            code = _relabel(code)
    if packed and int(code.max()) >= 2**62 // (int(group.max()) + 1):
        code = _relabel(code)  # make room for the group in the key
    rid = resp[starts]
    key = _relabel(group[rid] * (int(code.max()) + 1) + code)
    width = int(key.max()) + 1
    pairs, counts = np.unique(rid * width + key, return_counts=True)
    p_rid, p_key = pairs // width, pairs % width
    top1, top2 = _top_two(p_key, counts, width)
    other = np.where(counts == top1[p_key], top2[p_key], top1[p_key])
    return np.bincount(p_rid, weights=np.minimum(counts, other), minlength=len(lengths)).astype(np.int64)


def _closest_other_lengths(lengths: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Per response: length of the closest OTHER response of its group (ties -> the shorter).

    NLTK's ``closest_ref_length``; after sorting by (group, length) the answer is a neighbour.
    Responses alone in their group get 0 (they are not scored).
    """
    order = np.lexsort((lengths, group))
    g, n = group[order], lengths[order]
    big = np.iinfo(np.int64).max // 4
    low = np.full(len(n), -big)
    high = np.full(len(n), big)
    same_prev = g[1:] == g[:-1]
    low[1:] = np.where(same_prev, n[:-1], -big)
    high[:-1] = np.where(same_prev, n[1:], big)
    pick = np.where(n - low <= high - n, low, high)
    out = np.empty_like(lengths)
    out[order] = np.where(np.abs(pick) >= big, 0, pick)
    return out


def batch_leave_one_out_bleu(
    prompts: Sequence[Sequence[Sequence[str]]],
    max_order: int = 4,
    smoothing: str = "method1",
    epsilon: float = 0.1,
    weights: Sequence[float] | None = None,
) -> list[list[float]]:
    """BLEU of each response (token list) against the other responses of its prompt; ``[]`` for K < 2."""
    weights = tuple(weights) if weights is not None else tuple(1.0 / max_order for _ in range(max_order))
    flat = [toks for responses in prompts for toks in responses]
    tokens = list(chain.from_iterable(flat))
    index = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    ids = np.fromiter(map(index.__getitem__, tokens), dtype=np.int64, count=len(tokens))
    lengths = np.fromiter(map(len, flat), dtype=np.int64, count=len(flat))
    sizes = [len(r) for r in prompts]
    group = np.repeat(np.arange(len(prompts)), sizes)
    nums = np.stack([_clipped_matches(ids, lengths, group, n) for n in range(1, len(weights) + 1)], axis=1)
    ref_len = _closest_other_lengths(lengths, group)
    scores = bleu_from_stats(
        nums.reshape(len(flat), len(weights)), lengths, ref_len, weights, smoothing, epsilon
    )
    # Convention (docs/metrics.md): an empty response, or an exact copy of another response of its prompt,
    # adds no diversity and scores 1.0 (NLTK gives 0.0 to an empty one and < 1 to short copies)
    copies = Counter(zip(group.tolist(), map(tuple, flat), strict=True))
    no_news = np.fromiter(
        (not toks or copies[g, tuple(toks)] > 1 for g, toks in zip(group.tolist(), flat, strict=True)),
        dtype=bool,
        count=len(flat),
    )
    scores = np.where(no_news, 1.0, scores)
    bounds = np.cumsum([0, *sizes]).tolist()
    return [scores[a:b].tolist() if b - a > 1 else [] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def leave_one_out_bleu(
    token_lists: Sequence[Sequence[str]],
    max_order: int = 4,
    smoothing: str = "method1",
    epsilon: float = 0.1,
    weights: Sequence[float] | None = None,
) -> list[float]:
    """BLEU of each token list against all the others as references; ``[]`` when K < 2."""
    return batch_leave_one_out_bleu([token_lists], max_order, smoothing, epsilon, weights)[0]


def self_bleu(
    predictions: Sequence[Sequence[str]],
    max_order: int = 4,
    smoothing: str = "method1",
    epsilon: float = 0.1,
    tokenizer: str | Tokenizer = "regex",
    lowercase: bool = True,
    return_per_prompt: bool = False,
) -> dict[str, Any]:
    """Self-BLEU of the K responses of each prompt (lower = more diverse).

    Each response is the hypothesis and the other K-1 responses of its prompt are its
    references (multi-reference sentence BLEU with uniform weights up to ``max_order``).
    Equal (to float rounding, ~1e-16) to NLTK ``sentence_bleu(others, response, weights,
    smoothing_function)`` for the same tokens, and tens of times faster: ``smoothing="none"`` is NLTK's default (method0; a zero precision
    becomes the tiniest float, giving ~0), ``"method1"`` (default) adds ``epsilon`` to zero
    counts, ``"method2"``/``"method3"`` follow NLTK too. NLTK returns 0 when no unigram
    matches, and so does this. Tokenizer: ``"regex"`` (default, see ``tokenize``),
    ``"whitespace"`` or a callable.

    Returns ``self_bleu`` (mean over prompts of the mean over the prompt's responses),
    ``self_bleu_pooled`` (mean over all responses pooled), ``self_bleu_diversity`` and
    ``self_bleu_diversity_pooled`` (1 - each), ``num_prompts``; with ``return_per_prompt``
    also ``self_bleu_per_prompt`` and ``self_bleu_per_response`` (lists).

    Edge cases: a prompt with K < 2 has no reference and is defined as self-BLEU 1.0 (no
    diversity); it counts in the per-prompt mean but not in the pooled one (pooled is 1.0
    when no response has a reference). An empty response, and a response that is an exact
    copy (same tokens) of another response of its prompt, score 1.0: they add no diversity.
    NLTK differs there (0.0 for an empty hypothesis; "a b" twice scores 0.1 ** 0.5 ~ 0.32
    with method1 and max_order 4, as short copies lack the higher-order n-grams), so a
    group of identical or empty responses would look diverse; otherwise this equals NLTK.
    """
    predictions = check_predictions(predictions)
    if smoothing not in SMOOTHINGS:
        raise ValueError(f"unknown smoothing {smoothing!r}; choose one of {SMOOTHINGS}")
    if max_order < 1:
        raise ValueError("max_order must be >= 1")
    tok = resolve_tokenizer(tokenizer, lowercase)
    # an empty response has no tokens, whatever the tokenizer makes of blanks: it then scores 1.0 (no diversity)
    tokens = [[[] if is_empty_response(t) else tok(t) for t in responses] for responses in predictions]
    per_response = batch_leave_one_out_bleu(tokens, max_order, smoothing, epsilon)
    per_prompt = [mean(scores, default=1.0) for scores in per_response]
    pooled = mean([s for scores in per_response for s in scores], default=1.0)
    result: dict[str, Any] = {
        "self_bleu": mean(per_prompt),
        "self_bleu_pooled": pooled,
        "self_bleu_diversity": 1.0 - mean(per_prompt),
        "self_bleu_diversity_pooled": 1.0 - pooled,
        "num_prompts": len(predictions),
    }
    if return_per_prompt:
        result["self_bleu_per_prompt"] = per_prompt
        result["self_bleu_per_response"] = per_response
    return result
