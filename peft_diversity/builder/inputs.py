"""Read the builder's inputs (JSONL / CSV / Parquet / Hub dataset): one item per row, with per-row problems
(bad bytes, bad JSON, missing column, empty, duplicate) turned into rejections instead of errors."""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peft_diversity.data import check_context
from peft_diversity.errors import BuildError, DataValidationError
from peft_diversity.templates import (
    is_empty_input,
    turn_body,
    turn_line,
)

logger = logging.getLogger(__name__)


COLUMN_GUESSES = ("context", "prompt", "text", "input", "question", "instruction")
TABULAR_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
# ----- inputs ------------------------------------------------------------------------------------------------
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
"""What a Hub dataset id looks like (owner/name): any other string must be a local file or folder."""
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
"""A byte that was not UTF-8, kept by errors="surrogateescape"."""


@dataclass
class InputItem:
    """One input row: its id, where it came from, the prompt/context, or why it cannot be used."""

    key: str
    """Unique id in the output (the id column's value, else `line-N` / `row-N`)."""
    where: str
    """`file:line` or `source[split] row N`, for messages."""
    source: Any = None
    """The prompt text or the list of dialogue turns."""
    problem: str | None = None
    """Rejection reason when the row is unusable."""
    detail: str = ""
    digest: str | None = None
    """Hash of the raw row when there is no `source`: what a resume compares to see whether the row changed."""


def read_inputs(
    source: str | os.PathLike,
    column: str | None = None,
    id_column: str | None = None,
    split: str = "train",
) -> list[InputItem]:
    """Read prompts/contexts: a .jsonl, .csv or .parquet file, a local dataset folder or a Hub dataset id
    (`owner/name`; `split`).

    `column` holds the prompt text or (JSONL, Parquet, Hub) a list of dialogue turns; default: the first of
    `COLUMN_GUESSES` present. `id_column` gives record ids (default: an `id` column when present, else the
    line/row number). Unusable rows are returned with `problem` set, never raised: non-UTF-8 or invalid JSON
    lines, a missing or malformed value, empty prompts, duplicate prompts (normalised text) and duplicate ids.
    Raises `BuildError` for a file that cannot be read as a whole, and when no row has `column` / `id_column`.
    """
    rows = list(_raw_rows(source, split))
    _check_columns(source, [row for _, _, row in rows if isinstance(row, dict)], column, id_column)
    items = [_to_item(where, default_id, row, column, id_column) for where, default_id, row in rows]
    return _mark_duplicates(items)


def display_name(source: str | os.PathLike) -> str:
    """A local file or folder by its name only (no home path in a dataset; the same from any working
    directory); anything else (a Hub id, `builtin:...`) as given."""
    path = Path(source)
    return path.resolve().name if path.exists() else str(source)


def _raw_rows(source: str | os.PathLike, split: str) -> Iterator[tuple[str, str, Any]]:
    """(where, default id, row dict | _Problem) per input row."""
    path = Path(source)
    if path.is_file():
        kind = TABULAR_SUFFIXES.get(path.suffix.lower())
        if kind is None:
            raise BuildError(f"{path}: unsupported input type {path.suffix!r}; use .jsonl, .csv or .parquet")
        return {"jsonl": _jsonl_rows, "csv": _csv_rows, "parquet": _parquet_rows}[kind](path)
    if path.is_dir():  # a local dataset folder: datasets reads it like a Hub repo
        return _hub_rows(str(path), path.resolve().name, split)
    if isinstance(source, str) and HUB_ID.match(source):
        logger.warning(
            "%s is not a local file or folder: loading it as a Hub dataset (split %s)", source, split
        )
        return _hub_rows(source, source, split)
    raise BuildError(
        f"{source}: no such input file or folder (inputs are .jsonl, .csv or .parquet files, "
        "dataset folders, or Hub dataset ids owner/name)"
    )


@dataclass
class _Problem:
    reason: str
    detail: str
    digest: str


def _digest(raw: str | bytes) -> str:
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    return hashlib.sha256(data).hexdigest()[:16]


