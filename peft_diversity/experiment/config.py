"""The experiment YAML as a dataclass (`ExperimentConfig`), checked before any training."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from peft_diversity.errors import ExperimentConfigError
from peft_diversity.templates import PossibilityTemplate
from peft_diversity.trainer.rows import MODES

logger = logging.getLogger(__name__)


BASE = "base"
DEFAULT_METRICS = ("semantic_diversity", "distinct_n", "self_bleu", "coherence")


SAMPLING_KEYS = {"temperature", "top_p", "top_k", "min_p"}
DETERMINISTIC_DECODERS = {"diverse_beam"}


@dataclass
class RunSpec:
    """One row of the comparison: a model (`base` or a trained mode) with a decoder and its settings."""

    model: str
    decoder: str
    settings: dict[str, Any] = field(default_factory=dict)
    variant: dict[str, Any] = field(default_factory=dict)
    """The sampling setting(s) this run was expanded with from `sweep` (e.g. {"temperature": 0.8}); they
    override `settings` and name the run (`poexft__possibilities@t=0.8`)."""

    @property
    def method(self) -> str:
        """The (model, decoder) pair, without the sweep value: one curve of the frontier."""
        return f"{self.model}__{self.decoder}"

    @property
    def name(self) -> str:
        return self.method + variant_suffix(self.variant)


@dataclass
class ExperimentConfig:
    """What to train, how to generate, what to score (fields = YAML keys)."""

    name: str
    base_model: str
    dataset: str
    runs: list[RunSpec]
    modes: list[str] = field(default_factory=lambda: list(MODES))
    train_split: str = "train"
    eval_split: str = "test"
    num_eval_contexts: int | None = None
    num_responses: int = 5
    train: dict[str, Any] = field(default_factory=dict)
    mode_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    lora: dict[str, Any] | None = None
    generation: dict[str, Any] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    judge: dict[str, Any] | None = None
    reference_model: str | None = (
        None  # likelihood_coherence's reference LM (None: builtin:smollm2-135m-instruct)
    )
    seed: int = 42
    seeds: list[int] | None = None
    """Several training seeds: the whole experiment once per seed into run_dir/seed-<s>/, then a report over
    seeds (`experiment/study.py`). `seed` alone keeps today's single run in run_dir."""
    sweep: dict[str, list[Any]] | None = None
    """One sampling setting and its values, e.g. {temperature: [0.6, 0.8, 1.0, 1.2]}: every run that samples
    and does not set that key in its own `settings` becomes one run per value (`experiment/runs.py`)."""
    coherence_metric: str = "coherence"
    """The metric on the frontier's x-axis: one with a value per context (scoring.report.PER_CONTEXT_METRICS)."""

    def __post_init__(self) -> None:
        from peft_diversity.experiment.runs import expand_sweep

        self.runs = expand_sweep(self.runs, self.sweep)  # idempotent: an expanded run is not swept again

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> ExperimentConfig:
        data = read_experiment_yaml(path)
        try:
            return cls.from_dict(data)
        except ExperimentConfigError as err:  # one `file: key.path: message` line per problem
            raise ExperimentConfigError(
                "\n".join(f"{path}: {line}" for line in str(err).splitlines())
            ) from None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        """The experiment, after the whole mapping is checked (`experiment.checks`): every problem at once."""
        _raise_problems(data, cls)
        if "seed" in data and data.get("seeds") is not None:
            raise ExperimentConfigError("seed: give 'seed' (one run) or 'seeds' (a list), not both")
        runs = [
            RunSpec(run["model"], run["decoder"], run.get("settings") or {}, run.get("variant") or {})
            for run in data["runs"]
        ]
        config = cls(**{**data, "runs": runs})
        config._validate_study()
        return config

    def validate(self) -> None:
        """Unknown keys, wrong types, unknown modes / decoders / metrics and impossible pairs fail here, before
        any training (all of them in one ExperimentConfigError, one line each)."""
        from dataclasses import asdict

        _raise_problems(
            {f.name: getattr(self, f.name) for f in fields(self)} | {"runs": [asdict(r) for r in self.runs]},
            type(self),
        )
        self._validate_study()

    def _validate_study(self) -> None:
        """seeds / sweep / coherence_metric / run variants (the multi-seed frontier study's keys)."""
        from peft_diversity.experiment.runs import check_sweep
        from peft_diversity.scoring.report import KNOWN_METRICS, PER_CONTEXT_METRICS

        if self.seeds is not None:
            if (
                not isinstance(self.seeds, list)
                or not self.seeds
                or not all(isinstance(s, int) and not isinstance(s, bool) for s in self.seeds)
            ):
                raise ExperimentConfigError(f"seeds must be a non-empty list of integers, got {self.seeds!r}")
            if len(set(self.seeds)) != len(self.seeds):
                raise ExperimentConfigError(f"seeds must not repeat, got {self.seeds}")
        if self.sweep is not None:
            check_sweep(self.sweep)
        if self.coherence_metric not in PER_CONTEXT_METRICS:  # before generation, not after it
            what = "has no value per context" if self.coherence_metric in KNOWN_METRICS else "is not a metric"
            raise ExperimentConfigError(
                f"coherence_metric {self.coherence_metric!r} {what}; choose from {list(PER_CONTEXT_METRICS)}"
            )
        names = [run.name for run in self.runs]
        for run in self.runs:
            bad = sorted(set(run.variant) - SAMPLING_KEYS)
            if bad:
                raise ExperimentConfigError(
                    f"run {run.name}: variant keys {bad} are not sampling settings {sorted(SAMPLING_KEYS)}"
                )
            if names.count(run.name) > 1:
                raise ExperimentConfigError(
                    f"run {run.name} is listed twice: its files would overwrite each "
                    "other (give one of them a variant)"
                )

    def template(self) -> PossibilityTemplate:
        """The task wording of every run: the `train` settings' task / instruction / sentences.

        Trained models carry it in their possibility_config.json; base-model runs are given it, so a story or
        custom experiment asks the base model the same question the fine-tuned ones learnt.
        """
        names = {f.name for f in fields(PossibilityTemplate)}
        return PossibilityTemplate(**{key: value for key, value in self.train.items() if key in names})


