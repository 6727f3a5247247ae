"""The comparison's stages: train each mode, generate each (model, decoder) run, score, report; resumable."""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from peft_diversity.atomic import atomic_path
from peft_diversity.data import load_one_to_many
from peft_diversity.errors import DataValidationError, ExperimentConfigError
from peft_diversity.experiment.config import (
    BASE,
    DETERMINISTIC_DECODERS,
    SAMPLING_KEYS,
    ExperimentConfig,
    RunSpec,
    variant_suffix,
)
from peft_diversity.experiment.report import write_reports
from peft_diversity.experiment.runs import context_seed, generation_seed
from peft_diversity.experiment.stamps import digest, is_fresh, jsonable, read_stamp, stamp_path, write_stamp
from peft_diversity.jsonl import read_json, write_json
from peft_diversity.scoring.report import summary_key

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


def train_settings(
    config: ExperimentConfig, mode: str, train_records: list[dict[str, Any]]
) -> dict[str, Any]:
    """What a trained mode depends on: base model (name and content), data (content), training and LoRA
    settings, seed."""
    from peft_diversity.models.builtin import model_identity

    return {
        "stage": "train",
        "mode": mode,
        "base_model": config.base_model,
        "base_model_content": model_identity(config.base_model),
        "dataset": config.dataset,
        "train_split": config.train_split,
        "train_data": digest(train_records),
        "train": config.train,
        "mode_overrides": config.mode_overrides.get(mode, {}),
        "lora": config.lora,
        "seed": config.seed,
    }


def train_mode(
    config: ExperimentConfig,
    mode: str,
    run_dir: Path,
    force: bool = False,
    train_records: list[dict[str, Any]] | None = None,
) -> Path:
    """Train one mode into run_dir/models/<mode> (skipped when already there, made with the same settings)."""
    from trl import ModelConfig, ScriptArguments

    from peft_diversity.trainer.cli import last_complete_checkpoint, run_training
    from peft_diversity.trainer.config import PossibilityConfig

    target = run_dir / "models" / mode
    if train_records is None:
        train_records = load_one_to_many(config.dataset, split=config.train_split)
    settings = train_settings(config, mode, train_records)
    if is_fresh(target, settings, force, f"train {mode}") and _done(target):
        logger.info("train %s: done already (%s)", mode, target)
        return target
    stamp_path(target).unlink(missing_ok=True)
    work = _training_folder(target, settings, force)
    train_args = {
        "report_to": [],
        "bf16": False,
        "seed": config.seed,
        **CHECKPOINTING,
        **config.train,
        **config.mode_overrides.get(mode, {}),
    }
    resume = last_complete_checkpoint(work)
    if resume:
        logger.warning("train %s: resuming the interrupted run from %s", mode, resume)
    args = PossibilityConfig(output_dir=str(work), mode=mode, resume_from_checkpoint=resume, **train_args)
    lora = config.lora or {}
    model_args = ModelConfig(model_name_or_path=config.base_model, use_peft=bool(lora), **lora)
    script_args = ScriptArguments(dataset_name=config.dataset, dataset_train_split=config.train_split)
    start = time.perf_counter()
    trainer = run_training(script_args, args, model_args)
    for checkpoint in work.glob("checkpoint-*"):
        shutil.rmtree(checkpoint)
    write_json(
        work / "train_summary.json",
        {
            "mode": mode,
            "train_seconds": time.perf_counter() - start,
            "resumed_from": resume,
            "log_history": trainer.state.log_history,
        },
        default=str,
    )
    if target.exists():
        shutil.rmtree(target)
    os.replace(work, target)
    stamp_path(work).unlink(missing_ok=True)
    write_stamp(target, settings)
    return target


# Experiment training saves a checkpoint every 100 steps (only the newest kept) so that a killed stage resumes;
# `save_steps` / `save_strategy` / `save_total_limit` in the YAML's `train:` override these.
CHECKPOINTING = {"save_strategy": "steps", "save_steps": 100, "save_total_limit": 1}


