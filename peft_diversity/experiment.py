"""The comparison runner: train the listed modes, generate with each (model, decoder) pair, score, report.

One YAML (see `recipes/experiments/`) describes it all. Stages write into the run folder and are skipped
when their output exists (resumable); `force=True` redoes them. Every output is written to a temp path and
renamed, so a killed run never leaves a half-written stage behind that a re-run would trust.

    run_dir/models/<mode>/                  trained models (+ possibility_config.json)
    run_dir/responses/<model>__<decoder>.jsonl
    run_dir/scores/<model>__<decoder>.json
    run_dir/responses.jsonl  results.json  results.md  diversity_vs_coherence.png
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from peft_diversity.atomic import atomic_directory, atomic_path, atomic_write_text
from peft_diversity.data import MODES, DataValidationError, load_one_to_many
from peft_diversity.errors import ExperimentConfigError
from peft_diversity.templates import PossibilityTemplate, TemplateError

logger = logging.getLogger(__name__)

BASE = "base"
DEFAULT_METRICS = ("semantic_diversity", "distinct_n", "self_bleu", "coherence")
# Columns of results.md: (key in the scores dict, header)
TABLE_COLUMNS = (
    ("semantic_diversity", "semantic div. ↑"),
    ("distinct_1", "distinct-1 ↑"),
    ("distinct_2", "distinct-2 ↑"),
    ("self_bleu", "self-BLEU ↓"),
    ("coherence_relevance", "coherence (emb. relevance) ↑"),
    ("coherence_rating", "coherence (judge, 1-10) ↑"),
    ("responses_per_context", "responses/context"),
    ("latency_s", "latency s/context"),
)


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
    k: int = 5
    train: dict[str, Any] = field(default_factory=dict)
    mode_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    lora: dict[str, Any] | None = None
    generation: dict[str, Any] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    judge: dict[str, Any] | None = None
    seed: int = 42

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> ExperimentConfig:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
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
        from peft_diversity.generation import DECODERS
        from peft_diversity.scoring.report import METRICS

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
        if self.k < 1:
            raise ExperimentConfigError(f"k must be >= 1, got {self.k}")
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


# ----- stages ------------------------------------------------------------------------------------------------
def load_eval_records(config: ExperimentConfig) -> list[dict[str, Any]]:
    try:
        records = load_one_to_many(config.dataset, split=config.eval_split)
    except (DataValidationError, FileNotFoundError) as err:
        raise ExperimentConfigError(
            f"dataset {config.dataset!r} has no usable held-out split {config.eval_split!r}: {err}"
        ) from err
    return records[: config.num_eval_contexts] if config.num_eval_contexts else records


def train_mode(config: ExperimentConfig, mode: str, run_dir: Path, force: bool = False) -> Path:
    """Train one mode into run_dir/models/<mode> (skipped when already there)."""
    from trl import ModelConfig, ScriptArguments

    from peft_diversity.config import PossibilityConfig
    from peft_diversity.training import run_training

    target = run_dir / "models" / mode
    if _done(target) and not force:
        logger.info("train %s: done already (%s)", mode, target)
        return target
    with atomic_directory(target) as tmp:
        train_args = {
            "report_to": [], "save_strategy": "no", "bf16": False, "gradient_checkpointing": False,
            "seed": config.seed, **config.train, **config.mode_overrides.get(mode, {}),
        }
        args = PossibilityConfig(output_dir=str(tmp), mode=mode, **train_args)
        lora = config.lora or {}
        model_args = ModelConfig(model_name_or_path=config.base_model, use_peft=bool(lora), **lora)
        script_args = ScriptArguments(dataset_name=config.dataset, dataset_train_split=config.train_split)
        start = time.perf_counter()
        trainer = run_training(script_args, args, model_args)
        _write_json(tmp / "train_summary.json", {
            "mode": mode, "train_seconds": time.perf_counter() - start,
            "log_history": trainer.state.log_history,
        })
    return target


def generate_run(config: ExperimentConfig, run: RunSpec, model_path: str, records: list[dict[str, Any]],
                 run_dir: Path, loaded: dict, force: bool = False) -> Path:
    """Generate K responses per held-out context with one (model, decoder) pair."""
    from peft_diversity.generation import generate_responses, write_responses_jsonl
    from peft_diversity.models import load_model_and_tokenizer

    target = run_dir / "responses" / f"{run.name}.jsonl"
    if target.is_file() and not force:
        return target
    if model_path not in loaded:
        loaded.clear()  # keep one model in memory at a time
        loaded[model_path] = load_model_and_tokenizer(model_path, dtype="float32")
    model, tokenizer = loaded[model_path]
    shared = dict(config.generation)
    if run.decoder in DETERMINISTIC_DECODERS:  # shared sampling knobs do not apply to beam search
        shared = {key: value for key, value in shared.items() if key not in SAMPLING_KEYS}
    settings = {"seed": config.seed, **shared, **run.settings}
    if run.model == BASE:
        settings.setdefault("template", config.template())
    results = []
    for record in records:  # one context per call: the latency column is per context
        result = generate_responses(run.decoder, model, tokenizer, record, k=config.k, **settings)
        result.model = run.model
        results.append(result)
    with atomic_path(target) as tmp:
        write_responses_jsonl(results, tmp)
    return target


def score_run(config: ExperimentConfig, run: RunSpec, responses_path: Path, run_dir: Path,
              judge: Any = None, force: bool = False) -> dict[str, Any]:
    from peft_diversity.generation import read_responses_jsonl
    from peft_diversity.scoring.report import score_predictions

    target = run_dir / "scores" / f"{run.name}.json"
    if target.is_file() and not force:
        return json.loads(target.read_text())
    results = read_responses_jsonl(responses_path)
    scores = score_predictions(
        [r.texts for r in results], [r.context for r in results], metrics=config.metrics, judge=judge
    )
    scores["latency_s"] = sum(r.wall_time_s for r in results) / max(len(results), 1)
    scores["responses_per_context"] = scores["num_responses"] / max(scores["num_prompts"], 1)
    scores["parse_failures"] = sum(len(r.parse_failures) for r in results)
    scores["mean_tokens"] = sum(sum(r.num_tokens) for r in results) / max(sum(len(r.num_tokens) for r in results), 1)
    row = {"model": run.model, "decoder": run.decoder, "name": run.name, "scores": scores}
    _write_json(target, row)
    return row


def score_reference(config: ExperimentConfig, records: list[dict[str, Any]], run_dir: Path,
                    judge: Any = None, force: bool = False) -> dict[str, Any]:
    """The human-written candidates (first K per held-out context) scored like a method: the yardstick."""
    from peft_diversity.scoring.report import score_predictions

    target = run_dir / "scores" / "human__candidates.json"
    if target.is_file() and not force:
        return json.loads(target.read_text())
    predictions = [r["candidates"][: config.k] for r in records]
    contexts = [r.get("context", r.get("prompt")) for r in records]
    scores = score_predictions(predictions, contexts, metrics=config.metrics, judge=judge)
    scores["responses_per_context"] = scores["num_responses"] / max(scores["num_prompts"], 1)
    row = {"model": "human", "decoder": "candidates", "name": "human__candidates", "scores": scores}
    _write_json(target, row)
    return row


def run_experiment(config: ExperimentConfig, run_dir: str | os.PathLike, force: bool = False,
                   judge: Any = None) -> list[dict[str, Any]]:
    """All stages; returns one result row per (model, decoder) pair and writes the reports."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    records = load_eval_records(config)  # a missing held-out split fails before any training
    load_one_to_many(config.dataset, split=config.train_split)
    _write_json(run_dir / "experiment.json", _config_dict(config))
    from peft_diversity.models import resolve_model_path

    paths = {BASE: resolve_model_path(config.base_model)}
    for mode in config.modes:
        paths[mode] = str(train_mode(config, mode, run_dir, force))
    loaded: dict = {}
    response_files = {}
    for run in config.runs:
        logger.info("generate %s", run.name)
        response_files[run.name] = generate_run(config, run, paths[run.model], records, run_dir, loaded, force)
    loaded.clear()
    rows = [score_run(config, run, response_files[run.name], run_dir, judge, force) for run in config.runs]
    rows.append(score_reference(config, records, run_dir, judge, force))
    write_reports(rows, [response_files[r.name] for r in config.runs], run_dir, config)
    return rows


