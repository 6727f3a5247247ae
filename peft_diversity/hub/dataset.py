"""One-to-many data for the Hub: Parquet splits + a dataset card with statistics, and push."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from peft_diversity import PAPER
from peft_diversity.errors import HubError
from peft_diversity.hub.card import CARD_TEMPLATES
from peft_diversity.hub.upload import push_folder, upload_folder

logger = logging.getLogger(__name__)


# ----- datasets -----------------------------------------------------------------------------------------------
DATASET_CARD_TEMPLATE = CARD_TEMPLATES / "dataset_card.md"
STAT_KEYS = (
    "contexts",
    "candidates",
    "candidates_per_context",
    "turns_per_context",
    "words_per_candidate_mean",
    "words_per_candidate_median",
    "words_per_candidate_max",
    "within_context_cosine_mean",
    "within_context_cosine_pooled",
    "within_context_cosine_max",
)


# a split name is a file name part (data/<split>-…parquet): datasets' own rule, so no '/' or '..' ever reaches a path
SPLIT_NAME_PATTERN = re.compile(r"^\w+(\.\w+)*$")


def split_names(splits: str | Sequence[str]) -> tuple[str, ...]:
    """The split names of `--splits "train,test"` (or a sequence), each checked against datasets' rule for
    split names (word characters, dot-separated); HubError naming the first bad one."""
    names = tuple(s.strip() for s in splits.split(",")) if isinstance(splits, str) else tuple(splits)
    names = tuple(n for n in names if n != "")
    if not names:
        raise HubError(f"--splits {splits!r}: no split name given (e.g. 'train,test')")
    for name in names:
        if not isinstance(name, str) or not SPLIT_NAME_PATTERN.match(name):
            raise HubError(
                f"--splits: {name!r} is not a split name (letters, digits and '_', parts joined by '.')"
            )
    return names


def _parquet_name(split: str) -> str:
    return f"data/{split}-00000-of-00001.parquet"


def _load_splits(source: Any, splits: tuple[str, ...] | list[str]) -> dict[str, list[dict[str, Any]]]:
    """`{split: records}` for the splits that exist; a clear error when none does."""
    from peft_diversity.data import load_one_to_many
    from peft_diversity.errors import DataValidationError

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
    return (
        {"speaker": turn.get("speaker", ""), "text": turn["text"]}
        if isinstance(turn, dict)
        else {"speaker": "", "text": turn}
    )


def _normalise_records(records: list[dict[str, Any]], split: str) -> tuple[list[dict[str, Any]], bool]:
    """One schema per split: `context` all strings, or all lists of {speaker, text}; `prompt` stays a string."""
    if all("prompt" in r for r in records):
        return records, False
    key = "context"
    if any("prompt" in r for r in records):
        logger.info("split %r mixes 'prompt' and 'context' records: prompts are stored as 'context'", split)
    rows = [
        {"id": r["id"], key: r.get("context", r.get("prompt")), "candidates": r["candidates"]}
        for r in records
    ]
    if all(isinstance(r[key], str) for r in rows):
        return rows, False
    if any(isinstance(r[key], str) for r in rows):
        logger.info(
            "split %r mixes string and turn-list contexts: strings become one turn with no speaker", split
        )
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
        language=["en"],
        license=license,
        pretty_name=pretty_name or (repo_id or name).split("/")[-1],
        task_categories=["text-generation"],
        size_categories=[size],
        tags=["peft-diversity", "one-to-many", "diversity"],
        configs=[
            {"config_name": "default", "data_files": [{"split": s, "path": f} for s, f in files.items()]}
        ],
    )
    return DatasetCard.from_template(
        card_data,
        template_path=str(DATASET_CARD_TEMPLATE),
        title=pretty_name or repo_id or name,
        repo_id=repo_id or "<owner>/<name>",
        arxiv=PAPER["id"],
        unit="prompt" if context_key == "prompt" else "context",
        context_key=context_key,
        context_is_list=context_is_list,
        splits=list(splits),
        files=files,
        stats=stats,
        stat_keys=STAT_KEYS,
        stat_headers=[k.replace("_", " ") for k in STAT_KEYS],
        source=name,
        bundled=name.startswith("builtin:"),
        license=license,
        embedder_name=embedder_name,
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
    splits to the parquet files so that `load_dataset(repo)` finds them. Written to a temp dir, then renamed; an
    existing `out_dir` is replaced only when empty or an earlier output of this function (HubError otherwise).
    """
    from datasets import Dataset

    from peft_diversity.datacard import dataset_stats

    splits = split_names(splits)
    local = [source] if isinstance(source, (str, os.PathLike)) and Path(source).exists() else []
    with upload_folder(out_dir, "dataset", source, *local) as tmp:
        loaded = _load_splits(source, splits)
        (tmp / "data").mkdir()
        stats, is_list = {}, False
        for split, records in loaded.items():
            rows, split_is_list = _normalise_records(records, split)
            is_list = is_list or split_is_list
            Dataset.from_list(rows).to_parquet(str(tmp / _parquet_name(split)))
            stats[split] = dataset_stats(records, embedder)
        card = build_dataset_card(
            source,
            loaded,
            stats=stats,
            context_is_list=is_list,
            repo_id=repo_id,
            pretty_name=pretty_name,
            license=license,
            embedder_name=_embedder_name(embedder),
        )
        card.save(tmp / "README.md")
    return Path(out_dir)


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
    return push_folder(
        lambda out: save_dataset_for_hub(source, out, repo_id=repo_id, **save_kwargs),
        repo_id,
        "dataset",
        what=source,
        private=private,
        token=token,
        api=api,
        commit_message=commit_message,
    )
