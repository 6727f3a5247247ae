"""Gaps (coherence by default) between a study's runs at the same temperature, with the study's two-level paired bootstrap.

The study report compares semantic diversity at the same temperature; this prints the same comparison for the
coherence metric, from the per-context files the score stage writes:

    python scripts/study_gaps.py runs/study-dialogue
    python scripts/study_gaps.py runs/study-dialogue --variant runs/study-dialogue-ul1 --metric semantic_diversity

`--variant DIR`: a one-change variant's PoExFT (same contexts and seeds) against this study's PoExFT, OTO and OTM.
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

VARIANT_PAIRS = (
    ("poexft__possibilities", "poexft__possibilities"),
    ("poexft__possibilities", "oto__sampling"),
    ("poexft__possibilities", "otm__sampling"),
)


def per_context(
    run_dir: Path, seeds: list[int], run: str, metric: str
) -> tuple[list[list[float]], list[list[str]]]:
    """One list of per-context values per seed (checked to be the same contexts as the first folder's)."""
    files = [read_json(run_dir / f"seed-{s}" / "per_context" / f"{run}.json") for s in seeds]
    return [f[metric] for f in files], [f["ids"] for f in files]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a study's run folder (results.json, seed-<s>/)")
    parser.add_argument("--metric", default="likelihood_coherence")
    parser.add_argument("--temperatures", default="0.6,0.8,1.0,1.2")
    parser.add_argument("--variant", type=Path, help="a one-change variant's run folder (PoExFT only)")
    args = parser.parse_args()
    seeds = read_json(args.run_dir / "results.json")["seeds"]
    for t in args.temperatures.split(","):
        cells = []
        pairs = VARIANT_PAIRS if args.variant else PAIRS
        for first, second in pairs:
            ours, our_ids = per_context(args.variant or args.run_dir, seeds, f"{first}@t={t}", args.metric)
            theirs, their_ids = per_context(args.run_dir, seeds, f"{second}@t={t}", args.metric)
            if our_ids != their_ids:
                raise SystemExit(f"{first} and {second} at t={t} were scored on different contexts")
            gap = two_level_paired_bootstrap(ours, theirs)
            low, high = gap["interval"]
            name = f"{'variant ' if args.variant else ''}{first.split('__')[0]} - {second.split('__')[0]}"
            cells.append(f"{name} {gap['mean_difference']:+.3f} [{low:+.3f}, {high:+.3f}]")
        print(f"t={t}: " + " | ".join(cells))


if __name__ == "__main__":
    main()
