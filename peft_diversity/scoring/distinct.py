"""Distinct-n and expectation-adjusted distinct (EAD) over the K responses of each prompt."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ._common import Tokenizer, check_predictions, mean, ngram_counts, non_empty, resolve_tokenizer

DEFAULT_VOCAB_SIZE = 50_000


def expected_distinct(vocab_size: float, total: int) -> float:
    """Expected number of distinct items among ``total`` uniform draws from ``vocab_size`` items.

    ``V * (1 - ((V - 1) / V) ** C)`` (Liu et al., 2022), computed stably for huge V as
    ``-V * expm1(C * log1p(-1 / V))``; 0.0 when ``C == 0`` or ``V < 1``.
    """
    if total <= 0 or vocab_size < 1:
        return 0.0
    return float(-vocab_size * math.expm1(total * math.log1p(-1.0 / vocab_size)))


def _merge(counters: Sequence[Counter]) -> Counter:
    out: Counter = Counter()
    for counts in counters:
        out.update(counts)
    return out


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else 0.0


def _vocab_for(order: int, vocab_size: int | Mapping[int, float]) -> float:
    if isinstance(vocab_size, Mapping):
        return float(vocab_size[order])
    return float(vocab_size) ** order


def distinct_n(
    predictions: Sequence[Sequence[str]],
    orders: Sequence[int] = (1, 2, 3, 4),
    vocab_size: int | Mapping[int, float] = DEFAULT_VOCAB_SIZE,
    tokenizer: str | Tokenizer = "regex",
    lowercase: bool = True,
    return_per_prompt: bool = False,
) -> dict[str, Any]:
    """Distinct-n (unique n-grams / total n-grams) and EAD for each order ``n`` in ``orders``.

    N-grams never cross response boundaries. For each ``n`` the result has:
      - ``distinct_{n}``: mean over prompts of the prompt's distinct ratio (its K responses);
      - ``distinct_{n}_pooled``: the ratio over all responses of all prompts pooled (corpus level);
      - ``ead_{n}`` / ``ead_{n}_pooled``: the same with the distinct count divided by its
        expectation ``V * (1 - ((V - 1) / V) ** C)`` (C = total n-grams) instead of by C.

    V for order n: ``vocab_size ** n`` (the number of possible n-grams of independent tokens)
    when ``vocab_size`` is an int, or ``vocab_size[n]`` when it is a mapping. The default,
    50,000, is a round word-vocabulary size chosen by this project (not taken from the EAD
    paper); pass your own V (e.g. your tokenizer's vocabulary size) to follow another setup.
    EAD ~ distinct when C << V; values are comparable only under the same V and tokenizer.

    Edge cases: a prompt with no n-gram of order ``n`` (empty strings, responses shorter
    than ``n``) scores 0.0 for that order; K = 1 is well defined (one response). Empty (blank)
    responses are left out, so adding one never changes a score.
    """
    predictions = check_predictions(predictions)
    tok = resolve_tokenizer(tokenizer, lowercase)
    # empty responses add no n-gram, whatever the tokenizer makes of blanks (a character tokenizer would count them)
    tokens = [[tok(t) for t in non_empty(responses)] for responses in predictions]
    result: dict[str, Any] = {}
    for n in orders:
        per_prompt = [_merge([ngram_counts(t, n) for t in toks]) for toks in tokens]
        pooled = _merge(per_prompt)
        vocab = _vocab_for(n, vocab_size)
        distinct = [_ratio(len(c), c.total()) for c in per_prompt]
        ead = [_ratio(len(c), expected_distinct(vocab, c.total())) for c in per_prompt]
        result[f"distinct_{n}"] = mean(distinct)
        result[f"distinct_{n}_pooled"] = _ratio(len(pooled), pooled.total())
        result[f"ead_{n}"] = mean(ead)
        result[f"ead_{n}_pooled"] = _ratio(len(pooled), expected_distinct(vocab, pooled.total()))
        if return_per_prompt:
            result[f"distinct_{n}_per_prompt"] = distinct
            result[f"ead_{n}_per_prompt"] = ead
    result["num_prompts"] = len(predictions)
    return result
