"""The comparison's stages: train each mode, generate each (model, decoder) run, score, report; resumable."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from peft_diversity.atomic import atomic_directory, atomic_path
from peft_diversity.data import load_one_to_many
from peft_diversity.errors import DataValidationError, ExperimentConfigError
from peft_diversity.experiment.config import (
    BASE,
    DETERMINISTIC_DECODERS,
    SAMPLING_KEYS,
    ExperimentConfig,
    RunSpec,
)
from peft_diversity.experiment.report import _write_json, write_reports

logger = logging.getLogger(__name__)


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

    from peft_diversity.trainer.cli import run_training
    from peft_diversity.trainer.config import PossibilityConfig

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
    from peft_diversity.generation.decoders import generate_responses
    from peft_diversity.generation.responses import write_responses_jsonl
    from peft_diversity.models.loading import load_model_and_tokenizer

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
        result = generate_responses(run.decoder, model, tokenizer, record, num_responses=config.num_responses, **settings)
        result.model = run.model
        results.append(result)
    with atomic_path(target) as tmp:
        write_responses_jsonl(results, tmp)
    return target


def score_run(config: ExperimentConfig, run: RunSpec, responses_path: Path, run_dir: Path,
              judge: Any = None, force: bool = False) -> dict[str, Any]:
    from peft_diversity.generation.responses import read_responses_jsonl
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
    predictions = [r["candidates"][: config.num_responses] for r in records]
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
    from peft_diversity.models.builtin import resolve_model_path

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


# ----- small file helpers -------------------------------------------------------------------------------------
def _done(folder: Path) -> bool:
    return (folder / "possibility_config.json").is_file() and (folder / "train_summary.json").is_file()


def _config_dict(config: ExperimentConfig) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(config)
