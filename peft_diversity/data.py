"""One-to-many data: loading, validation and expansion into PoExFT training rows.

A record is `{"id": str, "context": [{"speaker", "text"}, ...] | str, "candidates": [str, ...]}` for dialogue,
or the same with `"prompt": str` instead of `"context"` for story/custom tasks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from peft_diversity.errors import DataValidationError

BUNDLED_DIR = Path(__file__).parent / "data"
BUNDLED = {"dialogue": BUNDLED_DIR / "dialogue", "story": BUNDLED_DIR / "story"}


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
    if not rows:
        raise DataValidationError(f"{origin}: no records (the file or split is empty)")
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
