"""Paired comparisons over prompts: is one method's per-prompt score higher than another's beyond chance?

Both methods answer the same prompts, so the unit of resampling is the prompt: a paired bootstrap of the
per-prompt differences gives an interval for the mean difference that accounts for how much prompts vary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from peft_diversity.errors import ScoringInputError


def paired_bootstrap(
    first: Sequence[float], second: Sequence[float], num_samples: int = 10_000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """Mean of `first - second` over prompts, its percentile bootstrap interval, and the share of prompts where
    `first` is higher (ties count half). Both lists hold one score per prompt, in the same prompt order."""
    if len(first) != len(second) or not first:
        raise ScoringInputError(f"paired scores need the same non-zero number of prompts, got {len(first)} and "
                                f"{len(second)}")
    diffs = np.asarray(first, dtype=float) - np.asarray(second, dtype=float)
    return {
        "mean_difference": float(diffs.mean()),
        "interval": bootstrap_mean(diffs, num_samples, seed, level)["interval"],
        "level": level,
        "share_higher": float(((diffs > 0) + 0.5 * (diffs == 0)).mean()),
        "num_prompts": len(diffs),
    }


def bootstrap_mean(
    values: Sequence[float], num_samples: int = 10_000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """Mean of `values` (one per prompt) and the percentile bootstrap interval of the mean, prompts resampled."""
    if len(values) == 0:
        raise ScoringInputError("a bootstrap needs at least one value")
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(num_samples, len(values)))].mean(axis=1)
    return {"mean": float(values.mean()), "interval": percentile_interval(means, level), "level": level}


def percentile_interval(estimates: np.ndarray, level: float = 0.95) -> list[float]:
    """The central `level` share of bootstrap estimates: [low, high]."""
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(estimates, [tail, 100 - tail])
    return [float(low), float(high)]
