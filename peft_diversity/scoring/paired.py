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
    first: Sequence[float],
    second: Sequence[float],
    num_samples: int = 10_000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Mean of `first - second` over prompts, its percentile bootstrap interval, and the share of prompts where
    `first` is higher (ties count half). Both lists hold one score per prompt, in the same prompt order."""
    if len(first) != len(second) or not first:
        raise ScoringInputError(
            f"paired scores need the same non-zero number of prompts, got {len(first)} and {len(second)}"
        )
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


# ----- two levels: training seeds, then prompts ------------------------------------------------------------------
# With several training seeds, a gap can come from one lucky seed as well as from the prompts drawn. The two-level
# bootstrap resamples seeds with replacement, then prompts with replacement within each drawn seed, so its
# interval widens when seeds disagree (one level over the pooled prompts would not see them at all).
def two_level_indices(
    num_seeds: int, num_prompts: int, num_samples: int = 10_000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Resampled (seed, prompt) positions: seeds (num_samples, num_seeds) and prompts (num_samples, num_seeds,
    num_prompts), prompts drawn afresh for every drawn seed."""
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, num_seeds, size=(num_samples, num_seeds))
    prompts = rng.integers(0, num_prompts, size=(num_samples, num_seeds, num_prompts))
    return seeds, prompts


def two_level_means(values: np.ndarray, indices: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Bootstrap means of `values` (..., seeds, prompts) over the resampled positions: (num_samples, ...)."""
    values = np.asarray(values, dtype=float)
    seeds, prompts = indices
    picked = values[..., seeds[:, :, None], prompts]  # (..., num_samples, num_seeds, num_prompts)
    return np.moveaxis(picked.mean(axis=(-2, -1)), -1, 0)


def two_level_paired_bootstrap(
    first: Sequence[Sequence[float]],
    second: Sequence[Sequence[float]],
    num_samples: int = 10_000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """`paired_bootstrap` over seeds AND prompts: `first[s][p]` and `second[s][p]` are two methods' scores on
    prompt p with training seed s (every seed answers the same prompts, in the same order). The interval is
    the percentile interval of the two-level bootstrap of the mean difference."""
    ours, theirs = _seed_prompt_matrix(first, "first"), _seed_prompt_matrix(second, "second")
    if ours.shape != theirs.shape:
        raise ScoringInputError(
            f"paired scores need the same seeds and prompts, got (seeds, prompts) {ours.shape} "
            f"and {theirs.shape}"
        )
    diffs = ours - theirs
    means = two_level_means(diffs, two_level_indices(*diffs.shape, num_samples=num_samples, seed=seed))
    return {
        "mean_difference": float(diffs.mean()),
        "interval": percentile_interval(means, level),
        "level": level,
        "share_higher": float(((diffs > 0) + 0.5 * (diffs == 0)).mean()),
        "per_seed_difference": [float(d) for d in diffs.mean(axis=1)],
        "num_seeds": diffs.shape[0],
        "num_prompts": diffs.shape[1],
    }


def _seed_prompt_matrix(scores: Sequence[Sequence[float]], name: str) -> np.ndarray:
    try:
        matrix = np.asarray(scores, dtype=float)
    except ValueError:
        raise ScoringInputError(f"{name}: every seed needs the same number of prompts") from None
    if matrix.ndim != 2 or 0 in matrix.shape:
        raise ScoringInputError(
            f"{name}: need one non-empty list of per-prompt scores per seed, got shape {matrix.shape}"
        )
    return matrix
