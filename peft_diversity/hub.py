"""Hub helpers: build the folder to upload (model + tokenizer + template + card), push it, load it back.

    save_for_hub("out/", "upload/", results="runs/demo/results.json")   # the exact folder that gets uploaded
    push_model("out/", "user/my-poexft-model")                          # private by default
    gen = PossibilityGenerator.from_pretrained("user/my-poexft-model")
    gen.generate("A: Any plans for the weekend?", k=5).texts
"""

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

from peft_diversity.atomic import atomic_directory
from peft_diversity.errors import HubError
from peft_diversity.templates import TEMPLATE_FILENAME, PossibilityTemplate

logger = logging.getLogger(__name__)

MODEL_CARD_TEMPLATE = Path(__file__).resolve().parent.parent / "model_cards" / "model_card.md"
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
TABLE_METRICS = (*CARD_METRICS[:2], ("distinct_1", "Distinct-1"), *CARD_METRICS[2:], ("latency_s", "Latency (s)"))
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
        data = json.loads(Path(results).read_text(encoding="utf-8"))
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
):
    """A `huggingface_hub.ModelCard` for a trained folder, rendered from `model_cards/model_card.md`."""
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
        pipeline_tag="text-generation",
        tags=tags,
        model_name=model_name,
        eval_results=eval_results or None,
    )
    hyper = {key: training[key] for key in HYPERPARAMETERS if training and training.get(key) is not None}
    lora = {key: adapter[key] for key in LORA_FIELDS if adapter and adapter.get(key) is not None}
    table = [
        {"model": r.get("model"), "decoder": r.get("decoder"),
         "values": [_fmt(r["scores"].get(key)) for key, _ in TABLE_METRICS]}
        for r in rows
    ]
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
        table_headers=[pretty for _, pretty in TABLE_METRICS],
        table=table,
        arxiv=PAPER_ARXIV,
    )


def _fmt(value: Any) -> str:
    number = _number(value)
    return "–" if number is None else f"{number:.3f}"


# ----- the upload folder ---------------------------------------------------------------------------------
def _upload_files(folder: Path) -> list[Path]:
    return [
        p for p in sorted(folder.iterdir())
        if p.is_file() and p.name not in EXCLUDED_FILES and not any(pat.match(p.name) for pat in EXCLUDED_PATTERNS)
    ]


