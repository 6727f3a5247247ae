"""Shared prompt prefixes: the tokens every row of a group starts with, computed once and expanded to the rows.

One owner for the concept, used by generation (`generation/core.py`: K possibility prompts of one context) and by
training (`trainer/trainer.py`: a context's positive and negative rows). A group's prefix is run once with the KV
cache on; `expand_cache` then gives each row its group's keys and values (an index gather, so gradients flow back
into the shared prefix when training), and only the rows' own tails are run on top of it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from typing import Any

import torch

MIN_SHARED_PREFIX = 8
"""Shortest shared prefix (tokens) worth a separate pass; shorter ones take the per-row / plain path."""


def common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Tokens shared by all rows, leaving at least one token per row for the tail pass."""
    limit = min(len(row) for row in rows) - 1
    length = 0
    while length < limit and all(row[length] == rows[0][length] for row in rows):
        length += 1
    return length


def pad_left(
    rows: Sequence[Sequence[int]], pad: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask) of rows left-padded to the longest, so each row's last token is at the right edge."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row) :] = 1
    return ids.to(device), mask.to(device)


def expand_cache(cache: Any, row_to_group: torch.Tensor) -> bool:
    """Give row r the cached keys/values of group `row_to_group[r]`, in place (batch rows gathered by index).

    The gather is differentiable: the gradients of all rows sum into their group's prefix. False when `cache` is
    None or is not a transformers `Cache` that can select along the batch (the caller then runs rows in full).
    `row_to_group` must be on the cache's device.
    """
    if cache is None or not hasattr(cache, "batch_select_indices"):
        return False
    cache.batch_select_indices(row_to_group)
    return True


@functools.lru_cache(maxsize=64)
def cache_argument(module_type: type) -> str:
    """The keyword a model's forward takes its KV cache by: `cache` (transformers >= 5.24), else `past_key_values`."""
    return "cache" if "cache" in inspect.signature(module_type.forward).parameters else "past_key_values"