# ----- reports -------------------------------------------------------------------------------------------------
def format_results_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table like the paper's: rows = method + decoder, columns = metrics."""
    present = [(key, head) for key, head in TABLE_COLUMNS if any(r["scores"].get(key) is not None for r in rows)]
    lines = ["| method | decoder | " + " | ".join(h for _, h in present) + " |",
             "|---|---|" + "---:|" * len(present)]
    for row in rows:
        cells = [_fmt(row["scores"].get(key)) for key, _ in present]
        lines.append(f"| {row['model']} | {row['decoder']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def write_reports(rows: list[dict[str, Any]], response_files: list[Path], run_dir: Path,
                  config: ExperimentConfig) -> None:
    atomic_write_text(run_dir / "results.md", f"# {config.name}\n\n{format_results_table(rows)}\n\n"
                f"K = {config.k} responses per context, {rows[0]['scores'].get('num_prompts', '?')} held-out "
                f"contexts of `{config.dataset}` ({config.eval_split}); base model `{config.base_model}`.\n")
    _write_json(run_dir / "results.json", {"experiment": config.name, "results": rows})
    lines = [line for path in response_files for line in Path(path).read_text(encoding="utf-8").splitlines()]
    atomic_write_text(run_dir / "responses.jsonl", "\n".join(lines) + "\n")
    plot_diversity_vs_coherence(rows, run_dir / "diversity_vs_coherence.png")


def plot_diversity_vs_coherence(rows: list[dict[str, Any]], path: Path) -> Path:
    """One point per method: semantic diversity (x) against embedding coherence (y)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5), dpi=120)
    for row in rows:
        x, y = row["scores"].get("semantic_diversity"), row["scores"].get("coherence_relevance")
        if x is None or y is None:
            continue
        marker = "*" if row["decoder"] == "possibilities" else "o"
        ax.scatter([x], [y], s=140 if marker == "*" else 60, marker=marker)
        ax.annotate(f"{row['model']}/{row['decoder']}", (x, y), textcoords="offset points", xytext=(5, 5),
                    fontsize=8)
    ax.set_xlabel("semantic diversity (1 - mean pairwise SBERT cosine) →")
    ax.set_ylabel("coherence (SBERT relevance to context) →")
    ax.set_title("Diversity vs coherence per method")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


# ----- small file helpers -------------------------------------------------------------------------------------
def _done(folder: Path) -> bool:
    return (folder / "possibility_config.json").is_file() and (folder / "train_summary.json").is_file()


def _write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str))


def _config_dict(config: ExperimentConfig) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(config)
