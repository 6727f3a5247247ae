"""Coherence gaps between a study's runs at the same temperature, with the study's two-level paired bootstrap.

The study report compares semantic diversity at the same temperature; this prints the same comparison for the
coherence metric, from the per-context files the score stage writes:

    python scripts/study_coherence_gaps.py runs/study-dialogue
"""

from __future__ import annotations

import argparse
from pathlib import Path

from peft_diversity.jsonl import read_json
from peft_diversity.scoring.paired import two_level_paired_bootstrap

PAIRS = (
    ("poexft__possibilities", "oto__sampling"),
    ("otm__sampling", "oto__sampling"),
    ("poexft__possibilities", "otm__sampling"),
)


def per_context(run_dir: Path, seeds: list[int], run: str, metric: str) -> list[list[float]]:
    """One list of per-context values per seed."""
    return [read_json(run_dir / f"seed-{s}" / "per_context" / f"{run}.json")[metric] for s in seeds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a study's run folder (results.json, seed-<s>/)")
    parser.add_argument("--metric", default="likelihood_coherence")
    parser.add_argument("--temperatures", default="0.6,0.8,1.0,1.2")
    args = parser.parse_args()
    seeds = read_json(args.run_dir / "results.json")["seeds"]
    for t in args.temperatures.split(","):
        cells = []
        for first, second in PAIRS:
            gap = two_level_paired_bootstrap(
                per_context(args.run_dir, seeds, f"{first}@t={t}", args.metric),
                per_context(args.run_dir, seeds, f"{second}@t={t}", args.metric),
            )
            low, high = gap["interval"]
            name = f"{first.split('__')[0]} - {second.split('__')[0]}"
            cells.append(f"{name} {gap['mean_difference']:+.3f} [{low:+.3f}, {high:+.3f}]")
        print(f"t={t}: " + " | ".join(cells))


if __name__ == "__main__":
    main()
