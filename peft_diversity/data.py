"""One-to-many data: loading, validation and expansion into PoExFT training rows.

A record is `{"id": str, "context": [{"speaker", "text"}, ...] | str, "candidates": [str, ...]}` for dialogue,
or the same with `"prompt": str` instead of `"context"` for story/custom tasks.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peft_diversity.errors import DataValidationError

BUNDLED_DIR = Path(__file__).parent / "data"
BUNDLED = {"dialogue": BUNDLED_DIR / "dialogue", "story": BUNDLED_DIR / "story"}
MODES = ("poexft", "otm", "oto")


# ----- loading -----------------------------------------------------------------------------------------
def load_one_to_many(
    source: Any, split: str | None = "train", num_candidates: int | None = None
) -> list[dict[str, Any]]:
    """Load and validate one-to-many records.

    `source`: a .jsonl/.json/.parquet file, a folder holding `<split>.jsonl`, `builtin:dialogue` /
    `builtin:story` (bundled data), a `datasets.Dataset`/`DatasetDict`, or a Hub dataset id.
    `num_candidates`: when given, every record must have at least that many candidates.
    """
    if isinstance(source, str) and source.startswith("builtin:"):
        name = source.removeprefix("builtin:")
        if name not in BUNDLED:
            raise DataValidationError(f"unknown bundled dataset {source!r}; known: {sorted(BUNDLED)}")
        source = BUNDLED[name]
    if isinstance(source, (str, Path)) and Path(source).exists():
        path = Path(source)
        if path.is_dir():
            path = _split_file(path, split)
        rows = _read_file(path)
        origin = str(path)
    elif isinstance(source, Path):
        raise DataValidationError(f"{source}: no such file or folder")
    elif isinstance(source, str):
        rows, origin = _read_hub(source, split), f"hub:{source}[{split}]"
    else:
        rows, origin = _read_datasets_object(source, split), f"{type(source).__name__}[{split}]"
    return [validate_record(row, origin, where, num_candidates) for where, row in rows]


def _split_file(folder: Path, split: str | None) -> Path:
    for suffix in (".jsonl", ".json", ".parquet"):
        candidate = folder / f"{split}{suffix}"
        if candidate.is_file():
            return candidate
    found = sorted(p.name for p in folder.iterdir() if p.suffix in (".jsonl", ".json", ".parquet"))
    raise DataValidationError(f"{folder}: no file for split {split!r} (found: {found})")


def _read_file(path: Path) -> list[tuple[str, Any]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return [(f"row {i}", row) for i, row in enumerate(pq.read_table(path).to_pylist())]
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as err:
            raise DataValidationError(f"{path}: not valid UTF-8 ({err.reason} at byte {err.start})") from err
        except json.JSONDecodeError as err:
            raise DataValidationError(f"{path}:{err.lineno}: not valid JSON ({err.msg}, column {err.colno})") from err
        if not isinstance(data, list):
            raise DataValidationError(f"{path}: a .json file must hold a list of records")
        return [(f"item {i}", row) for i, row in enumerate(data)]
    return list(_read_jsonl(path))


def _read_jsonl(path: Path) -> Iterable[tuple[str, Any]]:
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataValidationError(f"{path}:{lineno}: line is not valid UTF-8 ({err.reason})") from err
            if not line.strip():
                continue
            try:
                yield f"line {lineno}", json.loads(line)
            except json.JSONDecodeError as err:
                raise DataValidationError(f"{path}:{lineno}: not valid JSON ({err.msg})") from err


def _read_datasets_object(obj: Any, split: str | None) -> list[tuple[str, Any]]:
    from datasets import Dataset, DatasetDict

    if isinstance(obj, DatasetDict):
        if split not in obj:
            raise DataValidationError(f"dataset has no split {split!r} (splits: {list(obj)})")
        obj = obj[split]
    if not isinstance(obj, Dataset):
        raise DataValidationError(f"cannot read one-to-many records from a {type(obj).__name__}")
    return [(f"row {i}", row) for i, row in enumerate(obj)]


def _read_hub(repo_id: str, split: str | None) -> list[tuple[str, Any]]:
    from datasets import load_dataset

    try:
        dataset = load_dataset(repo_id, split=split)
    except Exception as err:  # datasets raises many types; the message must name the source
        raise DataValidationError(f"{repo_id!r} is not a local file/folder and could not be loaded as a "
                                  f"Hub dataset (split {split!r}): {err}") from err
    return _read_datasets_object(dataset, None)


# ----- validation ---------------------------------------------------------------------------------------
def validate_record(row: Any, origin: str, where: str, num_candidates: int | None = None) -> dict[str, Any]:
    """Check one record; return it normalised (stripped candidates, an id)."""
    def fail(field: str, problem: str) -> DataValidationError:
        return DataValidationError(f"{origin}: {where}: field {field!r}: {problem}")

    if not isinstance(row, dict):
        raise DataValidationError(f"{origin}: {where}: record must be an object, got {type(row).__name__}")
    if "context" not in row and "prompt" not in row:
        raise fail("context", "missing (a record needs 'context' or 'prompt')")
    key = "context" if "context" in row else "prompt"
    _check_context(row[key], key, fail)
    if "candidates" not in row:
        raise fail("candidates", "missing")
    candidates = row["candidates"]
    if not isinstance(candidates, list) or not all(isinstance(c, str) for c in candidates):
        raise fail("candidates", f"must be a list of strings, got {type(candidates).__name__}")
    for i, cand in enumerate(candidates):
        if not cand.strip():
            raise fail(f"candidates[{i}]", "empty or whitespace-only candidate")
    seen: dict[str, int] = {}
    for i, cand in enumerate(candidates):
        norm = " ".join(cand.lower().split())
        if norm in seen:
            raise fail(f"candidates[{i}]", f"duplicate of candidates[{seen[norm]}]")
        seen[norm] = i
    if num_candidates is not None and len(candidates) < num_candidates:
        raise fail("candidates", f"has {len(candidates)} candidates, fewer than num_candidates={num_candidates}")
    out = {"id": str(row.get("id", where)), key: row[key], "candidates": [c.strip() for c in candidates]}
    return out


def _check_context(value: Any, key: str, fail) -> None:
    if isinstance(value, str):
        if not value.strip():
            raise fail(key, "empty")
        return
    if not isinstance(value, list) or not value:
        raise fail(key, f"must be a non-empty string or list of turns, got {type(value).__name__}")
    for i, turn in enumerate(value):
        if isinstance(turn, str) and turn.strip():
            continue
        if not isinstance(turn, dict) or not isinstance(turn.get("text"), str) or not turn["text"].strip():
            raise fail(f"{key}[{i}]", "a turn must be a non-empty string or {'speaker': str, 'text': str}")
        if not isinstance(turn.get("speaker"), str) or not turn["speaker"].strip():
            raise fail(f"{key}[{i}].speaker", "missing or empty")


# ----- training rows ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingRow:
    """One (prompt, response) pair: a positive trains by MLE, a negative by unlikelihood."""

    record_index: int
    k: int | None
    response: str
    negative: bool


def truncate_words(text: str, max_words: int | None) -> str:
    words = text.split()
    return text if max_words is None or len(words) <= max_words else " ".join(words[:max_words])


def build_training_rows(
    records: list[dict[str, Any]],
    mode: str = "poexft",
    num_candidates: int = 4,
    max_possibility: int = 9,
    max_negatives: int | None = None,
    seed: int = 0,
    max_response_words: int | None = None,
) -> list[TrainingRow]:
    """Expand records into training rows.

    poexft: N candidates get N distinct k from 1..max_possibility; positives (k_i, cand_i) and negatives
    (k_i, cand_j), j != i, at most `max_negatives` per record (None = all N(N-1)).
    otm: the same N candidates untagged, positives only. oto: one candidate per record, untagged.
    """
    check_row_settings(mode, num_candidates, max_possibility)
    rng = random.Random(seed)
    rows: list[TrainingRow] = []
    for index, record in enumerate(records):
        cands = record["candidates"]
        if len(cands) < num_candidates:
            raise DataValidationError(
                f"record {record.get('id', index)!r}: field 'candidates': has {len(cands)}, "
                f"fewer than num_candidates={num_candidates}"
            )
        chosen = [truncate_words(c, max_response_words) for c in rng.sample(cands, num_candidates)]
        if mode == "oto":
            rows.append(TrainingRow(index, None, chosen[0], False))
        elif mode == "otm":
            rows.extend(TrainingRow(index, None, c, False) for c in chosen)
        else:
            ks = rng.sample(range(1, max_possibility + 1), num_candidates)
            rows.extend(TrainingRow(index, k, c, False) for k, c in zip(ks, chosen, strict=True))
            pairs = [(i, j) for i in range(num_candidates) for j in range(num_candidates) if i != j]
            if max_negatives is not None and max_negatives < len(pairs):
                pairs = rng.sample(pairs, max_negatives)
            rows.extend(TrainingRow(index, ks[i], chosen[j], True) for i, j in pairs)
    return rows


def check_row_settings(mode: str, num_candidates: int, max_possibility: int) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
    if num_candidates < 1:
        raise ValueError(f"num_candidates must be >= 1, got {num_candidates}")
    if mode == "poexft" and max_possibility < num_candidates:
        raise ValueError(
            f"max_possibility ({max_possibility}) must be >= num_candidates ({num_candidates}): each candidate of "
            "a context needs its own possibility number"
        )
