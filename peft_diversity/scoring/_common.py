"""Shared helpers of the scoring functions: input validation, tokenisation, n-grams, means."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

Tokenizer = Callable[[str], list[str]]

# CJK ideographs and kana are written without spaces: each character is one token.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN_RE = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Split ``text`` into word and punctuation tokens with a download-free regex.

    Words are maximal runs of Unicode word characters (``\\w``), every other non-space
    character is its own token, and each CJK ideograph/kana is a token. ``"Don't stop!"``
    gives ``["don", "'", "t", "stop", "!"]``. Empty or blank text gives ``[]``.
    """
    if lowercase:
        text = text.lower()
    return _TOKEN_RE.findall(text)


def whitespace_tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Split on whitespace only (``str.split``), optionally lower-cased."""
    return (text.lower() if lowercase else text).split()


def resolve_tokenizer(tokenizer: str | Tokenizer = "regex", lowercase: bool = True) -> Tokenizer:
    """Return a ``str -> list[str]`` tokenizer: ``"regex"`` (default), ``"whitespace"`` or a callable.

    A callable is used as is (``lowercase`` is then the callable's business).
    """
    if callable(tokenizer):
        return tokenizer
    if tokenizer == "regex":
        return lambda text: tokenize(text, lowercase)
    if tokenizer == "whitespace":
        return lambda text: whitespace_tokenize(text, lowercase)
    raise ValueError(f"unknown tokenizer {tokenizer!r}: use 'regex', 'whitespace' or a callable")


def ngram_counts(tokens: Sequence[str], n: int) -> Counter:
    """Counter of the ``n``-grams (tuples) of ``tokens``; empty when ``len(tokens) < n``."""
    if n == 1:
        return Counter(zip(tokens, strict=False))
    return Counter(zip(*(tokens[i:] for i in range(n)), strict=False))


def check_predictions(predictions: Sequence[Sequence[str]]) -> list[list[str]]:
    """Validate ``predictions`` (K responses per prompt) and return it as lists of ``str``.

    Raises ``ValueError`` when there is no prompt and ``TypeError`` when a prompt is not a
    list of strings (a bare string would silently be read as a list of characters).
    """
    if isinstance(predictions, str) or not isinstance(predictions, Sequence):
        raise TypeError("predictions must be a list of lists of strings (K responses per prompt)")
    if len(predictions) == 0:
        raise ValueError("predictions must contain at least one prompt")
    out = []
    for i, responses in enumerate(predictions):
        if isinstance(responses, str) or not isinstance(responses, Sequence):
            raise TypeError(f"predictions[{i}] must be a list of strings, got {type(responses).__name__}")
        if not all(isinstance(r, str) for r in responses):
            raise TypeError(f"predictions[{i}] must contain only strings")
        out.append(list(responses))
    return out


def is_empty_response(text: str) -> bool:
    """THE rule of docs/metrics.md for every diversity metric: a blank response (empty or whitespace only) says
    nothing, so it never counts as diverse. Pairwise metrics treat it as a copy of every other response of its
    prompt (similarity 1, self-BLEU 1); counting metrics leave it out (no class, no n-gram, no opening). Either
    way adding an empty response to a set never raises its diversity."""
    return not text.strip()


def non_empty(responses: Sequence[str]) -> list[str]:
    """``responses`` without the empty ones (``is_empty_response``), order kept."""
    return [r for r in responses if not is_empty_response(r)]


def mean(values: Sequence[float], default: float = 0.0) -> float:
    """Arithmetic mean as a Python float; ``default`` for an empty sequence."""
    return float(sum(values) / len(values)) if len(values) else float(default)


def count_summary(
    name: str,
    ratio_key: str,
    counts: Sequence[float],
    predictions: Sequence[Sequence[str]],
    return_per_prompt: bool,
) -> dict[str, Any]:
    """The result of a metric that counts distinct items per prompt (Vendi score, distinct-k): `name` (mean
    count), `ratio_key` (mean of count / K, 0.0 for a prompt with K = 0), `num_prompts`; with `return_per_prompt`
    also `<name>_per_prompt`."""
    ratios = [c / len(r) if r else 0.0 for c, r in zip(counts, predictions, strict=True)]
    result: dict[str, Any] = {name: mean(counts), ratio_key: mean(ratios), "num_prompts": len(predictions)}
    if return_per_prompt:
        result[f"{name}_per_prompt"] = list(counts)
    return result


def flatten(predictions: Sequence[Sequence[str]]) -> tuple[list[str], list[int]]:
    """All texts in order plus the start offset of each prompt (length ``len(predictions) + 1``)."""
    texts: list[str] = []
    offsets = [0]
    for responses in predictions:
        texts.extend(responses)
        offsets.append(len(texts))
    return texts, offsets
