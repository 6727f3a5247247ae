"""The diversity-coherence frontier: is PoExFT more diverse than a baseline AT EQUAL COHERENCE?

Each (model, decoder) pair swept over temperature traces a curve of (coherence x, semantic diversity y) points.
A PoExFT point is compared with a baseline curve at the PoExFT point's own coherence (`DEFINITION`). All
functions here are pure: they take the points' means and their bootstrap means (`scoring.paired.
two_level_means`) and return numbers and sentences; `plot_frontier` draws them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from peft_diversity.atomic import atomic_figure
from peft_diversity.scoring.paired import percentile_interval

DEFINITION = (
    "**At equal coherence**, concretely: each curve is one (model, decoder) pair's points, one per temperature "
    "(x = mean coherence, y = mean semantic diversity, over seeds and contexts), sorted by coherence and joined "
    "by straight lines. For each PoExFT point, the baseline's diversity at the PoExFT point's coherence is read "
    "off that line (linear interpolation); the gap is PoExFT's diversity minus it. A PoExFT point outside the "
    "baseline's coherence range (below its least or above its most coherent point) is not compared — no "
    "extrapolation — and is marked *outside*. A comparison's number X is the mean gap over the PoExFT points "
    "inside the range. Its 95% interval is the same quantity recomputed on each two-level bootstrap sample "
    "(seeds resampled, then contexts within each seed; one set of draws shared by every run, so the runs stay "
    "paired); in a sample where a point leaves the resampled baseline's range that point is left out, and a "
    "sample with no point left is dropped (results.json counts them). Verdict: *beats* when the whole interval "
    "is above 0, *is lower* when it is below 0, otherwise *does not, within ±Y* with Y the interval's largest "
    "distance from 0."
)


def interpolate_at(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """The curve's y at `x` (points sorted by x, joined linearly); NaN outside [min xs, max xs]."""
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    order = np.argsort(xs, kind="stable")
    xs, ys = xs[order], ys[order]
    if not xs.size or not xs[0] <= x <= xs[-1]:  # also NaN x
        return math.nan
    return float(np.interp(x, xs, ys))


def gaps_at_equal_coherence(
    ours_x: Sequence[float], ours_y: Sequence[float], base_x: Sequence[float], base_y: Sequence[float]
) -> np.ndarray:
    """Per point of ours: its diversity minus the baseline curve's at its coherence (NaN: outside the range)."""
    return np.array([y - interpolate_at(base_x, base_y, x) for x, y in zip(ours_x, ours_y, strict=True)])


def compare_at_equal_coherence(
    means: np.ndarray, boot: np.ndarray, ours: Sequence[int], baseline: Sequence[int], level: float = 0.95
) -> dict[str, Any]:
    """Ours (point indices) against one baseline curve (point indices) at equal coherence.

    `means` is (points, 2) = [coherence, diversity] per point; `boot` is (samples, points, 2), the same per
    bootstrap sample. Returns per-point gaps with intervals and the mean gap over points inside the range.
    """
    means, boot = np.asarray(means, dtype=float), np.asarray(boot, dtype=float)
    ours, baseline = list(ours), list(baseline)

    def gaps(m: np.ndarray) -> np.ndarray:
        return gaps_at_equal_coherence(m[ours, 0], m[ours, 1], m[baseline, 0], m[baseline, 1])

    point = gaps(means)
    inside = ~np.isnan(point)
    samples = np.stack([gaps(b) for b in boot])  # (samples, len(ours))
    points = []
    for j, index in enumerate(ours):
        kept = samples[:, j][~np.isnan(samples[:, j])] if inside[j] else np.array([])
        points.append(
            {
                "coherence": float(means[index, 0]),
                "diversity": float(means[index, 1]),
                "inside": bool(inside[j]),
                "baseline_diversity": float(means[index, 1] - point[j]) if inside[j] else None,
                "gap": float(point[j]) if inside[j] else None,
                "interval": percentile_interval(kept, level) if kept.size else None,
            }
        )
    result = {
        "points": points,
        "baseline_range": _range(means[baseline, 0]),
        "ours_range": _range(means[ours, 0]),
        "num_inside": int(inside.sum()),
        "level": level,
        "gap": None,
        "interval": None,
        "samples_kept": 0,
        "num_samples": len(boot),
    }
    if inside.any():
        chosen = samples[:, inside]
        usable = ~np.isnan(chosen).all(axis=1)
        summary = np.nanmean(chosen[usable], axis=1)
        result.update(
            gap=float(point[inside].mean()),
            samples_kept=int(usable.sum()),
            interval=percentile_interval(summary, level) if summary.size else None,
        )
    return result


def _range(values: np.ndarray) -> list[float]:
    return [float(np.min(values)), float(np.max(values))]


def verdict(ours: str, baseline: str, comparison: dict[str, Any]) -> str:
    """One plain sentence: does `ours` beat `baseline` at equal coherence, by how much, or within what?"""
    if comparison["gap"] is None or comparison["interval"] is None:
        lo, hi = comparison["ours_range"]
        blo, bhi = comparison["baseline_range"]
        return (
            f"{ours} cannot be compared with {baseline} at equal coherence: its coherence "
            f"[{lo:.3f}, {hi:.3f}] lies outside {baseline}'s range [{blo:.3f}, {bhi:.3f}]."
        )
    gap, (low, high) = comparison["gap"], comparison["interval"]
    where = (
        f"({comparison['num_inside']} of {len(comparison['points'])} {ours} points inside {baseline}'s range)"
    )
    if low > 0:
        return f"{ours} beats {baseline} at equal coherence by {gap:+.3f} [{low:+.3f}, {high:+.3f}] {where}."
    if high < 0:
        return (
            f"{ours} does not beat {baseline} at equal coherence: it is lower by {-gap:.3f} "
            f"[{low:+.3f}, {high:+.3f}] {where}."
        )
    within = max(abs(low), abs(high))
    return (
        f"{ours} does not beat {baseline} at equal coherence, within ±{within:.3f}: gap {gap:+.3f} "
        f"[{low:+.3f}, {high:+.3f}] {where}."
    )


def plot_frontier(curves: Sequence[dict[str, Any]], path: Path, x_label: str) -> Path:
    """One curve per (model, decoder): points (x, y) with asymmetric error bars `x_err` / `y_err` (2, n) and a
    text label per point (`tags`, e.g. the temperature); `highlight` curves (PoExFT) are drawn thicker."""
    with atomic_figure(path, figsize=(7, 5), dpi=120) as (fig, ax):
        for curve in curves:
            order = np.argsort(curve["x"], kind="stable")
            x, y = np.asarray(curve["x"])[order], np.asarray(curve["y"])[order]
            x_err, y_err = np.asarray(curve["x_err"])[:, order], np.asarray(curve["y_err"])[:, order]
            bold = curve.get("highlight", False)
            ax.errorbar(
                x,
                y,
                xerr=x_err,
                yerr=y_err,
                marker="*" if bold else "o",
                markersize=10 if bold else 5,
                linewidth=2.2 if bold else 1.2,
                capsize=2,
                label=curve["label"],
            )
            for xi, yi, tag in zip(x, y, np.asarray(curve["tags"], dtype=object)[order], strict=True):
                if tag:
                    ax.annotate(str(tag), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlabel(f"{x_label} →")
        ax.set_ylabel("semantic diversity (1 - mean pairwise SBERT cosine) →")
        ax.set_title("Diversity vs coherence: mean over seeds, 95% bootstrap bars", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return path
