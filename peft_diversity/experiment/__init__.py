"""The comparison runner: train the listed modes, generate with each (model, decoder) pair, score, report.

One YAML (see `recipes/experiments/`) describes it all. Stages write into the run folder and are skipped
when their output exists (resumable); `force=True` redoes them. Every output is written to a temp path and
renamed, so a killed run never leaves a half-written stage behind that a re-run would trust.

    run_dir/models/<mode>/                  trained models (+ possibility_config.json)
    run_dir/responses/<model>__<decoder>.jsonl
    run_dir/scores/<model>__<decoder>.json
    run_dir/responses.jsonl  results.json  results.md  diversity_vs_coherence.png

With `seeds: [1, 2]` each seed is such a folder, run_dir/seed-<s>/, and run_dir/results.md / results.json /
frontier.png report over seeds (`study.py`, `frontier.py`); `sweep:` makes one run per value (`runs.py`).
"""

from __future__ import annotations

from peft_diversity.experiment.config import (  # noqa: F401
    BASE,
    DEFAULT_METRICS,
    DETERMINISTIC_DECODERS,
    SAMPLING_KEYS,
    ExperimentConfig,
    RunSpec,
)
from peft_diversity.experiment.report import (  # noqa: F401
    plot_diversity_vs_coherence,
    write_reports,
)
from peft_diversity.experiment.runner import (  # noqa: F401
    generate_run,
    load_eval_records,
    run_experiment,
    score_reference,
    score_run,
    train_mode,
)
from peft_diversity.experiment.study import run_study  # noqa: F401