def _training_folder(target: Path, settings: dict[str, Any], force: bool) -> Path:
    """The fixed work folder `models/.<mode>.partial` a mode trains in: kept across a kill (its checkpoints are
    resumed) while it was started with the same settings, emptied otherwise. Older runs' random temp folders
    (`.<mode>-*`) are removed."""
    for orphan in target.parent.glob(f".{target.name}-*"):
        if orphan.is_dir():
            logger.info("removing the temp folder %s left by an interrupted run", orphan)
            shutil.rmtree(orphan, ignore_errors=True)
    work = target.with_name(f".{target.name}.partial")
    if work.exists() and (force or read_stamp(work) != jsonable(settings)):
        logger.warning("train %s: %s was started with other settings: starting over", target.name, work)
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    write_stamp(work, settings)
    return work


def generate_run(
    config: ExperimentConfig,
    run: RunSpec,
    model_path: str,
    records: list[dict[str, Any]],
    run_dir: Path,
    loaded: dict,
    force: bool = False,
) -> Path:
    """Generate K responses per held-out context with one (model, decoder) pair."""
    from peft_diversity.generation.decoders import generate_responses
    from peft_diversity.generation.responses import write_responses_jsonl
    from peft_diversity.models.loading import load_model_and_tokenizer

    target = run_dir / "responses" / f"{run.name}.jsonl"
    stamp = generation_settings(config, run, model_path, records)
    if is_fresh(target, stamp, force, f"generate {run.name}"):
        logger.info("generate %s: done already (%s)", run.name, target)
        return target
    stamp_path(target).unlink(missing_ok=True)
    if model_path not in loaded:
        loaded.clear()  # keep one model in memory at a time
        loaded[model_path] = load_model_and_tokenizer(model_path, dtype="float32")
    model, tokenizer = loaded[model_path]
    shared = dict(config.generation)
    if run.decoder in DETERMINISTIC_DECODERS:  # shared sampling knobs do not apply to beam search
        shared = {key: value for key, value in shared.items() if key not in SAMPLING_KEYS}
    settings = {**shared, **run.settings, **run.variant}
    if run.model == BASE:
        settings.setdefault("template", config.template())
    results = []
    # one context per call (the latency column is per context), each with its own seed (experiment/runs.py)
    for record, seed in zip(records, context_seeds(config, run, len(records)), strict=True):
        result = generate_responses(
            run.decoder, model, tokenizer, record, num_responses=config.num_responses, seed=seed, **settings
        )
        result.model = run.model
        results.append(result)
    with atomic_path(target) as tmp:
        write_responses_jsonl(results, tmp)
    write_stamp(target, stamp)
    return target


def context_seeds(config: ExperimentConfig, run: RunSpec, num_contexts: int) -> list[int]:
    """One seed per held-out context: independent across runs (base / OTO / OTM) and across contexts."""
    run_seed = generation_seed(config.seed, run.name)
    return [context_seed(run_seed, index) for index in range(num_contexts)]


# the experiment's fields that do not change what a (model, decoder) run generates
NOT_GENERATION_FIELDS = (
    "name",
    "runs",
    "modes",
    "train_split",
    "train",
    "mode_overrides",
    "lora",
    "metrics",
    "judge",
    "seeds",
    "sweep",
    "coherence_metric",
    "reference_model",
)


def generation_settings(
    config: ExperimentConfig, run: RunSpec, model_path: str, records: list[dict[str, Any]]
) -> dict[str, Any]:
    """What a responses file depends on: the model (a trained mode's own settings), the decoder and its
    settings, the shared generation settings, the template, the held-out contexts and the seed."""
    shared = {key: value for key, value in asdict(config).items() if key not in NOT_GENERATION_FIELDS}
    from peft_diversity.models.builtin import model_identity

    model = (
        read_stamp(Path(model_path))
        if run.model != BASE
        else {"base_model": config.base_model, "content": model_identity(config.base_model)}
    )
    return {
        "stage": "generate",
        "run": asdict(run),
        "model": digest(model),
        **shared,
        "generation_seeds": context_seeds(config, run, len(records)),
        "template": config.template().to_dict(),
        "eval_data": digest(records),
    }


