"""Does a possibility number carry an idea or only a style? Per k, the most frequent opening words across
contexts, and diversity measured after the first few words are removed (a k that only fixes an opening
loses its diversity there)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from ._common import is_empty_response


def opening(text: str, num_words: int = 2) -> str:
    """The first `num_words` words, lower-cased, punctuation at their ends stripped."""
    words = [w.strip(".,!?;:\"'()").lower() for w in text.split()[:num_words]]
    return " ".join(w for w in words if w)


def drop_opening(text: str, num_words: int = 3) -> str:
    """`text` without its first `num_words` words."""
    return " ".join(text.split()[num_words:])


def openings_per_possibility(
    possibilities: Sequence[Sequence[int]], texts: Sequence[Sequence[str]], num_words: int = 2, top: int = 3
) -> dict[int, dict[str, Any]]:
    """For each possibility number k: how many responses it gave, and its `top` most frequent openings with
    the share of k's responses that start with each (1.0 = every context's response for k opens the same way).
    Empty responses have no opening and are left out (an empty "opening" would make k look varied)."""
    by_k: dict[int, list[str]] = {}
    for numbers, group in zip(possibilities, texts, strict=True):
        for k, text in zip(numbers, group, strict=True):
            if not is_empty_response(text):
                by_k.setdefault(int(k), []).append(opening(text, num_words))
    return {
        k: {
            "responses": len(found),
            "top": [
                (words, round(count / len(found), 3)) for words, count in Counter(found).most_common(top)
            ],
        }
        for k, found in sorted(by_k.items())
    }
