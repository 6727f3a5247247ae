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

    @property
    def name(self) -> str:
        return f"{self.model}__{self.decoder}"


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
    seed: int = 42

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> ExperimentConfig:
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
            raise ExperimentConfigError(f"{path}: an experiment must be a mapping of key: value, "
                                        f"got {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except ExperimentConfigError as err:  # one `file: key.path: message` line per problem
            raise ExperimentConfigError("\n".join(f"{path}: {line}" for line in str(err).splitlines())) from None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        """The experiment, after the whole mapping is checked (`experiment.checks`): every problem at once."""
        _raise_problems(data, cls)
        runs = [RunSpec(run["model"], run["decoder"], run.get("settings") or {}) for run in data["runs"]]
        return cls(**{**data, "runs": runs})

    def validate(self) -> None:
        """Unknown keys, wrong types, unknown modes / decoders / metrics and impossible pairs fail here, before
        any training (all of them in one ExperimentConfigError, one line each)."""
        from dataclasses import asdict

        _raise_problems({f.name: getattr(self, f.name) for f in fields(self)} | {"runs": [asdict(r) for r in self.runs]},
                        type(self))

    def template(self) -> PossibilityTemplate:
        """The task wording of every run: the `train` settings' task / instruction / sentences.

        Trained models carry it in their possibility_config.json; base-model runs are given it, so a story or
        custom experiment asks the base model the same question the fine-tuned ones learnt.
        """
        names = {f.name for f in fields(PossibilityTemplate)}
        return PossibilityTemplate(**{key: value for key, value in self.train.items() if key in names})


def _raise_problems(data: dict[str, Any], config_class: type) -> None:
    from peft_diversity.experiment.checks import experiment_problems

    problems = experiment_problems(data, config_class)
    if problems:
        raise ExperimentConfigError("\n".join(problems))