# `extends: other.yaml` (relative to the file): the other file's keys, then this file's on top; these mapping keys
# are merged one level deep (train: {ul_weight: 1.0} changes only ul_weight), every other key is replaced.
MERGED_KEYS = ("train", "lora", "generation", "mode_overrides")


def read_experiment_yaml(path: str | os.PathLike, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The experiment YAML as a dict, with `extends:` resolved (a one-change variant of a recipe is a few lines)."""
    resolved = Path(path).resolve()
    if resolved in _seen:
        raise ExperimentConfigError(f"{path}: 'extends' loops back to {resolved}")
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise ExperimentConfigError(f"{path}: cannot read ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise ExperimentConfigError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err)
        raise ExperimentConfigError(f"{where}: not valid YAML ({' '.join(str(problem).split())})") from None
    if not isinstance(data, dict):
        raise ExperimentConfigError(
            f"{path}: an experiment must be a mapping of key: value, got {type(data).__name__}"
        )
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ExperimentConfigError(
            f"{path}: 'extends' must be the path of another experiment YAML, got {parent!r}"
        )
    base = read_experiment_yaml(resolved.parent / parent, (*_seen, resolved))
    for key, value in data.items():
        both = key in MERGED_KEYS and isinstance(base.get(key), dict) and isinstance(value, dict)
        base[key] = {**base[key], **value} if both else value
    return base


# short names of swept settings in run names: poexft__possibilities@t=0.8
VARIANT_SHORT_NAMES = {"temperature": "t"}


def variant_suffix(variant: dict[str, Any]) -> str:
    """`@t=0.8` for {"temperature": 0.8}; empty for a run that was not swept."""
    return "".join(f"@{VARIANT_SHORT_NAMES.get(key, key)}={value}" for key, value in sorted(variant.items()))


def _raise_problems(data: dict[str, Any], config_class: type) -> None:
    from peft_diversity.experiment.checks import experiment_problems

    problems = experiment_problems(data, config_class)
    if problems:
        raise ExperimentConfigError("\n".join(problems))
