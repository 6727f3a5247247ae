"""One-to-many data: loading, validation and expansion into PoExFT training rows.

A record is `{"id": str, "context": [{"speaker", "text"}, ...] | str, "candidates": [str, ...]}` for dialogue,
or the same with `"prompt": str` instead of `"context"` for story/custom tasks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from peft_diversity.atomic import atomic_write_text
from peft_diversity.errors import DataValidationError
from peft_diversity.jsonl import read_json, read_jsonl

logger = logging.getLogger(__name__)
BUNDLED_DIR = Path(__file__).parent / "data"
BUNDLED = {"dialogue": BUNDLED_DIR / "dialogue", "story": BUNDLED_DIR / "story"}


# ----- loading -----------------------------------------------------------------------------------------
def load_one_to_many(
    source: Any,
    split: str | None = "train",
    num_candidates: int | None = None,
    strict: bool = False,
    report: str | os.PathLike | None = None,
) -> list[dict[str, Any]]:
    """Load and validate one-to-many records; every bad record is reported at once (origin: line: field).

    `source`: a .jsonl/.json/.parquet file, a folder holding `<split>.jsonl`, `builtin:dialogue` /
    `builtin:story` (bundled data), a `datasets.Dataset`/`DatasetDict`, or a Hub dataset id.
    `num_candidates`: when given, every record used has at least that many candidates.

    Malformed records (missing or ill-typed fields, empty contexts or candidates) are an error listing all
    of them. Repairable ones follow the policy: by default a record's duplicate candidates (same words, case
    and spacing aside) are dropped, and records left with fewer than `num_candidates` are skipped, with one
    warning line; `strict=True` makes them errors too. When there are more than `INLINE_PROBLEMS` lines, all
    are written to `report` (default: `<data file>.problems.txt`, or a temp file) and the message names it.
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
    records, errors, repairs, deduplicated = [], [], [], 0
    for where, row in rows:
        try:
            record, fixed = _check_record(row, origin, where, num_candidates, strict)
        except DataValidationError as err:
            errors.append(str(err))
            continue
        repairs.extend(fixed)
        deduplicated += any(line.endswith("dropped") for line in fixed)
        if record is not None:
            records.append(record)
    report_for = source if isinstance(source, (str, Path)) and Path(source).is_file() else None
    if errors:
        raise DataValidationError(
            _summary(errors, f"{origin}: {len(errors)} bad records", report, report_for)
        )
    if repairs:
        message = f"{origin}: dropped duplicate candidates in {deduplicated} records"
        if num_candidates is not None:  # records are skipped only against a required number of candidates
            message += (
                f", skipped {len(rows) - len(records)} records with fewer than {num_candidates} candidates"
            )
        message += " (strict=True makes this an error)"
        if not records:
            raise DataValidationError(
                _summary(
                    repairs,
                    f"{origin}: no usable records: all {len(rows)} have "
                    f"fewer than num_candidates={num_candidates}",
                    report,
                    report_for,
                )
            )
        logger.warning(_summary(repairs, message, report, report_for))
    return records


INLINE_PROBLEMS = 3


def _summary(lines: list[str], head: str, report: Any, data_file: Any) -> str:
    """One line: the problem itself when there is one, else a head, the first few and where all are listed."""
    if len(lines) == 1:
        return lines[0]
    shown = " | ".join(lines[:INLINE_PROBLEMS])
    if len(lines) <= INLINE_PROBLEMS:
        return f"{head}: {shown}"
    path = _write_report(lines, report, data_file)
    return f"{head}: {shown} | ... ({len(lines) - INLINE_PROBLEMS} more; all {len(lines)} listed in {path})"


def _write_report(lines: list[str], report: Any, data_file: Any) -> Path:
    import tempfile

    candidates = [Path(report)] if report else []
    if data_file is not None:
        candidates.append(Path(f"{data_file}.problems.txt"))
    candidates.append(Path(tempfile.gettempdir()) / f"peft-diversity-data-problems-{os.getpid()}.txt")
    for path in candidates:
        try:
            atomic_write_text(path, "\n".join(lines) + "\n")
            return path
        except OSError:
            continue
    return candidates[-1]


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
        data = read_json(path, error=DataValidationError)
        if not isinstance(data, list):
            raise DataValidationError(f"{path}: a .json file must hold a list of records")
        return [(f"item {i}", row) for i, row in enumerate(data)]
    return list(_read_jsonl(path))


def _read_jsonl(path: Path) -> Iterable[tuple[str, Any]]:
    for lineno, value in read_jsonl(path, error=DataValidationError):
        yield f"line {lineno}", value


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
        raise DataValidationError(
            f"{repo_id!r} is not a local file/folder and could not be loaded as a "
            f"Hub dataset (split {split!r}): {err}"
        ) from err
    return _read_datasets_object(dataset, None)


# ----- validation ---------------------------------------------------------------------------------------
def validate_record(row: Any, origin: str, where: str, num_candidates: int | None = None) -> dict[str, Any]:
    """Check one record strictly (any problem raises); return it normalised (stripped candidates, an id)."""
    record, _ = _check_record(row, origin, where, num_candidates, strict=True)
    assert record is not None
    return record


def _check_record(
    row: Any, origin: str, where: str, num_candidates: int | None, strict: bool
) -> tuple[dict[str, Any] | None, list[str]]:
    """(the normalised record, or None when skipped; the repairs made). Malformed records raise; duplicate
    candidates and too few candidates raise only when `strict`."""

    def fail(field: str, problem: str) -> DataValidationError:
        return DataValidationError(f"{origin}: {where}: field {field!r}: {problem}")

    if not isinstance(row, dict):
        raise DataValidationError(f"{origin}: {where}: record must be an object, got {type(row).__name__}")
    if "context" not in row and "prompt" not in row:
        raise fail("context", "missing (a record needs 'context' or 'prompt')")
    key = "context" if "context" in row else "prompt"
    check_context(row[key], key, fail)
    if "candidates" not in row:
        raise fail("candidates", "missing")
    candidates = row["candidates"]
    if not isinstance(candidates, list) or not all(isinstance(c, str) for c in candidates):
        raise fail("candidates", f"must be a list of strings, got {type(candidates).__name__}")
    for i, cand in enumerate(candidates):
        if not cand.strip():
            raise fail(f"candidates[{i}]", "empty or whitespace-only candidate")
    seen: dict[str, int] = {}
    kept, repairs = [], []
    for i, cand in enumerate(candidates):
        norm = " ".join(cand.lower().split())
        if norm in seen:
            if strict:
                raise fail(f"candidates[{i}]", f"duplicate of candidates[{seen[norm]}]")
            repairs.append(
                f"{origin}: {where}: field 'candidates[{i}]': duplicate of candidates[{seen[norm]}], dropped"
            )
            continue
        seen[norm] = i
        kept.append(cand.strip())
    if num_candidates is not None and len(kept) < num_candidates:
        problem = f"has {len(kept)} candidates, fewer than num_candidates={num_candidates}"
        if strict:
            raise fail("candidates", problem)
        repairs.append(f"{origin}: {where}: field 'candidates': {problem}, record skipped")
        return None, repairs
    return {"id": str(row.get("id", where)), key: row[key], "candidates": kept}, repairs


def check_context(value: Any, key: str, fail) -> None:
    """Raise `fail(field, problem)` unless `value` is a non-empty string or a non-empty list of turns (each a
    non-empty string or {'speaker': str, 'text': str}); the data loader and the builder's inputs share it."""
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