def _write_merged(folder: Path, target: Path) -> None:
    """Base + adapter merged into full weights (safetensors), plus the tokenizer files."""
    from peft_diversity.models import load_model_and_tokenizer

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
    read safely. The folder is written to a temp dir beside `out_dir` and renamed into place.
    """
    folder = Path(model_dir)
    if not folder.is_dir():
        raise HubError(f"model folder not found: {folder}")
    is_adapter = (folder / "adapter_config.json").is_file()
    if not is_adapter and not (folder / "config.json").is_file():
        raise HubError(f"{folder} holds neither a model (config.json) nor a peft adapter (adapter_config.json)")
    if not (folder / TEMPLATE_FILENAME).is_file():
        logger.warning("%s has no %s: the uploaded model will need a template given explicitly", folder,
                       TEMPLATE_FILENAME)
    target = Path(out_dir)
    with atomic_directory(target) as tmp:
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


# ----- load back --------------------------------------------------------------------------------------------
class PossibilityGenerator:
    """A trained model + tokenizer + its possibility template: `generate(context, k)` → K diverse responses."""

    def __init__(self, model: Any, tokenizer: Any, template: PossibilityTemplate | None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.template = template

    @classmethod
    def from_pretrained(cls, repo_or_dir: str | os.PathLike, **load_kwargs: Any) -> PossibilityGenerator:
        """Load from a local folder, `builtin:<name>` or a Hub repo id (downloaded; honours HF_HUB_OFFLINE)."""
        from peft_diversity.models import BUILTIN_PREFIX, load_model_and_tokenizer

        source = str(repo_or_dir)
        if not source.startswith(BUILTIN_PREFIX) and not Path(source).is_dir():
            from huggingface_hub import snapshot_download

            source = snapshot_download(validate_model_repo_id(source), revision=load_kwargs.pop("revision", None))
        model, tokenizer = load_model_and_tokenizer(source, **load_kwargs)
        template = None
        if (Path(source) / TEMPLATE_FILENAME).is_file():
            template = PossibilityTemplate.from_pretrained(source)
        return cls(model.eval(), tokenizer, template)

    def generate(self, context: Any, k: int = 5, **settings: Any):
        """K possibilities for `context` in one batched generate call (see `generation.generate_possibilities`)."""
        from peft_diversity.generation import generate_possibilities

        if self.template is not None:
            settings.setdefault("template", self.template)
        return generate_possibilities(self.model, self.tokenizer, context, k=k, **settings)


# ----- datasets -----------------------------------------------------------------------------------------------
DATASET_CARD_TEMPLATE = MODEL_CARD_TEMPLATE.parent / "dataset_card.md"
STAT_KEYS = (
    "contexts", "candidates", "candidates_per_context", "turns_per_context", "words_per_candidate_mean",
    "words_per_candidate_median", "words_per_candidate_max", "within_context_cosine_mean",
    "within_context_cosine_pooled", "within_context_cosine_max",
)


def _parquet_name(split: str) -> str:
    return f"data/{split}-00000-of-00001.parquet"


def _load_splits(source: Any, splits: tuple[str, ...] | list[str]) -> dict[str, list[dict[str, Any]]]:
    """`{split: records}` for the splits that exist; a clear error when none does."""
    from peft_diversity.data import DataValidationError, load_one_to_many

    if isinstance(source, (str, Path)) and Path(source).is_file():
        logger.info("%s is one file: stored as the %r split only", source, splits[0])
        splits = splits[:1]
    loaded = {}
    for split in splits:
        try:
            loaded[split] = load_one_to_many(source, split=split)
        except (DataValidationError, FileNotFoundError, ValueError) as err:
            if "split" not in str(err).lower():
                raise
            logger.info("%s: no %r split, skipped (%s)", source, split, err)
    if not loaded:
        raise HubError(f"{source}: none of the splits {list(splits)} could be loaded")
    return loaded


def _turn(turn: Any) -> dict[str, str]:
    return {"speaker": turn.get("speaker", ""), "text": turn["text"]} if isinstance(turn, dict) else \
        {"speaker": "", "text": turn}


def _normalise_records(records: list[dict[str, Any]], split: str) -> tuple[list[dict[str, Any]], bool]:
    """One schema per split: `context` all strings, or all lists of {speaker, text}; `prompt` stays a string."""
    if all("prompt" in r for r in records):
        return records, False
    key = "context"
    if any("prompt" in r for r in records):
        logger.info("split %r mixes 'prompt' and 'context' records: prompts are stored as 'context'", split)
    rows = [{"id": r["id"], key: r.get("context", r.get("prompt")), "candidates": r["candidates"]}
            for r in records]
    if all(isinstance(r[key], str) for r in rows):
        return rows, False
    if any(isinstance(r[key], str) for r in rows):
        logger.info("split %r mixes string and turn-list contexts: strings become one turn with no speaker", split)
    for row in rows:
        value = row[key]
        row[key] = [_turn(t) for t in value] if isinstance(value, list) else [_turn(value)]
    return rows, True


def build_dataset_card(
    source: Any,
    splits: dict[str, list[dict[str, Any]]],
    *,
    stats: dict[str, dict[str, Any]],
    context_is_list: bool,
    repo_id: str | None = None,
    pretty_name: str | None = None,
    license: str = "cc-by-4.0",  # noqa: A002 - the Hub's own field name
    embedder_name: str = "all-MiniLM-L6-v2",
):
    """A `huggingface_hub.DatasetCard` rendered from `model_cards/dataset_card.md` (configs → parquet files)."""
    from huggingface_hub import DatasetCard, DatasetCardData

    first = next(iter(splits.values()))
    context_key = "prompt" if first and "prompt" in first[0] else "context"
    files = {split: _parquet_name(split) for split in splits}
    total = sum(len(r) for r in splits.values())
    size = "n<1K" if total < 1_000 else "1K<n<10K" if total < 10_000 else "10K<n<100K"
    name = str(source)
    card_data = DatasetCardData(
        language=["en"], license=license, pretty_name=pretty_name or (repo_id or name).split("/")[-1],
        task_categories=["text-generation"], size_categories=[size],
        tags=["peft-diversity", "one-to-many", "diversity"],
        configs=[{"config_name": "default", "data_files": [{"split": s, "path": f} for s, f in files.items()]}],
    )
    return DatasetCard.from_template(
        card_data, template_path=str(DATASET_CARD_TEMPLATE),
        title=pretty_name or repo_id or name, repo_id=repo_id or "<owner>/<name>", arxiv=PAPER_ARXIV,
        unit="prompt" if context_key == "prompt" else "context", context_key=context_key,
        context_is_list=context_is_list, splits=list(splits), files=files, stats=stats,
        stat_keys=STAT_KEYS, stat_headers=[k.replace("_", " ") for k in STAT_KEYS], source=name,
        bundled=name.startswith("builtin:"), license=license, embedder_name=embedder_name,
    )


def _embedder_name(embedder: Any) -> str:
    if embedder is None:
        return "all-MiniLM-L6-v2"
    return Path(embedder).name if isinstance(embedder, (str, os.PathLike)) else type(embedder).__name__


def save_dataset_for_hub(
    source: Any,
    out_dir: str | os.PathLike,
    *,
    splits: tuple[str, ...] | list[str] = ("train", "test"),
    pretty_name: str | None = None,
    license: str = "cc-by-4.0",  # noqa: A002 - the Hub's own field name
    repo_id: str | None = None,
    embedder: Any = None,
) -> Path:
    """Write a Hub-ready dataset folder: `data/<split>-00000-of-00001.parquet` per split + README.md card.

    `source` is anything `load_one_to_many` reads (`builtin:dialogue`, a folder of `<split>.jsonl`, a file...);
    missing splits are skipped (logged), at least one is required. The card lists schema, per-split statistics
    (`datacard.dataset_stats`, SBERT cosine with `embedder`), provenance and licence, and its `configs:` maps
    splits to the parquet files so that `load_dataset(repo)` finds them. Written to a temp dir, then renamed.
    """
    from datasets import Dataset

    from peft_diversity.datacard import dataset_stats

    loaded = _load_splits(source, splits)
    target = Path(out_dir)
    with atomic_directory(target) as tmp:
        (tmp / "data").mkdir()
        stats, is_list = {}, False
        for split, records in loaded.items():
            rows, split_is_list = _normalise_records(records, split)
            is_list = is_list or split_is_list
            Dataset.from_list(rows).to_parquet(str(tmp / _parquet_name(split)))
            stats[split] = dataset_stats(records, embedder)
        card = build_dataset_card(source, loaded, stats=stats, context_is_list=is_list, repo_id=repo_id,
                                  pretty_name=pretty_name, license=license, embedder_name=_embedder_name(embedder))
        card.save(tmp / "README.md")
    return target


def _upload(api: Any, repo_id: str, folder: Path, repo_type: str, private: bool, commit_message: str,
            create_kwargs: dict[str, Any] | None = None, upload_kwargs: dict[str, Any] | None = None) -> str:
    """Create the repo (if needed) and upload `folder` as one commit; returns the commit URL."""
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type=repo_type, **(create_kwargs or {}))
    return str(api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message,
                                 repo_type=repo_type, **(upload_kwargs or {})))


def _hf_api(api: Any, token: str) -> Any:
    if api is not None:
        return api
    from huggingface_hub import HfApi

    return HfApi(token=token)


def push_dataset(
    source: Any,
    repo_id: str,
    *,
    private: bool = True,
    token: str | None = None,
    api: Any = None,
    commit_message: str = "Upload peft_diversity one-to-many dataset",
    **save_kwargs: Any,
) -> str:
    """Build the dataset folder (`save_dataset_for_hub`) and push it to a dataset repo (private by default)."""
    validate_model_repo_id(repo_id)
    token = resolve_token(token)
    api = _hf_api(api, token)
    with tempfile.TemporaryDirectory(prefix="peft-diversity-push-") as tmp:
        folder = save_dataset_for_hub(source, Path(tmp) / "upload", repo_id=repo_id, **save_kwargs)
        commit = _upload(api, repo_id, folder, "dataset", private, commit_message)
    logger.info("pushed %s to https://huggingface.co/datasets/%s", source, repo_id)
    return commit


# ----- metrics ------------------------------------------------------------------------------------------------
def metric_folder(name: str) -> Path:
    """`metrics/<name>` for a known metric; a clear error (listing METRIC_NAMES) otherwise."""
    from peft_diversity.metrics_install import METRIC_NAMES, metrics_source_dir

    if name not in METRIC_NAMES:
        raise HubError(f"unknown metric {name!r}; known: {', '.join(METRIC_NAMES)}")
    folder = metrics_source_dir() / name
    if not (folder / f"{name}.py").is_file():
        raise HubError(f"metric folder {folder} has no {name}.py")
    return folder


def push_metric(
    name: str,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    api: Any = None,
    commit_message: str | None = None,
) -> str:
    """Upload `metrics/<name>` (<name>.py, README.md card, app.py) as a Gradio Space at `repo_id`.

    Afterwards `evaluate.load("<owner>/<name>")` loads it from the Hub. This replaces `evaluate-cli
    create/push`, which is broken on huggingface_hub >= 1.0.
    """
    folder = metric_folder(name)
    validate_model_repo_id(repo_id)
    token = resolve_token(token)
    api = _hf_api(api, token)
    commit = _upload(api, repo_id, folder, "space", private, commit_message or f"Upload {name} metric",
                     create_kwargs={"space_sdk": "gradio"},
                     upload_kwargs={"ignore_patterns": ["__pycache__/*", "*.pyc"]})
    logger.info("pushed metric %s to https://huggingface.co/spaces/%s", name, repo_id)
    return commit
