"""A trained model for the Hub: its training metadata, model card, upload folder, and push."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from peft_diversity.assets import asset_path
from peft_diversity.atomic import atomic_directory
from peft_diversity.errors import HubError
from peft_diversity.templates import TEMPLATE_FILENAME, PossibilityTemplate

logger = logging.getLogger(__name__)


MODEL_CARD_TEMPLATE = asset_path("model_cards") / "model_card.md"
TRAINING_CONFIG_FILENAME = "training_config.json"
PAPER_ARXIV = "2412.03343"
REPO_ID_PATTERN = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
# (key in the experiment's scores dict, pretty name) reported as model-index eval results
CARD_METRICS = (
    ("semantic_diversity", "Semantic diversity"),
    ("self_bleu", "Self-BLEU"),
    ("distinct_2", "Distinct-2"),
    ("coherence_relevance", "Coherence (relevance)"),
)
# Training settings shown in the card (when present in the training config)
HYPERPARAMETERS = (
    "mode", "num_candidates", "max_possibility", "ul_weight", "max_negatives", "max_response_words",
    "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "gradient_accumulation_steps", "lr_scheduler_type", "warmup_ratio", "weight_decay", "max_length",
    "seed", "bf16", "fp16",
)
LORA_FIELDS = ("r", "lora_alpha", "lora_dropout", "target_modules", "use_rslora", "use_dora")
# Files of a training output folder that never go to the Hub (pickles, optimizer state, our regenerated card)
EXCLUDED_FILES = {
    "training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt", "trainer_state.json", "README.md",
    "train_summary.json", "builtin_stamp.json",
}
EXCLUDED_PATTERNS = (re.compile(r"^rng_state.*\.pth$"), re.compile(r"^\."))
# Written into every folder save_for_hub / save_dataset_for_hub makes: only a folder holding it may be replaced
SAVE_MARKER = ".peft-diversity-upload.json"
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.txt",
    "vocab.json", "merges.txt", "tokenizer.model", "spiece.model", "chat_template.jinja", "chat_template.json",
)
MODES_DESCRIPTION = {
    "poexft": "PoExFT (Possibility Exploration Fine-Tuning): each response is tagged with a possibility number, "
              "mismatched (number, response) pairs are pushed down with an unlikelihood loss",
    "otm": "OTMFT (one-to-many fine-tuning): several responses per context, no possibility tag",
    "oto": "OTOFT (one-to-one fine-tuning): one response per context",
}


# ----- training metadata --------------------------------------------------------------------------------
def _training_args_globals(path: Path) -> list[Any]:
    """The classes a pickled TrainingArguments needs, restricted to trusted libraries' config/enum types."""
    import importlib

    import torch

    trusted = ("peft_diversity.", "transformers.", "trl.", "accelerate.")
    allowed = []
    for name in torch.serialization.get_unsafe_globals_in_checkpoint(str(path)):
        module_name, _, attr = name.rpartition(".")
        if not name.startswith(trusted):
            raise HubError(f"{path}: refuses to unpickle {name!r} (not a trusted config type)")
        obj = getattr(importlib.import_module(module_name), attr)
        if not isinstance(obj, type):
            raise HubError(f"{path}: refuses to unpickle {name!r} (not a class)")
        allowed.append(obj)
    return allowed