def score_run(
    config: ExperimentConfig,
    run: RunSpec,
    responses_path: Path,
    run_dir: Path,
    judge: Any = None,
    force: bool = False,
) -> dict[str, Any]:
    from peft_diversity.generation.responses import read_responses_jsonl
    from peft_diversity.scoring.report import score_predictions

    target = run_dir / "scores" / f"{run.name}.json"
    stamp = {
        "stage": "score",
        "responses": digest(read_stamp(responses_path)),
        "metrics": config.metrics,
        "judge": config.judge,
        **reference_stamp(config),
    }
    if is_fresh(target, stamp, force, f"score {run.name}"):
        logger.info("score %s: done already (%s)", run.name, target)
        return read_json(target, error=ExperimentConfigError)
    stamp_path(target).unlink(missing_ok=True)
    results = read_responses_jsonl(responses_path)
    scores = score_predictions(
        [r.texts for r in results],
        [r.context for r in results],
        metrics=config.metrics,
        judge=judge,
        return_per_prompt=True,
        **likelihood_options(config),
    )
    per_prompt = scores.pop("per_prompt")
    if set(context_metrics(config)) <= set(config.metrics):  # the study's unit, without a second scoring pass
        write_context_scores(config, run, run_dir, responses_path, [r.id for r in results], per_prompt)
    scores["latency_s"] = sum(r.wall_time_s for r in results) / max(len(results), 1)
    scores["responses_per_context"] = scores["num_responses"] / max(scores["num_prompts"], 1)
    scores["parse_failures"] = sum(len(r.parse_failures) for r in results)
    scores["mean_tokens"] = sum(sum(r.num_tokens) for r in results) / max(
        sum(len(r.num_tokens) for r in results), 1
    )
    row = {"model": run.model, "decoder": run.decoder, "name": run.name, "scores": scores}
    if run.variant:
        row["variant"] = variant_suffix(run.variant)[1:]  # "t=0.8": the results table tells swept runs apart
    write_json(target, row, default=str)
    write_stamp(target, stamp)
    return row


def score_reference(
    config: ExperimentConfig,
    records: list[dict[str, Any]],
    run_dir: Path,
    judge: Any = None,
    force: bool = False,
) -> dict[str, Any]:
    """The human-written candidates (first K per held-out context) scored like a method: the yardstick."""
    from peft_diversity.scoring.report import score_predictions

    target = run_dir / "scores" / "human__candidates.json"
    stamp = {
        "stage": "score",
        "responses": "human candidates",
        "eval_data": digest(records),
        "num_candidates": config.num_responses,
        "metrics": config.metrics,
        "judge": config.judge,
        **reference_stamp(config),
    }
    if is_fresh(target, stamp, force, "score human__candidates"):
        logger.info("score human__candidates: done already (%s)", target)
        return read_json(target, error=ExperimentConfigError)
    stamp_path(target).unlink(missing_ok=True)
    predictions = [r["candidates"][: config.num_responses] for r in records]
    contexts = [r.get("context", r.get("prompt")) for r in records]
    scores = score_predictions(
        predictions, contexts, metrics=config.metrics, judge=judge, **likelihood_options(config)
    )
    scores["responses_per_context"] = scores["num_responses"] / max(scores["num_prompts"], 1)
    row = {"model": "human", "decoder": "candidates", "name": "human__candidates", "scores": scores}
    write_json(target, row, default=str)
    write_stamp(target, stamp)
    return row


CONTEXT_DIVERSITY = "semantic_diversity"


def context_metrics(config: ExperimentConfig) -> list[str]:
    """What per_context/<run>.json keeps: semantic diversity and the frontier's coherence metric."""
    return list(dict.fromkeys([CONTEXT_DIVERSITY, config.coherence_metric]))


def context_stamp(config: ExperimentConfig, responses_path: Path) -> dict[str, Any]:
    metrics = context_metrics(config)
    return {
        "stage": "per_context",
        "responses": digest(read_stamp(responses_path)),
        "metrics": metrics,
        **reference_stamp(replace(config, metrics=metrics)),
    }


def write_context_scores(
    config: ExperimentConfig,
    run: RunSpec,
    run_dir: Path,
    responses_path: Path,
    ids: list[str],
    per_prompt: dict[str, list],
) -> dict[str, Any]:
    """per_context/<run>.json from `score_predictions(..., return_per_prompt=True)`'s lists (stamped)."""
    metrics = context_metrics(config)
    target = run_dir / "per_context" / f"{run.name}.json"
    stamp_path(target).unlink(missing_ok=True)
    data = {
        "run": run.name,
        "ids": ids,
        "score_keys": {m: summary_key(m) for m in metrics},
        **{m: per_prompt[f"{summary_key(m)}_per_prompt"] for m in metrics},
    }
    write_json(target, data, default=str)
    write_stamp(target, context_stamp(config, responses_path))
    return data