def _jsonl_rows(path: Path) -> Iterator[tuple[str, str, Any]]:
    with open(path, "rb") as handle:  # bytes: one bad line is reported, not fatal
        for lineno, raw in enumerate(handle, start=1):
            where, default_id = f"{path.name}:{lineno}", f"line-{lineno}"
            raw = (
                raw.removeprefix(codecs.BOM_UTF8) if lineno == 1 else raw
            )  # some editors start files with one
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                detail = f"not valid UTF-8 ({err.reason} at byte {err.start})"
                yield where, default_id, _Problem("invalid_utf8", detail, _digest(raw.rstrip(b"\r\n")))
                continue
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                yield (
                    where,
                    default_id,
                    _Problem("invalid_json", f"not valid JSON ({err.msg})", _digest(line.strip())),
                )
                continue
            yield (
                where,
                default_id,
                {"prompt": value} if isinstance(value, str) else value,
            )  # a bare string: the prompt


def _csv_rows(path: Path) -> Iterator[tuple[str, str, Any]]:
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))  # the default stops at 128 KiB per cell
    # surrogateescape: a byte that is not UTF-8 stays inside its cell, so the quoting (and every later row) is
    # read as written; strict: a quoting error raises instead of silently merging rows
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle, strict=True)
        _, header = _next_csv_row(reader, path)
        if not header:
            raise BuildError(f"{path}: empty CSV file (a header row naming the columns is needed)")
        if any(_ESCAPED_BYTE.search(name) for name in header):
            raise BuildError(f"{path}:1: the header row is not valid UTF-8")
        while True:
            lineno, row = _next_csv_row(reader, path)
            if row is None:
                return
            if row:  # [] is a blank line
                yield f"{path.name}:{lineno}", f"line-{lineno}", _csv_record(header, row)


def _next_csv_row(reader: Any, path: Path) -> tuple[int, list[str] | None]:
    """(line the row starts on, the row or None at the end)."""
    start = reader.line_num + 1
    try:
        return start, next(reader, None)
    except csv.Error as err:
        raise BuildError(
            f"{path}:{start}: malformed CSV ({err}; noticed at line {reader.line_num}): check the "
            "quotes of that row"
        ) from None


def _csv_record(header: list[str], row: list[str]) -> dict[str, Any] | _Problem:
    if len(row) != len(header):
        return _Problem(
            "invalid_row", f"{len(row)} fields, the header has {len(header)}", _digest("\x1f".join(row))
        )
    bad = [name for name, cell in zip(header, row, strict=True) if _ESCAPED_BYTE.search(cell)]
    if bad:
        return _Problem("invalid_utf8", f"column {bad[0]!r} is not valid UTF-8", _digest("\x1f".join(row)))
    return dict(zip(header, row, strict=True))


def _parquet_rows(path: Path) -> Iterator[tuple[str, str, Any]]:
    import pyarrow.parquet as pq

    index = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            yield f"{path.name} row {index}", f"row-{index}", row
            index += 1


def _hub_rows(repo_id: str, name: str, split: str) -> Iterator[tuple[str, str, Any]]:
    from datasets import load_dataset

    try:
        dataset = load_dataset(repo_id, split=split)
    except Exception as err:  # datasets raises many types; name the source either way
        raise BuildError(f"{repo_id!r} could not be loaded as a dataset (split {split!r}): {err}") from err
    for index, row in enumerate(dataset):
        yield f"{name}[{split}] row {index}", f"row-{index}", row


def _check_columns(
    source: Any, rows: list[dict[str, Any]], column: str | None, id_column: str | None
) -> None:
    """A column named by the user that no row has is a typo: one error, not a rejection per row."""
    for flag, name in (("--column", column), ("--id-column", id_column)):
        if name is not None and rows and not any(name in row for row in rows):
            raise BuildError(
                f"{source}: no row has the column {name!r} ({flag}); the first row has {sorted(rows[0])}"
            )


