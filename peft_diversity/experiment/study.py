"""Several training seeds: the whole experiment once per seed, then one report over seeds with the frontier.

    run_dir/seed-<s>/...                      one ordinary experiment per seed (models, responses, scores,
                                              results.md; resumable per stage as always)
    run_dir/seed-<s>/per_context/<run>.json   per-context semantic diversity and `coherence_metric` (stamped;
                                              written by the score stage as it scores)
    run_dir/results.md  results.json  frontier.png
                                              mean over seeds; PoExFT possibilities minus each run with a
                                              two-level bootstrap interval (seeds, then contexts); the frontier
                                              and a verdict per baseline at equal coherence (`frontier.py`)

`run_study` runs it all; with no `seeds:` in the YAML it is `run_experiment` (one run in run_dir).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from peft_diversity.atomic import atomic_write_text
from peft_diversity.errors import ExperimentConfigError
from peft_diversity.experiment.config import ExperimentConfig, RunSpec, variant_suffix
from peft_diversity.experiment.frontier import (
    DEFINITION,
    compare_at_equal_coherence,
    plot_frontier,
    verdict,
)
from peft_diversity.experiment.runner import (
    CONTEXT_DIVERSITY,
    context_metrics,
    context_stamp,
    likelihood_options,
    run_experiment,
    write_context_scores,
)
from peft_diversity.experiment.stamps import is_fresh
from peft_diversity.jsonl import read_json, write_json
from peft_diversity.scoring.paired import (
    percentile_interval,
    two_level_indices,
    two_level_means,
    two_level_paired_bootstrap,
)
from peft_diversity.scoring.report import format_results_table, summary_key

logger = logging.getLogger(__name__)

DIVERSITY = CONTEXT_DIVERSITY
BOOTSTRAP_SAMPLES = 10_000
BOOTSTRAP_SEED = 0  # fixed: the same draws for every comparison, and the same report on a re-run
MODEL_LABELS = {"poexft": "PoExFT", "oto": "OTO", "otm": "OTM", "base": "base"}


def seed_dir(run_dir: Path, seed: int) -> Path:
    return run_dir / f"seed-{seed}"


def run_study(
    config: ExperimentConfig, run_dir: str | os.PathLike, force: bool = False, judge: Any = None
) -> list[dict[str, Any]]:
    """Every seed's experiment, its per-context scores, then the report over seeds; returns the mean rows."""
    run_dir = Path(run_dir)
    if not config.seeds:
        return run_experiment(config, run_dir, force=force, judge=judge)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "experiment.json", asdict(config), default=str)
    per_seed = {}
    for seed in config.seeds:
        logger.info("seed %s: %s", seed, seed_dir(run_dir, seed))
        seed_config = replace(config, seed=seed, seeds=None)
        rows = run_experiment(seed_config, seed_dir(run_dir, seed), force=force, judge=judge)
        values = {
            run.name: context_scores(seed_config, run, seed_dir(run_dir, seed), force) for run in config.runs
        }
        per_seed[seed] = (rows, values)
    report = aggregate(config, per_seed)
    write_study_reports(report, config, run_dir)
    return report["results"]


# ----- per-context scores: the bootstrap's unit ------------------------------------------------------------------
def context_scores(
    config: ExperimentConfig, run: RunSpec, folder: Path, force: bool = False
) -> dict[str, Any]:
    """per_context/<run>.json: semantic diversity and the coherence metric of each held-out context. The score
    stage writes it as it scores; here it is only (re)computed where that file is missing or stale."""
    from peft_diversity.generation.responses import read_responses_jsonl
    from peft_diversity.scoring.report import score_predictions

    responses = folder / "responses" / f"{run.name}.jsonl"
    target = folder / "per_context" / f"{run.name}.json"
    if is_fresh(target, context_stamp(config, responses), force, f"per-context scores {run.name}"):
        logger.info("per-context scores %s: done already (%s)", run.name, target)
        return read_json(target, error=ExperimentConfigError)
    results = read_responses_jsonl(responses)
    scores = score_predictions(
        [r.texts for r in results],
        [r.context for r in results],
        metrics=context_metrics(config),
        return_per_prompt=True,
        **likelihood_options(config),
    )
    return write_context_scores(config, run, folder, responses, [r.id for r in results], scores["per_prompt"])


