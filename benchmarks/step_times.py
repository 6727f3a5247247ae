"""Seconds per training step of each mode of an experiment YAML, with its own training settings (for budgets).

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/step_times.py recipes/experiments/dialogue-smollm2.yaml [--steps 2]

For each mode of the experiment: its `train:` settings and LoRA, one context per step as the experiment trains,
`--steps` timed steps after one untimed warm-up step, with the shared-prefix path (the default) and with
`shared_prefix: false`. Prints one line per (mode, path): median seconds per step, wall clock and process CPU time
(the Trainer's step: collation, forward, backward, optimizer step; CPU time is the steadier on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch


def step_seconds(config, mode: str, shared_prefix: bool, steps: int) -> list[tuple[float, float]]:
    from peft import LoraConfig
    from transformers import TrainerCallback

    from peft_diversity.data import load_one_to_many
    from peft_diversity.models.loading import load_model_and_tokenizer
    from peft_diversity.trainer.config import PossibilityConfig
    from peft_diversity.trainer.trainer import PossibilityTrainer

    class Clock(TrainerCallback):
        def __init__(self):
            self.times: list[tuple[float, float]] = []
            self.start = (0.0, 0.0)

        def on_step_begin(self, *_, **__):
            self.start = (time.perf_counter(), time.process_time())

        def on_step_end(self, *_, **__):
            self.times.append((time.perf_counter() - self.start[0], time.process_time() - self.start[1]))

    train = {
        **config.train,
        **config.mode_overrides.get(mode, {}),
        "max_steps": steps + 1,
        "logging_steps": 1000,
        "save_strategy": "no",
        "report_to": [],
        "bf16": False,
        "use_cpu": True,
        "disable_tqdm": True,
        "shared_prefix": shared_prefix,
        "seed": config.seed,
    }
    args = PossibilityConfig(output_dir=tempfile.mkdtemp(prefix="step_times-"), mode=mode, **train)
    records = load_one_to_many(config.dataset, split=config.train_split)[: steps + 1]
    model, tokenizer = load_model_and_tokenizer(config.base_model, dtype=torch.float32)
    lora = config.lora or {}
    peft_config = (
        LoraConfig(
            r=lora.get("lora_r", 16),
            lora_alpha=lora.get("lora_alpha", 32),
            lora_dropout=lora.get("lora_dropout", 0.0),
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
        if lora
        else None
    )
    clock = Clock()
    trainer = PossibilityTrainer(
        model,
        args=args,
        train_dataset=records,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[clock],
    )
    trainer.train()
    return clock.times[1:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config")
    parser.add_argument("--steps", type=int, default=2)
    a = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from peft_diversity.experiment.config import ExperimentConfig

    config = ExperimentConfig.from_yaml(a.config)
    for mode in config.modes:
        for shared in (True, False):
            times = step_seconds(config, mode, shared, a.steps)
            wall, cpu = (statistics.median(t[i] for t in times) for i in (0, 1))
            print(
                f"{mode:7s} shared_prefix={str(shared):5s} {wall:6.2f} s/step wall, {cpu:6.2f} s CPU  "
                f"{[tuple(round(x, 2) for x in t) for t in times]}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