def _to_item(where: str, default_id: str, row: Any, column: str | None, id_column: str | None) -> InputItem:
    item = InputItem(default_id, where)
    if isinstance(row, _Problem):
        item.problem, item.detail, item.digest = row.reason, row.detail, row.digest
        return item
    if isinstance(row, dict):
        _read_row(item, row, column, id_column)
    else:
        item.problem, item.detail = "invalid_row", f"a row must be an object, got {type(row).__name__}"
    if item.source is None:  # nothing else to recognise the row by on a resume
        item.digest = _digest(json.dumps(row, sort_keys=True, default=str))
    return item


def _read_row(item: InputItem, row: dict[str, Any], column: str | None, id_column: str | None) -> None:
    """Set the item's id and prompt/context from the row, or the reason it cannot be used."""
    value = row.get(id_column or "id")
    if id_column is not None and _blank(value):
        item.problem, item.detail = "missing_column", f"no value in the id column {id_column!r}"
        return
    if not encodable(value):
        item.problem, item.detail = "invalid_utf8", "the id holds a lone surrogate (not valid Unicode)"
        return
    if not _blank(value):
        item.key = str(value).strip()
    name = column or next((c for c in COLUMN_GUESSES if c in row), None)
    if name is None or name not in row:
        wanted = repr(column) if column else f"any of {list(COLUMN_GUESSES)}"
        item.problem, item.detail = "missing_column", f"no column {wanted} (has {sorted(row)})"
        return
    item.source = row[name]
    _checked_item(item)


def _blank(value: Any) -> bool:
    return value is None or not str(value).strip()


def encodable(value: Any) -> bool:
    """False when a string in `value` holds a lone surrogate (e.g. JSON "\\ud83d"): it cannot be written as UTF-8."""
    try:
        json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _checked_item(item: InputItem) -> None:
    source = item.source
    if source is None or (isinstance(source, float) and source != source):  # None / NaN cell
        source = ""
    if isinstance(source, str):
        source = item.source = source.strip()
    if not encodable(source):
        item.problem, item.detail = "invalid_utf8", "the prompt holds a lone surrogate (not valid Unicode)"
    elif isinstance(source, str) and not source:
        item.problem, item.detail = "empty_prompt", "the prompt is empty"
    elif isinstance(source, list) and is_empty_input(source):
        item.problem, item.detail = "empty_prompt", "the context has no non-empty turn"
    elif not isinstance(source, str):
        try:
            check_context(source, "context", lambda key, problem: DataValidationError(f"{key}: {problem}"))
        except DataValidationError as err:
            item.problem, item.detail = "invalid_context", str(err)


def normalise(text: str) -> str:
    """Lower-cased text with whitespace collapsed: the key of exact-duplicate checks."""
    return " ".join(text.lower().split())


def _source_key(source: Any) -> str:
    if isinstance(source, str):
        return normalise(source)
    return normalise("\n".join(turn_line(turn) for turn in source))


def echo_keys(source: Any) -> set[str]:
    """Normalised texts a candidate must not merely repeat: the prompt, or any turn of the context."""
    if isinstance(source, str):
        return {normalise(source)}
    return {_source_key(source)} | {normalise(turn_body(turn)) for turn in source}


def _mark_duplicates(items: list[InputItem]) -> list[InputItem]:
    """Second and later rows with an id or a prompt already seen become `duplicate_id` / `duplicate_prompt`."""
    ids: dict[str, str] = {}
    prompts: dict[str, str] = {}
    for item in items:
        if item.key in ids:  # keep output ids unique: the duplicate is filed under its location
            first, item.key = ids[item.key], f"{item.key}@{item.where}"
            if item.problem is None:
                item.problem, item.detail = "duplicate_id", f"id already used at {first}"
            continue
        ids[item.key] = item.where
        if item.problem is None:
            norm = _source_key(item.source)
            if norm in prompts:
                item.problem, item.detail = "duplicate_prompt", f"same prompt as id {prompts[norm]!r}"
            else:
                prompts[norm] = item.key
    return items