def likelihood_options(config: ExperimentConfig) -> dict[str, Any]:
    """likelihood_coherence reads each context worded as this experiment's task, with its reference model."""
    return {"reference_model": config.reference_model, "template": config.template()}


def reference_stamp(config: ExperimentConfig) -> dict[str, Any]:
    """The reference model changes the scores only when likelihood_coherence is computed (old stamps stay valid)."""
    return {"reference_model": config.reference_model} if "likelihood_coherence" in config.metrics else {}


def run_experiment(
    config: ExperimentConfig, run_dir: str | os.PathLike, force: bool = False, judge: Any = None
) -> list[dict[str, Any]]:
    """All stages; returns one result row per (model, decoder) pair and writes the reports. The run folder is
    locked for the whole run: a second run on it fails at once instead of deleting the first one's work."""
    run_dir = Path(run_dir)
    with run_folder_lock(run_dir):
        return _run_stages(config, run_dir, force, judge)


LOCK_FILE = ".experiment.lock"


@contextmanager
def run_folder_lock(run_dir: Path) -> Iterator[None]:
    """Make `run_dir` and hold `run_dir/.experiment.lock` (an OS file lock, freed when the process dies, even by
    SIGKILL). Reentrant within a process (the command takes it before loading a judge, the runner again)."""
    from filelock import FileLock, Timeout

    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(run_dir / LOCK_FILE, blocking=False, is_singleton=True)
    try:
        lock.acquire()
    except Timeout:
        raise ExperimentConfigError(
            f"{run_dir}: another experiment run holds this run folder (lock "
            f"{run_dir / LOCK_FILE}); wait for it to finish or pass another --output-dir"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _run_stages(config: ExperimentConfig, run_dir: Path, force: bool, judge: Any) -> list[dict[str, Any]]:
    records = load_eval_records(config)  # a missing held-out split fails before any training
    train_records = load_one_to_many(config.dataset, split=config.train_split)
    write_json(run_dir / "experiment.json", asdict(config), default=str)
    from peft_diversity.models.builtin import resolve_model_path

    paths = {BASE: resolve_model_path(config.base_model)}
    for mode in config.modes:
        paths[mode] = str(train_mode(config, mode, run_dir, force, train_records))
    loaded: dict = {}
    response_files = {}
    for run in config.runs:
        logger.info("generate %s", run.name)
        response_files[run.name] = generate_run(
            config, run, paths[run.model], records, run_dir, loaded, force
        )
    loaded.clear()
    rows = [score_run(config, run, response_files[run.name], run_dir, judge, force) for run in config.runs]
    rows.append(score_reference(config, records, run_dir, judge, force))
    if judge is not None:
        check_judge(config, records, run_dir, judge, force)
    write_reports(rows, [response_files[r.name] for r in config.runs], run_dir, config)
    return rows


def check_judge(
    config: ExperimentConfig, records: list[dict[str, Any]], run_dir: Path, judge: Any, force: bool = False
) -> dict[str, Any]:
    """judge_check.json: the judge's rating of each context's first human candidate vs one from another
    context (`scoring.coherence.judge_agreement`), so the coherence column says what it is worth."""
    from peft_diversity.scoring.coherence import judge_agreement

    target = run_dir / "judge_check.json"
    stamp = {
        "stage": "judge_check",
        "eval_data": digest(records),
        "judge": config.judge,
        "seed": config.seed,
    }
    if is_fresh(target, stamp, force, "judge check"):
        logger.info("judge check: done already (%s)", target)
        return read_json(target, error=ExperimentConfigError)
    contexts = [r.get("context", r.get("prompt")) for r in records]
    result = judge_agreement(contexts, [r["candidates"][0] for r in records], judge, seed=config.seed)
    write_json(target, result, default=str)
    write_stamp(target, stamp)
    return result


# ----- small file helpers -------------------------------------------------------------------------------------
def _done(folder: Path) -> bool:
    return (folder / "possibility_config.json").is_file() and (folder / "train_summary.json").is_file()
