"""PoExFT loss: MLE on matched (k_i, response_i) + ul_weight * unlikelihood on mismatched (k_i, response_j).

Everything works from per-token log-probabilities of the label tokens, so the unlikelihood term never needs a
(tokens x vocab) softmax: p = exp(log p), and -log(1 - p) = -log(-expm1(log p)).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path

import torch

STOPWORDS_FILE = Path(__file__).resolve().parent.parent / "resources" / "stopwords_en.txt"
# A word: letters/digits, with inner apostrophes (contractions) or hyphens kept inside the word.
WORD_RE = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")
PROB_CLAMP = 1e-5


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """The shipped English stopword list (no downloads)."""
    words = []
    for line in STOPWORDS_FILE.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            words.extend(line.split())
    return frozenset(words)


def content_word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of content words: stopwords and punctuation are skipped; numbers count as content."""
    stop = stopwords()
    return [m.span() for m in WORD_RE.finditer(text) if m.group().lower().replace("\u2019", "'") not in stop]


def first_subtoken_mask(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[bool]:
    """Mark, for each word span, the first token whose characters reach into the word.

    `offsets` are the tokens' (start, end) character offsets in the same text (fast-tokenizer offsets; a
    leading-space token like 'Ġword' starts at the space, so overlap rather than equal starts is tested).
    """
    mask = [False] * len(offsets)
    t = 0
    for start, end in spans:
        while t < len(offsets) and offsets[t][1] <= start:
            t += 1
        if t < len(offsets) and offsets[t][0] < end and offsets[t][1] > offsets[t][0]:
            mask[t] = True
    return mask


def unlikelihood(log_probs: torch.Tensor, clamp: float = PROB_CLAMP) -> torch.Tensor:
    """-log(1 - p) elementwise from log p, with p clamped to at most 1 - clamp (finite at p -> 1)."""
    log_probs = log_probs.clamp(max=math.log1p(-clamp))
    return -torch.log(-torch.expm1(log_probs))


def poexft_loss(
    log_probs: torch.Tensor,
    label_mask: torch.Tensor,
    negative: torch.Tensor,
    ul_weight: float,
    num_positive_tokens: torch.Tensor | float | None = None,
    num_negative_tokens: torch.Tensor | float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (loss, mle_loss, ul_loss).

    `log_probs`, `label_mask`: (batch, positions) log p of each label token and where a label exists.
    `negative`: (batch,) True for mismatched rows, whose labels mark only first sub-tokens of content words.
    Token counts default to this batch's; pass global counts for exact gradient accumulation / data parallelism.
    """
    neg = negative.to(torch.bool)[:, None] & label_mask
    pos = ~negative.to(torch.bool)[:, None] & label_mask
    n_pos = pos.sum() if num_positive_tokens is None else num_positive_tokens
    n_neg = neg.sum() if num_negative_tokens is None else num_negative_tokens
    mle_sum = -(log_probs * pos).sum()
    ul_sum = (unlikelihood(log_probs) * neg).sum()
    mle = mle_sum / torch.as_tensor(n_pos, dtype=log_probs.dtype).clamp(min=1)
    ul = ul_sum / torch.as_tensor(n_neg, dtype=log_probs.dtype).clamp(min=1)
    return mle + ul_weight * ul, mle, ul