# ----- over seeds ---------------------------------------------------------------------------------------------------
def mean_rows(rows_per_seed: dict[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per run (matched by name), the mean over seeds of every numeric score all seeds have; `per_seed` keeps
    each seed's value."""
    seeds = list(rows_per_seed)
    first = rows_per_seed[seeds[0]]
    out = []
    for row in first:
        same = [next(r for r in rows_per_seed[s] if r["name"] == row["name"]) for s in seeds]
        keys = [
            k
            for k, v in row["scores"].items()
            if all(_number(r["scores"].get(k)) for r in same) and _number(v)
        ]
        scores = {k: float(np.mean([r["scores"][k] for r in same])) for k in keys}
        per_seed = {k: {str(s): r["scores"][k] for s, r in zip(seeds, same, strict=True)} for k in keys}
        out.append(
            {**{k: v for k, v in row.items() if k != "scores"}, "scores": scores, "per_seed": per_seed}
        )
    return out


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not np.isnan(value)


def aggregate(
    config: ExperimentConfig,
    per_seed: dict[int, tuple[list[dict], dict[str, dict]]],
    num_samples: int = BOOTSTRAP_SAMPLES,
) -> dict[str, Any]:
    """The report over seeds (results.json's content): mean rows, paired gaps and the frontier."""
    seeds = list(per_seed)
    runs = config.runs
    # values[run] = (2, seeds, contexts): [coherence, diversity]
    values = {
        run.name: np.array(
            [
                [_floats(per_seed[s][1][run.name][m]) for s in seeds]
                for m in (config.coherence_metric, DIVERSITY)
            ]
        )
        for run in runs
    }
    num_contexts = values[runs[0].name].shape[-1]
    indices = two_level_indices(len(seeds), num_contexts, num_samples, BOOTSTRAP_SEED)
    means = np.stack([values[r.name].mean(axis=(1, 2)) for r in runs])  # (runs, 2)
    boot = np.stack([two_level_means(values[r.name], indices) for r in runs], axis=1)  # (samples, runs, 2)
    return {
        "experiment": config.name,
        "seeds": seeds,
        "num_contexts": num_contexts,
        "coherence_metric": config.coherence_metric,
        "coherence_key": summary_key(config.coherence_metric),
        "bootstrap": {"samples": num_samples, "seed": BOOTSTRAP_SEED, "levels": "seeds, then contexts"},
        "results": mean_rows({s: per_seed[s][0] for s in seeds}),
        "points": {r.name: _point(r, means[i], boot[:, i]) for i, r in enumerate(runs)},
        "paired": paired_gaps(runs, values, num_samples),
        "frontier": frontier_comparisons(runs, means, boot),
    }


def _floats(scores: list[float | None]) -> list[float]:
    return [np.nan if v is None else float(v) for v in scores]


def _point(run: RunSpec, mean: np.ndarray, boot: np.ndarray) -> dict[str, Any]:
    return {
        "method": run.method,
        "variant": run.variant,
        "coherence": float(mean[0]),
        "diversity": float(mean[1]),
        "coherence_interval": percentile_interval(boot[:, 0]),
        "diversity_interval": percentile_interval(boot[:, 1]),
    }


def comparable(ours: RunSpec, other: RunSpec) -> bool:
    """A possibilities run is set against every other run at the same sweep value, and against unswept runs."""
    return other.name != ours.name and (
        not ours.variant or not other.variant or ours.variant == other.variant
    )


def paired_gaps(runs: list[RunSpec], values: dict[str, np.ndarray], num_samples: int) -> list[dict[str, Any]]:
    """PoExFT possibilities minus each comparable run on semantic diversity, two-level bootstrap interval."""
    out = []
    for ours in (r for r in runs if r.decoder == "possibilities"):
        for other in (r for r in runs if comparable(ours, r)):
            gap = two_level_paired_bootstrap(
                values[ours.name][1], values[other.name][1], num_samples, BOOTSTRAP_SEED
            )
            out.append(
                {
                    "ours": ours.name,
                    "run": other.name,
                    "run_diversity": float(np.mean(values[other.name][1])),
                    **gap,
                }
            )
    return out


def method_label(run: RunSpec) -> str:
    """'PoExFT possibilities', 'OTO sampling', 'base min_p': how verdicts name a curve."""
    return f"{MODEL_LABELS.get(run.model, run.model)} {run.decoder}"


def frontier_comparisons(runs: list[RunSpec], means: np.ndarray, boot: np.ndarray) -> dict[str, Any]:
    """PoExFT possibilities' points against every other method with >= 2 points (a curve), at equal coherence."""
    curves: dict[str, list[int]] = {}
    for i, run in enumerate(runs):
        curves.setdefault(run.method, []).append(i)
    ours = [i for i, r in enumerate(runs) if r.decoder == "possibilities"]
    comparisons = []
    for method, members in curves.items():
        if not ours or runs[members[0]].decoder == "possibilities" or len(members) < 2:
            continue
        result = compare_at_equal_coherence(means, boot, ours, members)
        for point, index in zip(result["points"], ours, strict=True):
            point["run"] = runs[index].name
        comparisons.append(
            {
                "baseline": method,
                **result,
                "verdict": verdict(method_label(runs[ours[0]]), method_label(runs[members[0]]), result),
            }
        )
    return {"definition": DEFINITION, "comparisons": comparisons}


# ----- reports -------------------------------------------------------------------------------------------------------
def write_study_reports(report: dict[str, Any], config: ExperimentConfig, run_dir: Path) -> None:
    """run_dir/results.md, results.json and frontier.png."""
    write_json(run_dir / "results.json", report, default=str)
    x_label = f"coherence: {_coherence_name(report)}"
    plot_frontier(_curves(report, config.runs), run_dir / "frontier.png", x_label)
    seeds = report["seeds"]
    links = ", ".join(f"[seed {s}](seed-{s}/results.md)" for s in seeds)
    text = (
        f"# {config.name}: {len(seeds)} training seeds\n\n"
        f"## Mean over seeds {seeds}\n\n{format_results_table(report['results'])}\n\n"
        f"K = {config.num_responses} responses per context, {report['num_contexts']} held-out contexts of "
        f"`{config.dataset}` ({config.eval_split}); base model `{config.base_model}`. Each seed trains and "
        f"samples on its own (training seed = the seed; every run's generation seed is derived from the seed "
        f"and the run's name, each held-out context's from the run's). Per-seed reports (per-k openings, the per-context paired gaps): {links}.\n"
        f"{_paired_md(report)}{_frontier_md(report)}"
    )
    atomic_write_text(run_dir / "results.md", text)


def _interval(interval: list[float] | None) -> str:
    return "-" if interval is None else f"[{interval[0]:+.3f}, {interval[1]:+.3f}]"


def _paired_md(report: dict[str, Any]) -> str:
    if not report["paired"]:
        return ""
    lines = [
        "\n## PoExFT possibilities minus each run: semantic diversity\n",
        "95% interval: two-level bootstrap (seeds resampled, then contexts within each seed; "
        f"{report['bootstrap']['samples']} samples). A swept possibilities run is set against the runs at "
        "the same sweep value and the unswept runs.\n",
        "| PoExFT run | run | run's semantic div. | PoExFT minus run | 95% interval | per seed |",
        "|---|---|---:|---:|---|---|",
    ]
    lines += [
        f"| {g['ours']} | {g['run']} | {g['run_diversity']:.3f} | {g['mean_difference']:+.3f} | "
        f"{_interval(g['interval'])} | " + ", ".join(f"{d:+.3f}" for d in g["per_seed_difference"]) + " |"
        for g in report["paired"]
    ]
    return "\n".join(lines) + "\n"


def _coherence_name(report: dict[str, Any], quote: str = "") -> str:
    """The coherence metric, and the score key read from it where that differs ("coherence (`coherence_relevance`)")."""
    metric, key = report["coherence_metric"], report["coherence_key"]
    return metric if key == metric else f"{metric} ({quote}{key}{quote})"


def _frontier_md(report: dict[str, Any]) -> str:
    frontier = report["frontier"]
    lines = [
        f"\n## The frontier: semantic diversity against {_coherence_name(report, '`')}\n",
        "![frontier](frontier.png)\n",
        frontier["definition"] + "\n",
    ]
    if not frontier["comparisons"]:
        lines.append(
            "No comparison: the frontier needs PoExFT possibilities runs and a baseline swept over at "
            "least two values (`sweep:`).\n"
        )
        return "\n".join(lines)
    lines.append("### Verdicts\n")
    lines += [f"* {c['verdict']}" for c in frontier["comparisons"]]
    lines += [
        "",
        "### Per PoExFT point\n",
        "| PoExFT point | coherence | semantic div. | baseline | baseline's div. "
        "at that coherence | gap | 95% interval |",
        "|---|---:|---:|---|---:|---:|---|",
    ]
    for comp in frontier["comparisons"]:
        for p in comp["points"]:
            base = "outside its range" if not p["inside"] else f"{p['baseline_diversity']:.3f}"
            gap = "-" if p["gap"] is None else f"{p['gap']:+.3f}"
            lines.append(
                f"| {p['run']} | {p['coherence']:.3f} | {p['diversity']:.3f} | {comp['baseline']} | {base} "
                f"| {gap} | {_interval(p['interval'])} |"
            )
    return "\n".join(lines) + "\n"


def _curves(report: dict[str, Any], runs: list[RunSpec]) -> list[dict[str, Any]]:
    curves: dict[str, dict[str, Any]] = {}
    for run in runs:
        point = report["points"][run.name]
        curve = curves.setdefault(
            run.method,
            {
                "label": method_label(run),
                "x": [],
                "y": [],
                "x_err": [[], []],
                "y_err": [[], []],
                "tags": [],
                "highlight": run.decoder == "possibilities",
            },
        )
        curve["x"].append(point["coherence"])
        curve["y"].append(point["diversity"])
        for err, value, (low, high) in (
            (curve["x_err"], point["coherence"], point["coherence_interval"]),
            (curve["y_err"], point["diversity"], point["diversity_interval"]),
        ):
            err[0].append(max(value - low, 0.0))
            err[1].append(max(high - value, 0.0))
        curve["tags"].append(variant_suffix(run.variant)[1:])  # "t=0.8"
    return list(curves.values())
