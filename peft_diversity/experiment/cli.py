"""`peft-diversity experiment` and `peft-diversity demo`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from peft_diversity.assets import asset_path

RECIPES = asset_path("recipes") / "experiments"
DEMO_CONFIG = RECIPES / "demo-cpu.yaml"


def add_arguments(parser: argparse.ArgumentParser, demo: bool = False) -> None:
    if not demo:
        parser.add_argument("--config", required=True, help="experiment YAML (see recipes/experiments/)")
    parser.add_argument("--run-dir", default=None, help="output folder (default: runs/<experiment name>)")
    parser.add_argument("--force", action="store_true", help="redo finished stages instead of skipping them")


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, demo=True)


def run(args: argparse.Namespace) -> int:
    import time

    from peft_diversity.errors import ExperimentConfigError
    from peft_diversity.experiment.config import ExperimentConfig
    from peft_diversity.experiment.runner import run_experiment
    from peft_diversity.scoring.report import format_results_table

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    config_path = Path(getattr(args, "config", None) or DEMO_CONFIG)
    if not config_path.is_file():
        raise ExperimentConfigError(f"experiment config not found: {config_path}")
    config = ExperimentConfig.from_yaml(config_path)
    run_dir = Path(args.run_dir or Path("runs") / config.name)
    start = time.perf_counter()
    rows = run_experiment(config, run_dir, force=args.force)
    print(f"\n{format_results_table(rows)}\n")
    print(f"wrote {run_dir}/results.md, results.json, responses.jsonl, diversity_vs_coherence.png "
          f"({time.perf_counter() - start:.0f} s)")
    return 0
