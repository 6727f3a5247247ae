"""The experiment YAML as a dataclass (`ExperimentConfig`), checked before any training."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from peft_diversity.errors import ExperimentConfigError
from peft_diversity.templates import PossibilityTemplate, TemplateError
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
    reference_model: str | None = None  # likelihood_coherence's reference LM (None: builtin:smollm2-135m-instruct)
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
        except ExperimentConfigError as err:
            raise ExperimentConfigError(f"{path}: {err}") from None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ExperimentConfigError(f"unknown keys {unknown}; known: {sorted(known)}")
        missing = [key for key in ("name", "base_model", "dataset", "runs") if key not in data]
        if missing:
            raise ExperimentConfigError(f"missing keys {missing}")
        runs = [RunSpec(**_run_fields(i, run)) for i, run in enumerate(data["runs"])]
        config = cls(**{**data, "runs": runs})
        config.validate()
        return config

    def validate(self) -> None:
        """Unknown modes / decoders / metrics and impossible pairs fail here, before any training."""
        from peft_diversity.generation.decoders import DECODERS
        from peft_diversity.scoring.report import KNOWN_METRICS as METRICS

        bad_modes = [m for m in self.modes if m not in MODES]
        if bad_modes:
            raise ExperimentConfigError(f"unknown modes {bad_modes}; choose from {list(MODES)}")
        bad_metrics = [m for m in self.metrics if m not in METRICS]
        if bad_metrics:
            raise ExperimentConfigError(f"unknown metrics {bad_metrics}; choose from {list(METRICS)}")
        for run in self.runs:
            if run.decoder not in DECODERS:
                raise ExperimentConfigError(f"run {run.name}: unknown decoder {run.decoder!r}; "
                                            f"choose from {list(DECODERS)}")
            if run.model != BASE and run.model not in self.modes:
                raise ExperimentConfigError(f"run {run.name}: model {run.model!r} is neither 'base' nor a "
                                            f"trained mode {self.modes}")
            if run.decoder == "possibilities" and run.model != "poexft":
                raise ExperimentConfigError(f"run {run.name}: the possibilities decoder needs a PoExFT model")
        if self.num_responses < 1:
            raise ExperimentConfigError(f"num_responses must be >= 1, got {self.num_responses}")
        if self.judge is not None:
            from peft_diversity.scoring.judges import JUDGE_KEYS

            if not isinstance(self.judge, dict) or "model" not in self.judge:
                raise ExperimentConfigError("judge must be a mapping with at least 'model' (id, path or builtin:)")
            unknown = sorted(set(self.judge) - set(JUDGE_KEYS))
            if unknown:
                raise ExperimentConfigError(f"judge: unknown keys {unknown}; known: {list(JUDGE_KEYS)}")
        try:
            self.template()
        except TemplateError as err:
            raise ExperimentConfigError(f"train: {err}") from None

    def template(self) -> PossibilityTemplate:
        """The task wording of every run: the `train` settings' task / instruction / sentences.

        Trained models carry it in their possibility_config.json; base-model runs are given it, so a story or
        custom experiment asks the base model the same question the fine-tuned ones learnt.
        """
        names = {f.name for f in fields(PossibilityTemplate)}
        return PossibilityTemplate(**{key: value for key, value in self.train.items() if key in names})


def _run_fields(index: int, run: Any) -> dict[str, Any]:
    if not isinstance(run, dict) or "model" not in run or "decoder" not in run:
        raise ExperimentConfigError(f"runs[{index}] must be a mapping with 'model' and 'decoder'")
    extra = sorted(set(run) - {"model", "decoder", "settings"})
    if extra:
        raise ExperimentConfigError(f"runs[{index}]: unknown keys {extra}")
    return run
