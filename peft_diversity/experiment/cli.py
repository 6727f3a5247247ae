"""`peft-diversity experiment` and `peft-diversity demo`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from peft_diversity.assets import asset_path
from peft_diversity.atomic import check_output
from peft_diversity.cli import command_parser

if TYPE_CHECKING:
    from transformers import HfArgumentParser

RECIPES = asset_path("recipes") / "experiments"
DEMO_CONFIG = RECIPES / "demo-cpu.yaml"
# The demo must fit in minutes on a 2-core CPU, so it uses the 22.7M MiniLM decoder; the same comparison on a
# real chat model does not fit there (measured: docs/results.md), and the demo says so at its end.
REAL_MODEL_NOTE = (
    "The demo's generator is a 22.7M-parameter encoder turned decoder: its replies are short and loosely on topic. "
    "The same comparison on a real chat model (SmolLM2-135M-Instruct, offline) is one command, about {minutes} min "
    "on a 2-core CPU (minutes on a GPU):\n  peft-diversity experiment --config {config}"
)
REAL_MODEL_CONFIG = "recipes/experiments/dialogue-smollm2.yaml"
REAL_MODEL_MINUTES = 72  # measured on the 2-core CPU, 2026-11-27 (docs/results.md)


@dataclass
class DemoArguments:
    """Arguments of `peft-diversity demo` (the experiment in recipes/experiments/demo-cpu.yaml)."""

    output_dir: str | None = field(
        default=None, metadata={"help": "Output folder (default: runs/<experiment name>)."}
    )
    force: bool = field(default=False, metadata={"help": "Redo finished stages instead of skipping them."})


@dataclass
class ExperimentArguments(DemoArguments):
    """Arguments of `peft-diversity experiment`: the demo's, plus the experiment YAML (its `--config`, so this
    command's YAML is its content, not a file of flags)."""

    config: str | None = field(
        default=None, metadata={"help": "Experiment YAML (see recipes/experiments/).", "required": True}
    )


RENAMED = {"--run-dir": "--output-dir"}  # issue 22: one flag name per concept
DESCRIPTION = "Train, generate and score a comparison from an experiment YAML; finished stages are skipped."


def make_parser(prog: str | None = None) -> HfArgumentParser:
    """The parser of `peft-diversity experiment`."""
    return command_parser(
        ExperimentArguments, prog=prog, description=DESCRIPTION, renamed=RENAMED, config_flag=False
    )


def make_demo_parser(prog: str | None = None) -> HfArgumentParser:
    """The parser of `peft-diversity demo`."""
    return command_parser(
        DemoArguments, prog=prog, description=f"The offline CPU demo: {DEMO_CONFIG.name}.", renamed=RENAMED
    )


def run(args: DemoArguments) -> int:
    import time

    from peft_diversity.errors import ExperimentConfigError
    from peft_diversity.experiment.config import ExperimentConfig
    from peft_diversity.experiment.runner import run_folder_lock
    from peft_diversity.experiment.study import run_study
    from peft_diversity.scoring.report import format_results_table

    config_path = Path(getattr(args, "config", None) or DEMO_CONFIG)
    if not config_path.is_file():
        raise ExperimentConfigError(f"experiment config not found: {config_path}")
    config = ExperimentConfig.from_yaml(config_path)
    run_dir = Path(args.output_dir or Path("runs") / config.name)
    check_output(run_dir, "--output-dir", folder=True)  # before any training
    start = time.perf_counter()
    from peft_diversity.scoring.judges import make_judge

    with run_folder_lock(run_dir):  # a second run on the folder stops here, before loading a judge
        judge = (
            make_judge(**config.judge) if config.judge else None
        )  # the coherence column's LLM judge, if named
        rows = run_study(config, run_dir, force=args.force, judge=judge)  # run_experiment unless `seeds:`
    print(f"\n{format_results_table(rows)}\n")
    written = (
        "results.md, results.json, frontier.png (mean over seeds; each seed in seed-<s>/)"
        if config.seeds
        else "results.md, results.json, responses.jsonl, diversity_vs_coherence.png"
    )
    print(f"wrote {run_dir}/{written} ({time.perf_counter() - start:.0f} s)")
    if config_path == DEMO_CONFIG:
        print("\n" + REAL_MODEL_NOTE.format(minutes=REAL_MODEL_MINUTES, config=REAL_MODEL_CONFIG))
    return 0