def load_training_config(model_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The training settings of a trained folder as a JSON-able dict, or None when unavailable.

    Read from `training_config.json` when present, else from `training_args.bin` with torch's weights-only
    unpickler (only config and enum classes from peft_diversity/transformers/trl/accelerate are allowed).
    """
    folder = Path(model_dir)
    if (folder / TRAINING_CONFIG_FILENAME).is_file():
        return json.loads((folder / TRAINING_CONFIG_FILENAME).read_text(encoding="utf-8"))
    path = folder / "training_args.bin"
    if not path.is_file():
        return None
    import torch

    try:
        with torch.serialization.safe_globals(_training_args_globals(path)):
            args = torch.load(path, weights_only=True)
        data = args.to_dict()
    except Exception as err:  # noqa: BLE001 - an unreadable pickle only costs the card some detail
        logger.warning("could not read %s safely (%s): the card will not list the training settings", path, err)
        return None
    data.pop("hub_token", None)
    for key in ("output_dir", "logging_dir", "push_to_hub_token", "hub_model_id"):
        data.pop(key, None)
    return json.loads(json.dumps(data, default=str))


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def trained_mode(model_dir: str | os.PathLike) -> str | None:
    """`poexft` / `otm` / `oto` for a model trained with peft_diversity, else None: from a folder's training
    settings, or from the `training_config.json` of a Hub repo that `push_model` uploaded (the local cache
    only when HF_HUB_OFFLINE). Never raises: anything unreadable gives None."""
    folder = Path(model_dir)
    if folder.is_dir():
        return _mode(folder, load_training_config(folder))
    return _hub_mode(str(model_dir)) if _is_hub_id(str(model_dir)) else None


def _hub_mode(repo_id: str) -> str | None:
    try:
        from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache

        if constants.HF_HUB_OFFLINE:
            path = try_to_load_from_cache(repo_id, TRAINING_CONFIG_FILENAME)
        else:
            path = hf_hub_download(repo_id, TRAINING_CONFIG_FILENAME)
        mode = json.loads(Path(path).read_text(encoding="utf-8")).get("mode") if isinstance(path, str) else None
        return mode if isinstance(mode, str) else None
    except Exception as err:  # noqa: BLE001 - the mode only picks a default decoder
        logger.info("no training mode for %s (%s)", repo_id, err)
        return None


def _mode(folder: Path, training: dict[str, Any] | None) -> str | None:
    if training and training.get("mode"):
        return training["mode"]
    summary = _read_json(folder / "train_summary.json")
    return summary.get("mode") if summary else None


def _base_model(folder: Path, explicit: str | None) -> str | None:
    if explicit:
        return explicit
    adapter = _read_json(folder / "adapter_config.json")
    if adapter and adapter.get("base_model_name_or_path"):
        return adapter["base_model_name_or_path"]
    config = _read_json(folder / "config.json") or {}
    return config.get("_name_or_path") or None


def _is_hub_id(name: str | None) -> bool:
    return bool(name) and bool(REPO_ID_PATTERN.match(name)) and not Path(name).exists()


def load_results(results: str | os.PathLike | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Experiment rows ({"model", "decoder", "scores"}) from a results.json path or a list."""
    if results is None:
        return []
    if isinstance(results, (str, os.PathLike)):
        try:
            data = json.loads(Path(results).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise HubError(f"--results {results}: not a readable results.json ({' '.join(str(err).split())})") \
                from None
        # experiment.py writes {"experiment": name, "results": [rows]}
        results = data.get("results", data.get("rows")) if isinstance(data, dict) else data
    if not isinstance(results, list) or not all(isinstance(r, dict) and "scores" in r for r in results):
        raise HubError("results must be an experiment results.json (a list of rows with 'model' and 'scores')")
    return list(results)


def headline_row(rows: list[dict[str, Any]], mode: str | None) -> dict[str, Any] | None:
    """The row describing this model: its mode with the possibilities decoder, else its mode's first row."""
    mode = mode or "poexft"
    mine = [r for r in rows if r.get("model") == mode]
    for row in mine:
        if row.get("decoder") == "possibilities":
            return row
    return mine[0] if mine else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


# ----- the card --------------------------------------------------------------------------------------
def build_model_card(
    folder: str | os.PathLike,
    *,
    results: str | os.PathLike | list[dict[str, Any]] | None = None,
    base_model: str | None = None,
    dataset: str | None = None,
    repo_id: str | None = None,
    training_config: dict[str, Any] | None = None,
    template_path: str | os.PathLike | None = None,
    merged: bool = False,
    license: str = "apache-2.0",
    language: list[str] | None = None,
):
    """A `huggingface_hub.ModelCard` for a trained folder, rendered from `model_cards/model_card.md`.

    `license` must match what the base model's licence allows (Apache-2.0 fits SmolLM2, Qwen2.5 and MiniLM;
    a Llama base needs its own); `language` defaults to English, the language of the bundled data.
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    folder = Path(folder)
    training = training_config if training_config is not None else load_training_config(folder)
    mode = _mode(folder, training)
    base = _base_model(folder, base_model)
    template = PossibilityTemplate.from_pretrained(folder) if (folder / TEMPLATE_FILENAME).is_file() else None
    adapter = _read_json(folder / "adapter_config.json")
    rows = load_results(results)
    row = headline_row(rows, mode)
    model_name = repo_id.split("/")[-1] if repo_id else f"peft-diversity-{mode or 'model'}"

    eval_results = []
    if row is not None:
        for key, pretty in CARD_METRICS:
            value = _number(row["scores"].get(key))
            if value is None:
                continue
            eval_results.append(EvalResult(
                task_type="text-generation", task_name="Diverse response generation",
                dataset_type=dataset or "custom", dataset_name=dataset or "held-out one-to-many contexts",
                metric_type=key, metric_value=round(value, 4), metric_name=pretty,
            ))
    tags = ["peft-diversity", "poexft", "diversity", "text-generation"]
    tags += ["merged-lora"] if merged else ["peft", "lora"] if adapter else []
    card_data = ModelCardData(
        base_model=base if _is_hub_id(base) else None,
        datasets=[dataset] if _is_hub_id(dataset) else None,
        library_name="peft" if adapter and not merged else "transformers",
        license=license,
        language=language or ["en"],
        pipeline_tag="text-generation",
        tags=tags,
        model_name=model_name,
        eval_results=eval_results or None,
    )
    hyper = {key: training[key] for key in HYPERPARAMETERS if training and training.get(key) is not None}
    lora = {key: adapter[key] for key in LORA_FIELDS if adapter and adapter.get(key) is not None}
    from peft_diversity.scoring.report import format_results_table

    table = format_results_table(rows) if rows else ""
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path or MODEL_CARD_TEMPLATE),
        model_id=repo_id or str(folder),
        title=repo_id or model_name,
        base_model_name=base or "unknown",
        dataset_name=dataset or "unknown",
        mode=mode or "unknown",
        mode_description=MODES_DESCRIPTION.get(mode or "", "training mode not recorded"),
        is_adapter=bool(adapter) and not merged,
        merged=merged,
        hyperparameters=hyper,
        lora=lora,
        template=template.to_dict() if template else None,
        max_possibility=template.max_possibility if template else 9,
        headline=row,
        headline_metrics=[(pretty, _fmt(row["scores"].get(key))) for key, pretty in CARD_METRICS] if row else [],
        table=table,
        arxiv=PAPER_ARXIV,
        base_is_hub_id=_is_hub_id(base),
        example_instruction=(template or PossibilityTemplate()).instruction.replace(
            "{input}", "A: Any plans for the weekend?\nB: Not yet, you?"),
        possibility_sentence=(template or PossibilityTemplate()).possibility_sentence,
        system_prompt=template.system_prompt if template else None,
        framework_versions=framework_versions(),
    )


def framework_versions() -> dict[str, str]:
    """Versions of the libraries a trained model depends on, for its card."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("peft_diversity", "transformers", "peft", "trl", "torch", "datasets", "accelerate"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _fmt(value: Any) -> str:
    number = _number(value)
    return "–" if number is None else f"{number:.3f}"


# ----- the upload folder ---------------------------------------------------------------------------------
def check_output_folder(target: str | os.PathLike, *sources: str | os.PathLike) -> Path:
    """Refuse (HubError) an output folder whose replacement would lose data: one that exists, is not empty and
    was not written by save_for_hub / save_dataset_for_hub (no SAVE_MARKER), or one that is, or holds, a source.
    """
    target = Path(target)
    resolved = target.resolve()
    for source in sources:
        source_path = Path(source).resolve()
        if resolved == source_path or resolved in source_path.parents:
            raise HubError(f"output folder {target} is or holds the input {source}: writing it would delete the "
                           "input; pick a new folder")
    if target.exists() or target.is_symlink():
        if not target.is_dir():
            raise HubError(f"output folder {target} exists and is not a folder: refusing to replace it")
        if any(target.iterdir()) and not (target / SAVE_MARKER).is_file():
            raise HubError(f"output folder {target} exists and was not written by `peft-diversity push --save-only`:"
                           " refusing to replace it; pick a new or empty folder")
    return target


def write_save_marker(folder: Path, kind: str, source: Any) -> None:
    """Mark `folder` as an upload folder this project wrote (so a rerun may replace it, and nothing else)."""
    marker = {"written_by": "peft_diversity.hub", "kind": kind, "source": str(source)}
    (folder / SAVE_MARKER).write_text(json.dumps(marker), encoding="utf-8")


def _check_safetensors(folder: Path) -> None:
    """Refuse (not convert) a folder whose only weights are a pickle: converting means unpickling a file of
    unknown origin, and our own loader refuses it anyway (models/loading.py), so the upload would not load."""
    from peft_diversity.models.loading import pickle_only_weights, pickle_weights_message

    pickles = pickle_only_weights(folder)
    if pickles:
        raise HubError(pickle_weights_message(pickles[0]))


def _upload_files(folder: Path) -> list[Path]:
    from peft_diversity.models.loading import PICKLE_WEIGHTS_PATTERN

    files = [
        p for p in sorted(folder.iterdir())
        if p.is_file() and p.name not in EXCLUDED_FILES and not any(pat.match(p.name) for pat in EXCLUDED_PATTERNS)
    ]
    pickles = [p for p in files if PICKLE_WEIGHTS_PATTERN.match(p.name)]
    if pickles:  # beside safetensors weights (_check_safetensors ran): a pickled duplicate, never uploaded
        logger.warning("%s: not uploaded (pickled weights; the safetensors weights are)", ", ".join(map(str, pickles)))
    return [p for p in files if p not in pickles]


def _write_merged(folder: Path, target: Path) -> None:
    """Base + adapter merged into full weights (safetensors), plus the tokenizer files."""
    from peft_diversity.models.loading import load_model_and_tokenizer

    model, _ = load_model_and_tokenizer(str(folder), dtype="float32")
    merged = model.merge_and_unload()
    merged.save_pretrained(target, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (folder / name).is_file():
            shutil.copy2(folder / name, target / name)


def save_for_hub(
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    results: str | os.PathLike | list[dict[str, Any]] | None = None,
    base_model: str | None = None,
    dataset: str | None = None,
    merge: bool = False,
    repo_id: str | None = None,
) -> Path:
    """Build exactly the folder to upload: model (adapter-only unless `merge`), tokenizer, template, card.

    `training_args.bin` (a pickle) is never uploaded; its settings go to `training_config.json` when it can be
    read safely. The folder is written to a temp dir beside `out_dir` and renamed into place; an existing
    `out_dir` is replaced only when it is empty or an earlier output of this function (HubError otherwise).
    """
    folder = Path(model_dir)
    if not folder.is_dir():
        raise HubError(f"model folder not found: {folder}")
    is_adapter = (folder / "adapter_config.json").is_file()
    if not is_adapter and not (folder / "config.json").is_file():
        raise HubError(f"{folder} holds neither a model (config.json) nor a peft adapter (adapter_config.json)")
    _check_safetensors(folder)
    if not (folder / TEMPLATE_FILENAME).is_file():
        logger.warning("%s has no %s: the uploaded model will need a template given explicitly", folder,
                       TEMPLATE_FILENAME)
    target = check_output_folder(out_dir, folder)
    with atomic_directory(target) as tmp:
        write_save_marker(tmp, "model", folder)
        training = load_training_config(folder)
        if merge and is_adapter:
            _write_merged(folder, tmp)
            for name in (TEMPLATE_FILENAME,):
                if (folder / name).is_file():
                    shutil.copy2(folder / name, tmp / name)
        else:
            if merge:
                logger.warning("%s holds full weights, not an adapter: nothing to merge", folder)
            for path in _upload_files(folder):
                shutil.copy2(path, tmp / path.name)
        if training is not None:
            (tmp / TRAINING_CONFIG_FILENAME).write_text(json.dumps(training, indent=2), encoding="utf-8")
        base = _base_model(folder, base_model)
        card = build_model_card(
            folder, results=results, base_model=base, dataset=dataset, repo_id=repo_id, training_config=training,
            merged=merge and is_adapter,
        )
        card.save(tmp / "README.md")
    return target


# ----- push ------------------------------------------------------------------------------------------------
def validate_model_repo_id(repo_id: str) -> str:
    """`owner/name` or a clear error (nothing is uploaded to a malformed id)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(repo_id, str) or not REPO_ID_PATTERN.match(repo_id):
        raise HubError(f"repo id must look like 'owner/name' (e.g. 'alice/qwen2.5-0.5b-poexft'), got {repo_id!r}")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise HubError(f"invalid repo id {repo_id!r}: {err}") from err
    return repo_id


def resolve_token(token: str | None = None) -> str:
    """The given token, else the one from `hf auth login` / HF_TOKEN; a clear error when there is none."""
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise HubError("no Hugging Face token found: run `hf auth login` (or set HF_TOKEN) and try again")
    return token


def push_model(
    model_dir: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = True,
    token: str | None = None,
    commit_message: str = "Upload peft_diversity model",
    api: Any = None,
    **save_kwargs: Any,
) -> str:
    """Build the upload folder (`save_for_hub`) and push it to `repo_id` (a private model repo by default).

    Returns the commit URL (or whatever `api.upload_folder` returns, as a string).
    """
    validate_model_repo_id(repo_id)
    token = resolve_token(token)
    if not Path(model_dir).is_dir():
        raise HubError(f"model folder not found: {model_dir}")
    api = _hf_api(api, token)
    with tempfile.TemporaryDirectory(prefix="peft-diversity-push-") as tmp:
        folder = save_for_hub(model_dir, Path(tmp) / "upload", repo_id=repo_id, **save_kwargs)
        commit = _upload(api, repo_id, folder, "model", private, commit_message)
    logger.info("pushed %s to https://huggingface.co/%s", model_dir, repo_id)
    return commit


def _upload(api: Any, repo_id: str, folder: Path, repo_type: str, private: bool, commit_message: str,
            create_kwargs: dict[str, Any] | None = None, upload_kwargs: dict[str, Any] | None = None) -> str:
    """Create the repo (if needed) and upload `folder` as one commit; returns the commit URL."""
    (folder / SAVE_MARKER).unlink(missing_ok=True)  # a local bookkeeping file, not part of the repo
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type=repo_type, **(create_kwargs or {}))
        return str(api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message,
                                     repo_type=repo_type, **(upload_kwargs or {})))
    except Exception as err:  # noqa: BLE001 - sorted below: Hub / network failures become one HubError line
        raise hub_error(err, repo_id) from err


def hub_error(err: Exception, repo_id: str) -> Exception:
    """A HubError line for a Hub or network failure (offline, auth, permission, quota, server); any other
    exception is returned unchanged (a bug, to be seen whole)."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(err, OfflineModeIsEnabled):
        return HubError(f"cannot upload to {repo_id}: HF_HUB_OFFLINE is set (unset it to push)")
    if isinstance(err, HfHubHTTPError):
        status = getattr(getattr(err, "response", None), "status_code", None)
        reason = {401: "the token is invalid or expired (run `hf auth login`)",
                  403: "the token may not write to this repo (a read-only token, or another owner)",
                  404: "the repo or owner does not exist", 413: "the upload is too large",
                  429: "too many requests or a storage quota reached; try again later"}.get(status, "")
        first = " ".join(str(err).strip().splitlines()[0].split()) if str(err).strip() else type(err).__name__
        return HubError(f"upload to {repo_id} failed (HTTP {status}): {reason + '; ' if reason else ''}{first}")
    if isinstance(err, (ConnectionError, TimeoutError, OSError)) or type(err).__module__.startswith(
            ("httpx", "requests", "urllib3")):
        first = " ".join(str(err).split()) or type(err).__name__
        return HubError(f"cannot reach the Hub to upload {repo_id} ({type(err).__name__}: {first}); check the "
                        "network and try again")
    return err


def _hf_api(api: Any, token: str) -> Any:
    if api is not None:
        return api
    from huggingface_hub import HfApi

    return HfApi(token=token)
