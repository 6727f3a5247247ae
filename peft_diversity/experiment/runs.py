"""How an experiment's runs are derived from its YAML: the temperature (or other sampling) sweep, and each
run's own generation seed.

Sweep: `sweep: {temperature: [0.6, 0.8, 1.0, 1.2]}` turns every run that samples into one run per value,
named `<model>__<decoder>@t=<value>` (files `responses/poexft__possibilities@t=0.8.jsonl`, ...). A run is
swept when its decoder samples (every decoder but diverse_beam) and its own `settings` do not set the swept
key: a run that pins `settings: {temperature: 1.0}` stays one run.

Generation seed: every run draws with its own seed, `generation_seed(experiment seed, run name)` = the first
4 bytes (big-endian) of SHA-256 of "<seed>:<run name>", so base, OTO and OTM draws are independent of one
another, and a re-run (or another machine) draws the same. Each held-out context is then answered with its own
seed, `context_seed(run seed, context index)`: one seed reused for every context would give row i of every
context the same random numbers, so the i-th response (the i-th possibility number) would open alike across
contexts because of the draw, not the model.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from peft_diversity.errors import ExperimentConfigError

if TYPE_CHECKING:
    from peft_diversity.experiment.config import RunSpec


def generation_seed(experiment_seed: int, run_name: str) -> int:
    """A stable 32-bit seed per (experiment seed, run name); see the module docstring."""
    digest = hashlib.sha256(f"{experiment_seed}:{run_name}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def context_seed(run_seed: int, index: int) -> int:
    """The seed for a run's `index`-th held-out context (a stable 32-bit hash, as `generation_seed`)."""
    digest = hashlib.sha256(f"{run_seed}:context:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def check_sweep(sweep: Any) -> tuple[str, list[Any]]:
    """The swept key and its values; anything else is one clear error."""
    from peft_diversity.experiment.config import SAMPLING_KEYS

    if not isinstance(sweep, dict) or len(sweep) != 1:
        raise ExperimentConfigError(
            f"sweep must map ONE sampling setting to a list of values, e.g. "
            f"{{temperature: [0.6, 0.8, 1.0]}}, got {sweep!r}"
        )
    ((key, values),) = sweep.items()
    if key not in SAMPLING_KEYS:
        raise ExperimentConfigError(
            f"sweep: {key!r} is not a sampling setting; choose from {sorted(SAMPLING_KEYS)}"
        )
    if (
        not isinstance(values, list)
        or not values
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    ):
        raise ExperimentConfigError(f"sweep: {key} must be a non-empty list of numbers, got {values!r}")
    if len(set(values)) != len(values):
        raise ExperimentConfigError(f"sweep: {key} repeats a value: {values}")
    return key, values


def is_swept(run: RunSpec, key: str) -> bool:
    from peft_diversity.experiment.config import DETERMINISTIC_DECODERS

    return run.decoder not in DETERMINISTIC_DECODERS and key not in run.settings and not run.variant


def expand_sweep(runs: list[RunSpec], sweep: dict[str, list[Any]] | None) -> list[RunSpec]:
    """Each swept run replaced, in place, by one run per value (the order of `runs` is kept, so runs of one
    model stay together and the model is loaded once)."""
    if not sweep:
        return list(runs)
    key, values = check_sweep(sweep)
    out: list[RunSpec] = []
    for run in runs:
        out.extend(
            [replace(run, settings=dict(run.settings), variant={key: v}) for v in values]
            if is_swept(run, key)
            else [run]
        )
    return out
