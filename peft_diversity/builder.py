"""Build one-to-many training data: a teacher lists N candidates per prompt; they are cleaned, de-duplicated
and written resumably.

    inputs (JSONL / CSV / Parquet / Hub dataset, one prompt or context per row)
      └─ read_inputs: per-row problems (non-UTF-8, bad JSON, missing column, empty, duplicate) become rejections
           └─ teacher (LocalTeacher: transformers; OpenAITeacher: /chat/completions) answers the listing prompt
                └─ parse (parse_numbered_list) → clean → drop empty / echo / duplicate / near-duplicate
                     └─ fewer than N left: ask again (next seed, hotter temperature), merge the new unique ones
                          └─ output folder: train.jsonl (kept) | rejected.jsonl (why) | build_config.json
                               └─ quality_report.md / .json

Output folder (loadable with `load_one_to_many(folder, split="train")`):
- `train.jsonl`: `{"id", "prompt"|"context", "candidates", "provenance"}`, one record per line, each line appended,
  flushed and fsync'ed before the next prompt is processed.
- `rejected.jsonl`: `{"id", "reason", "detail", "input", ...}` for inputs that produced no record (same policy).
- `build_config.json`: the settings that determine the content (written atomically); a resume with different
  ones is refused unless `force=True`.
- `build_progress.json`: inputs seen and records left unfinished by teacher errors (retried by a resume).
- `.lock`: held (flock) for the length of a build, so two builds cannot append to one folder.
Resume: ids already in train.jsonl or rejected.jsonl are skipped; a torn last line (a run killed mid-write) is
cut off first. Every input id therefore ends up exactly once in train.jsonl ∪ rejected.jsonl. Each finished id's
stored input is compared with the current row: a changed kept one is an error, a changed rejected one is redone.
"""

from __future__ import annotations

import codecs
import csv
import fcntl
import hashlib
import json
import logging
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from peft_diversity.atomic import atomic_write_text
from peft_diversity.chat_http import (
    FATAL_ERRORS,
    ChatClient,
    ChatRequestError,
    ChatRetriesExhausted,
    RetryPolicy,
    public_url,
)
from peft_diversity.data import DataValidationError, _check_context
from peft_diversity.errors import BuildError
from peft_diversity.templates import (
    LISTING_SENTENCE,
    PossibilityTemplate,
    is_empty_input,
    listing_sentence,
    turn_body,
    turn_line,
)

logger = logging.getLogger(__name__)

TRAIN_FILE, REJECTED_FILE = "train.jsonl", "rejected.jsonl"
CONFIG_FILE, PROGRESS_FILE = "build_config.json", "build_progress.json"
REPORT_MD, REPORT_JSON = "quality_report.md", "quality_report.json"
PARSER_VERSION = "1"
"""Bump when parsing or cleaning changes what a teacher reply becomes: it is part of `prompt_version`."""
COLUMN_GUESSES = ("context", "prompt", "text", "input", "question", "instruction")
TABULAR_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
CONTENT_KEYS = ("column", "id_column", "split", "teacher", "prompt_version", "num_candidates", "min_candidates",
                "similarity_threshold")
"""Settings that change what a record looks like: a resume must keep them (other settings may change). The input
file's path is not one (a checkout may move): a resume compares each finished input's content instead."""
LOCK_FILE = ".lock"


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
        logger.warning("%s is not a local file or folder: loading it as a Hub dataset (split %s)", source, split)
        return _hub_rows(source, source, split)
    raise BuildError(f"{source}: no such input file or folder (inputs are .jsonl, .csv or .parquet files, "
                     "dataset folders, or Hub dataset ids owner/name)")


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
            raw = raw.removeprefix(codecs.BOM_UTF8) if lineno == 1 else raw  # some editors start files with one
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
                yield where, default_id, _Problem("invalid_json", f"not valid JSON ({err.msg})", _digest(line.strip()))
                continue
            yield where, default_id, {"prompt": value} if isinstance(value, str) else value  # a bare string: the prompt


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
        raise BuildError(f"{path}:{start}: malformed CSV ({err}; noticed at line {reader.line_num}): check the "
                         "quotes of that row") from None


def _csv_record(header: list[str], row: list[str]) -> dict[str, Any] | _Problem:
    if len(row) != len(header):
        return _Problem("invalid_row", f"{len(row)} fields, the header has {len(header)}", _digest("\x1f".join(row)))
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


def _check_columns(source: Any, rows: list[dict[str, Any]], column: str | None, id_column: str | None) -> None:
    """A column named by the user that no row has is a typo: one error, not a rejection per row."""
    for flag, name in (("--column", column), ("--id-column", id_column)):
        if name is not None and rows and not any(name in row for row in rows):
            raise BuildError(f"{source}: no row has the column {name!r} ({flag}); the first row has {sorted(rows[0])}")


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
    if not _encodable(value):
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


def _encodable(value: Any) -> bool:
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
    if not _encodable(source):
        item.problem, item.detail = "invalid_utf8", "the prompt holds a lone surrogate (not valid Unicode)"
    elif isinstance(source, str) and not source:
        item.problem, item.detail = "empty_prompt", "the prompt is empty"
    elif isinstance(source, list) and is_empty_input(source):
        item.problem, item.detail = "empty_prompt", "the context has no non-empty turn"
    elif not isinstance(source, str):
        try:
            _check_context(source, "context", lambda key, problem: DataValidationError(f"{key}: {problem}"))
        except DataValidationError as err:
            item.problem, item.detail = "invalid_context", str(err)


def normalise(text: str) -> str:
    """Lower-cased text with whitespace collapsed: the key of exact-duplicate checks."""
    return " ".join(text.lower().split())


def _source_key(source: Any) -> str:
    if isinstance(source, str):
        return normalise(source)
    return normalise("\n".join(turn_line(turn) for turn in source))


def _echo_keys(source: Any) -> set[str]:
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


# ----- teachers ------------------------------------------------------------------------------------------------
@dataclass
class TeacherFailure:
    """A teacher could not answer for one record.

    `retryable` (e.g. retries exhausted): the record is left unfinished and retried on resume. Otherwise the
    teacher refused this input for good (e.g. HTTP 400: prompt too long): it is rejected as `teacher_rejected`.
    """

    message: str
    retryable: bool = True


class Teacher(Protocol):
    """Answers the listing prompt for a batch of records: one raw reply (or a failure) per record."""

    name: str

    def __call__(self, records: Sequence[dict[str, Any]], n: int, attempt: int) -> list[str | TeacherFailure]:
        ...


@dataclass
class Sampling:
    """Sampling settings; retries sample hotter so they do not repeat the first answer."""

    temperature: float = 1.0
    retry_temperature_step: float = 0.2
    max_temperature: float = 1.5
    max_new_tokens: int = 64
    """Per candidate: a listing reply gets N times as many."""
    seed: int | None = 0

    def temperature_for(self, attempt: int) -> float:
        return min(max(self.max_temperature, self.temperature), self.temperature + self.retry_temperature_step * attempt)

    def seed_for(self, attempt: int) -> int | None:
        return None if self.seed is None else self.seed + attempt


def listing_messages(template: PossibilityTemplate, record: dict[str, Any], n: int) -> list[dict[str, str]]:
    """The chat messages asking for N numbered candidates: the `listing` decoder's exact wording."""
    return template.messages(record, None, sentence=listing_sentence(n))


def prompt_version(template: PossibilityTemplate) -> str:
    """Short hash of everything that shapes a teacher's prompt and how its reply is read."""
    blob = json.dumps({"listing": LISTING_SENTENCE, "template": template.to_dict(), "parser": PARSER_VERSION},
                      sort_keys=True)
    return "listing-" + hashlib.sha256(blob.encode("utf-8")).hexdigest()[:10]


class LocalTeacher:
    """A transformers causal LM (Hub id, folder or `builtin:<name>`): one batched `generate_listing` per batch."""

    def __init__(self, model: Any, template: PossibilityTemplate, sampling: Sampling | None = None, *,
                 tokenizer: Any = None, batch_size: int = 8, dtype: str = "auto",
                 trust_remote_code: bool = False) -> None:
        if isinstance(model, str | os.PathLike):
            from peft_diversity.models import load_model_and_tokenizer

            self.name = f"local:{display_name(model)}"
            model, tokenizer = load_model_and_tokenizer(str(model), dtype=dtype, trust_remote_code=trust_remote_code)
        else:
            from peft_diversity.generation import model_name

            if tokenizer is None:
                raise BuildError("LocalTeacher needs the tokenizer when the model is an object")
            self.name = f"local:{display_name(model_name(model) or type(model).__name__)}"
        self.model, self.tokenizer, self.template = model, tokenizer, template
        self.sampling, self.batch_size = sampling or Sampling(), batch_size

    def __call__(self, records: Sequence[dict[str, Any]], n: int, attempt: int) -> list[str | TeacherFailure]:
        from peft_diversity.generation import generate_listing

        generation_logger = logging.getLogger("peft_diversity.generation")
        generation_logger.addFilter(_skip_parse_warnings)  # the builder records parse failures per record itself
        try:
            results = generate_listing(
                self.model, self.tokenizer, contexts=list(records), k=n, template=self.template, clean=False,
                temperature=self.sampling.temperature_for(attempt), max_new_tokens=self.sampling.max_new_tokens,
                seed=self.sampling.seed_for(attempt), batch_size=self.batch_size, progress=False,
            )
        finally:
            generation_logger.removeFilter(_skip_parse_warnings)
        return [result.settings["raw_output"] for result in results]


class OpenAITeacher:
    """An OpenAI-compatible `/chat/completions` endpoint; the records of a batch are requested concurrently.

    Retries, rate limit and error messages are `chat_http.ChatClient`'s. Auth, quota, unknown-model and redirect
    errors stop the build; a record whose retries run out comes back as a retryable `TeacherFailure`, one the
    endpoint refuses (another 4xx, an unreadable reply) as a final one.
    """

    def __init__(self, model: str, template: PossibilityTemplate, sampling: Sampling | None = None, *,
                 base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY", api_key: str | None = None,
                 policy: RetryPolicy | None = None, requests_per_minute: float | None = None,
                 concurrency: int = 4) -> None:
        self.client = ChatClient(model, base_url, api_key=api_key, api_key_env=api_key_env, policy=policy,
                                 requests_per_minute=requests_per_minute)
        self.name = f"openai:{model}@{public_url(self.client.base_url)}"
        self.template, self.sampling, self.concurrency = template, sampling or Sampling(), max(1, concurrency)

    def __call__(self, records: Sequence[dict[str, Any]], n: int, attempt: int) -> list[str | TeacherFailure]:
        params = {"temperature": self.sampling.temperature_for(attempt),
                  "max_tokens": self.sampling.max_new_tokens * n}

        def one(record: dict[str, Any]) -> str | TeacherFailure:
            try:
                return self.client.complete(listing_messages(self.template, record, n), **params)
            except FATAL_ERRORS:
                raise
            except ChatRetriesExhausted as err:
                return TeacherFailure(str(err))
            except ChatRequestError as err:  # refused for this input (e.g. 400 prompt too long): asking again won't help
                return TeacherFailure(str(err), retryable=False)

        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(records)))
        try:
            futures = [pool.submit(one, record) for record in records]
            return [future.result() for future in futures]
        finally:  # after a fatal error, requests not yet started are not sent
            pool.shutdown(wait=True, cancel_futures=True)


def _skip_parse_warnings(record: logging.LogRecord) -> bool:
    """Logging filter: drop only `generate_listing`'s parse warnings; others (a prompt truncated to fit the model
    window) still reach the user."""
    return not str(record.msg).startswith("listing: could not parse")


# ----- per-record candidate selection ---------------------------------------------------------------------------
DROP_REASONS = ("empty", "invalid_utf8", "echo", "duplicate", "near_duplicate", "surplus")


@dataclass
class _State:
    """Candidates gathered so far for one input, and what was dropped on the way."""

    item: InputItem
    record: dict[str, Any]
    kept: list[str] = field(default_factory=list)
    kept_norm: set[str] = field(default_factory=set)
    kept_emb: list[np.ndarray] = field(default_factory=list)
    attempts: int = 0
    parse_failures: list[list[int]] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    error: TeacherFailure | None = None


def parse_reply(raw: str, record: dict[str, Any], n: int, template: PossibilityTemplate) -> tuple[list[str], list[int]]:
    """(cleaned items, numbers 1..N that were missing) of one listing reply; items may be empty after cleaning."""
    from peft_diversity.generation import clean_for_record, listing_text, parse_numbered_list

    parsed = parse_numbered_list(listing_text(raw, record, template), n)
    return [clean_for_record(item, record, template) for item in parsed.items], parsed.failures


class CandidateFilter:
    """Exact and semantic de-duplication against the candidates already kept for the same input.

    Semantic: a candidate whose SBERT cosine with a kept sibling is above `threshold` is a near-duplicate;
    `embedder=False` (or threshold >= 1) turns this off. One encode call per batch of inputs.
    """

    def __init__(self, threshold: float = 0.9, embedder: Any = None) -> None:
        if not 0.0 < threshold <= 1.0:
            raise BuildError(f"similarity_threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.semantic = embedder is not False and threshold < 1.0
        self.embedder = None if embedder is False else embedder

    def text_pass(self, state: _State, items: list[str]) -> list[str]:
        """Drop empty items, unwritable ones (a lone surrogate), echoes of the input and exact duplicates; the rest
        still needs the semantic pass."""
        echoes = _echo_keys(state.item.source)
        fresh: list[str] = []
        seen = set(state.kept_norm)
        for item in items:
            norm = normalise(item)
            reason = ("empty" if not norm else "invalid_utf8" if not _encodable(item) else "echo" if norm in echoes
                      else "duplicate" if norm in seen else None)
            if reason:
                state.dropped[reason] += 1
            else:
                seen.add(norm)
                fresh.append(item)
        return fresh

    def keep(self, batch: list[tuple[_State, list[str]]], n: int) -> None:
        """Keep candidates in order until N, skipping near-duplicates of kept ones (ONE encode for the batch)."""
        texts = [text for _, items in batch for text in items]
        emb = self._encode(texts)
        row = 0
        for state, items in batch:
            for text in items:
                vector, row = (emb[row] if emb is not None else None), row + 1
                if len(state.kept) >= n:
                    state.dropped["surplus"] += 1
                elif vector is not None and state.kept_emb and max(float(k @ vector) for k in state.kept_emb) > self.threshold:
                    state.dropped["near_duplicate"] += 1
                else:
                    state.kept.append(text)
                    state.kept_norm.add(normalise(text))
                    if vector is not None:
                        state.kept_emb.append(vector)

    def _encode(self, texts: list[str]) -> np.ndarray | None:
        if not self.semantic or not texts:
            return None
        from peft_diversity.scoring.embeddings import encode_texts

        return encode_texts(texts, self.embedder)


# ----- output folder -------------------------------------------------------------------------------------------
BUILD_REASONS = ("too_few_candidates", "teacher_rejected", "invalid_utf8")
"""Rejections decided during the build (not by reading the input): they stand while the input is unchanged."""


def append_line(handle: Any, data: dict[str, Any], ensure_ascii: bool = False) -> None:
    """One JSON line, written in one call, flushed and fsync'ed: a crash loses at most the line being written.

    `handle` is binary and the line is encoded first, so text that is not valid Unicode (a lone surrogate) raises
    UnicodeEncodeError with nothing written.
    """
    handle.write((json.dumps(data, ensure_ascii=ensure_ascii) + "\n").encode("utf-8"))
    handle.flush()
    os.fsync(handle.fileno())


def repair_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL output; a torn last line (no newline: killed mid-write) is truncated away first."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        logger.warning("%s: removing an incomplete last line (%d bytes) left by an interrupted run",
                       path, len(data) - cut)
        with open(path, "r+b") as handle:
            handle.truncate(cut)
            handle.flush()
            os.fsync(handle.fileno())
        data = data[:cut]
    return _parse_lines(path, data.split(b"\n"))


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Complete lines only (a torn last line is ignored, not repaired): for read-only reporting."""
    if not path.is_file():
        return []
    return _parse_lines(path, path.read_bytes().split(b"\n")[:-1])  # after the last newline: empty or torn


def _parse_lines(path: Path, lines: list[bytes]) -> list[dict[str, Any]]:
    records = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            record = err
        if not isinstance(record, dict):
            problem = f"not valid JSON ({record})" if isinstance(record, Exception) else "not a JSON object"
            raise BuildError(f"{path}:{lineno}: {problem}; the file was edited or damaged: fix or delete that line, "
                             "then run again")
        records.append(record)
    return records


class BuildFolder:
    """The output folder of a build: lock, config check, resume state, append-only writers."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.train_path, self.rejected_path = self.folder / TRAIN_FILE, self.folder / REJECTED_FILE
        self.done: set[str] = set()

    def open(self, config: dict[str, Any], items: Sequence[InputItem], force: bool = False) -> list[InputItem]:
        """Lock the folder, check/write build_config.json, repair torn lines; returns the items still to build."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            self._check_config(config, force)
            todo = self._pending(items, force)
            atomic_write_text(self.folder / CONFIG_FILE, json.dumps(config, indent=2, ensure_ascii=False) + "\n")
            self._train = open(self.train_path, "ab")  # noqa: SIM115 - closed in close()
            self._rejected = open(self.rejected_path, "ab")  # noqa: SIM115
        except BaseException:
            self.close()
            raise
        return todo

    def _lock(self) -> None:
        """Exclusive for the whole build: two builds appending to one folder would write the same ids twice."""
        self._lock_handle = open(self.folder / LOCK_FILE, "a")  # noqa: SIM115 - closed in close()
        try:
            fcntl.flock(self._lock_handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.close()
            raise BuildError(f"{self.folder} is in use by another build (it holds {self.folder / LOCK_FILE}); wait "
                             "for it to finish or use another --output folder") from None

    def _check_config(self, config: dict[str, Any], force: bool) -> None:
        path = self.folder / CONFIG_FILE
        if not path.is_file():
            if self.train_path.exists() or self.rejected_path.exists():
                if not force:
                    raise BuildError(f"{self.folder} holds build outputs but no {CONFIG_FILE}: use a new folder, or "
                                     "--force to add to it")
            return
        old = _read_json(path)
        changed = [f"{key}: {old.get(key)!r} -> {config.get(key)!r}" for key in CONTENT_KEYS
                   if old.get(key) != config.get(key)]
        if changed and not force:
            raise BuildError(f"{self.folder} was built with different settings ({'; '.join(changed)}); resuming "
                             "would mix them. Use a new --output folder, or --force to continue anyway")
        if changed:
            logger.warning("continuing %s with changed settings (%s)", self.folder, "; ".join(changed))

    def _pending(self, items: Sequence[InputItem], force: bool) -> list[InputItem]:
        """The items not finished yet. A finished id whose input row has changed since: for a kept record an error
        (ids no longer name the same inputs, e.g. `line-N` after an inserted row); a rejection is dropped and
        its row processed again (the user fixed it)."""
        kept = {str(r.get("id")): r for r in repair_jsonl(self.train_path)}
        rejected = {str(r.get("id")): r for r in repair_jsonl(self.rejected_path)}
        stale = set()
        for item in items:
            if item.key in kept and _stored_input(kept[item.key]) != _input_of(item) and not force:
                raise BuildError(
                    f"{item.where}: id {item.key!r} holds a different input than the record built for it in "
                    f"{self.train_path}: the input changed since that run. Use a new --output folder, or --force "
                    "to keep the old records")
            if item.key in rejected and not _rejection_holds(rejected[item.key], item):
                stale.add(item.key)
        if stale:
            logger.warning("%s: %d rejected inputs changed since the last run; processing them again",
                           self.rejected_path, len(stale))
            self._drop_rejections(stale)
        self.done = (set(kept) | set(rejected)) - stale
        return [item for item in items if item.key not in self.done]

    def _drop_rejections(self, ids: set[str]) -> None:
        """Rewrite rejected.jsonl without these ids (atomically, before it is opened for appending)."""
        lines = self.rejected_path.read_bytes().decode("utf-8").split("\n")
        keep = [line for line in lines if line.strip() and str(json.loads(line).get("id")) not in ids]
        atomic_write_text(self.rejected_path, "".join(f"{line}\n" for line in keep))

    def write_record(self, record: dict[str, Any]) -> None:
        append_line(self._train, record)
        self.done.add(record["id"])

    def write_rejection(self, entry: dict[str, Any]) -> None:
        try:
            append_line(self._rejected, entry)
        except UnicodeEncodeError:  # a lone surrogate from the input: keep the entry, escaped as \udXXXX
            append_line(self._rejected, entry, ensure_ascii=True)
        self.done.add(entry["id"])

    def write_progress(self, progress: dict[str, Any]) -> None:
        atomic_write_text(self.folder / PROGRESS_FILE, json.dumps(progress, indent=2) + "\n")

    def close(self) -> None:
        for name in ("_train", "_rejected", "_lock_handle"):  # the lock last: closing it releases it
            handle = getattr(self, name, None)
            if handle is not None:
                handle.close()
                setattr(self, name, None)


def _input_of(item: InputItem) -> Any:
    return item.source if item.source is not None else item.digest


def _stored_input(entry: dict[str, Any]) -> Any:
    return entry.get("prompt", entry.get("context", entry.get("input_hash")))


def _rejection_holds(entry: dict[str, Any], item: InputItem) -> bool:
    """A stored rejection still applies: same input, and the same input problem (or none, for a rejection
    decided during the build)."""
    reason = entry.get("reason")
    same_reason = reason == item.problem if item.problem else reason in BUILD_REASONS
    return same_reason and _stored_input(entry) == _input_of(item)


# ----- the build --------------------------------------------------------------------------------------------------
@dataclass
class BuildSettings:
    """What makes a record: how many candidates, how hard to try, how similar is too similar."""

    num_candidates: int = 5
    """N: candidates asked for (and kept at most) per input."""
    min_candidates: int = 2
    """Inputs ending with fewer valid candidates are rejected (`too_few_candidates`)."""
    max_retries: int = 2
    """Extra teacher calls for an input that has fewer than N valid candidates."""
    similarity_threshold: float = 0.9
    """SBERT cosine above which a candidate is a near-duplicate of a kept sibling."""
    batch_size: int = 8
    """Inputs per teacher call (local) or per round of concurrent requests (HTTP)."""
    max_consecutive_failures: int = 5
    """Stop when this many inputs in a row fail at the teacher (an endpoint that is down)."""

    def check(self) -> None:
        if self.num_candidates < 1:
            raise BuildError(f"num_candidates must be >= 1, got {self.num_candidates}")
        if not 1 <= self.min_candidates <= self.num_candidates:
            raise BuildError(f"min_candidates must be in 1..num_candidates={self.num_candidates}, got {self.min_candidates}")
        for name in ("max_retries", "batch_size", "max_consecutive_failures"):
            if getattr(self, name) < (0 if name == "max_retries" else 1):
                raise BuildError(f"{name} is out of range: {getattr(self, name)}")


@dataclass
class BuildSummary:
    """What one `build_dataset` call did."""

    inputs: int = 0
    already_done: int = 0
    kept: int = 0
    shortfall: int = 0
    rejected: Counter = field(default_factory=Counter)
    unfinished: dict[str, str] = field(default_factory=dict)
    """id -> teacher error, for inputs left for a resume."""
    wall_time_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rejected"] = dict(self.rejected)
        return data


Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_config(template: PossibilityTemplate, teacher: Teacher, settings: BuildSettings, *,
                 semantic: bool = True, **extra: Any) -> dict[str, Any]:
    """The settings saved in build_config.json; `extra`: input, column, id_column, split, sampling, ..."""
    return {
        **extra,
        "teacher": teacher.name,
        "prompt_version": prompt_version(template),
        "num_candidates": settings.num_candidates,
        "min_candidates": settings.min_candidates,
        "similarity_threshold": settings.similarity_threshold if semantic else None,
        "template": template.to_dict(),
        "settings": asdict(settings),
    }


def build_dataset(
    items: Sequence[InputItem],
    teacher: Teacher,
    output_dir: str | os.PathLike,
    template: PossibilityTemplate,
    settings: BuildSettings | None = None,
    *,
    embedder: Any = None,
    config: dict[str, Any] | None = None,
    force: bool = False,
    log: Log = _stderr,
) -> BuildSummary:
    """Build (or resume) the one-to-many dataset in `output_dir` from `items` (see the module docstring).

    `embedder`: the SBERT model for near-duplicate detection (None = all-MiniLM-L6-v2, False = exact text only).
    `config`: the content settings to store/check (default: `build_config(...)` without input fields).
    Problems with single inputs are logged and recorded; only settings errors and fatal teacher errors
    (auth, quota, unknown model, redirect, `max_consecutive_failures` failures in a row), a folder locked by
    another build and an input that changed under a finished record raise.
    """
    settings = settings or BuildSettings()
    settings.check()
    dedup = CandidateFilter(settings.similarity_threshold, embedder)
    config = config or build_config(template, teacher, settings, semantic=dedup.semantic)
    out, summary, start = BuildFolder(output_dir), BuildSummary(inputs=len(items)), time.perf_counter()
    todo = out.open(config, items, force)
    summary.already_done = len(items) - len(todo)
    run = _Run(teacher, template, settings, dedup, out, summary, log, config["prompt_version"])
    try:
        for item in (i for i in todo if i.problem):
            run.reject(item, item.problem, item.detail)
        usable = [item for item in todo if not item.problem]
        for begin in range(0, len(usable), settings.batch_size):
            run.batch(usable[begin:begin + settings.batch_size])
            log(f"[{begin + min(settings.batch_size, len(usable) - begin)}/{len(usable)}] kept {summary.kept}, "
                f"rejected {sum(summary.rejected.values())}, unfinished {len(summary.unfinished)}")
    finally:
        summary.wall_time_s = round(time.perf_counter() - start, 3)
        out.write_progress({"inputs": summary.inputs, "unfinished": summary.unfinished,
                            "last_run": summary.to_dict()})
        out.close()
    return summary


@dataclass
class _Run:
    teacher: Teacher
    template: PossibilityTemplate
    settings: BuildSettings
    dedup: CandidateFilter
    out: BuildFolder
    summary: BuildSummary
    log: Log
    prompt_version: str
    failures_in_a_row: int = 0

    def batch(self, items: list[InputItem]) -> None:
        """Ask, filter and retry for a batch of inputs, then write each one's record or rejection."""
        n = self.settings.num_candidates
        states = [_State(item, _teacher_record(item, self.template)) for item in items]
        for attempt in range(self.settings.max_retries + 1):
            pending = [s for s in states if len(s.kept) < n and s.error is None]
            if not pending:
                break
            replies = self.teacher([s.record for s in pending], n, attempt)
            if len(replies) != len(pending):
                raise BuildError(f"teacher {self.teacher.name} returned {len(replies)} replies for {len(pending)} inputs")
            fresh = []
            for state, reply in zip(pending, replies, strict=True):
                state.attempts += 1
                if isinstance(reply, TeacherFailure):
                    state.error = reply
                    continue
                items_, failures = parse_reply(reply, state.record, n, self.template)
                state.parse_failures.append(failures)
                fresh.append((state, self.dedup.text_pass(state, items_)))
            self.dedup.keep(fresh, n)
        for state in states:
            self.finish(state)
        if self.failures_in_a_row >= self.settings.max_consecutive_failures:  # only now: the batch is all written
            last = next(reversed(self.summary.unfinished.values()))
            raise BuildError(
                f"the teacher failed {self.failures_in_a_row} inputs in a row (last: {last}); stopping. "
                f"{self.summary.kept} records were written; run the same command again to resume"
            )

    def finish(self, state: _State) -> None:
        item, n = state.item, self.settings.num_candidates
        short = len(state.kept) < self.settings.min_candidates
        if short and state.error is not None and state.error.retryable:
            self._unfinished(item, state.error.message)
            return
        self.failures_in_a_row = 0
        provenance = self.provenance(state)
        if short and state.error is not None:  # the teacher refused this input for good (e.g. HTTP 400)
            self.reject(item, "teacher_rejected", state.error.message, candidates=state.kept, provenance=provenance)
            return
        if short:
            detail = (f"{len(state.kept)} valid candidates after {state.attempts} attempts "
                      f"(min_candidates={self.settings.min_candidates}); dropped: {dict(state.dropped) or 'none'}")
            self.reject(item, "too_few_candidates", detail, candidates=state.kept, provenance=provenance)
            return
        key = "context" if "context" in state.record else "prompt"
        try:
            self.out.write_record({"id": item.key, key: item.source, "candidates": state.kept,
                                   "provenance": provenance})
        except UnicodeEncodeError as err:  # inputs and candidates are checked; still, one record never stops a build
            self.reject(item, "invalid_utf8", f"the record cannot be written as UTF-8 ({err.reason})",
                        provenance=provenance)
            return
        self.summary.kept += 1
        if len(state.kept) < n:
            self.summary.shortfall += 1
            self.log(f"{item.where}: id {item.key!r} kept with {len(state.kept)}/{n} candidates")

    def provenance(self, state: _State) -> dict[str, Any]:
        data = {
            "teacher": self.teacher.name,
            "prompt_version": self.prompt_version,
            "input": state.item.where,
            "requested": self.settings.num_candidates,
            "attempts": state.attempts,
            "parse_failures": state.parse_failures,
            "dropped": {reason: state.dropped[reason] for reason in DROP_REASONS if state.dropped[reason]},
            "shortfall": max(0, self.settings.num_candidates - len(state.kept)),
        }
        if state.error is not None:
            data["teacher_error"] = state.error.message
        return data

    def reject(self, item: InputItem, reason: str, detail: str, **extra: Any) -> None:
        entry = {"id": item.key, "reason": reason, "detail": detail, "input": item.where}
        if item.source is not None:
            entry["prompt" if isinstance(item.source, str) else "context"] = item.source
        else:  # an unreadable row: a resume compares this to see whether it was fixed
            entry["input_hash"] = item.digest
        self.out.write_rejection({**entry, **extra})
        self.summary.rejected[reason] += 1
        self.log(f"{item.where}: id {item.key!r} rejected ({reason}: {detail})")

    def _unfinished(self, item: InputItem, error: str) -> None:
        self.summary.unfinished[item.key] = error
        self.failures_in_a_row += 1
        self.log(f"{item.where}: id {item.key!r} not built, teacher error (retried on resume): {error}")


def _teacher_record(item: InputItem, template: PossibilityTemplate) -> dict[str, Any]:
    """The record the teacher sees: dialogue data (or turns) as `context`, story/custom text as `prompt`."""
    key = "context" if template.task == "dialogue" or isinstance(item.source, list) else "prompt"
    return {"id": item.key, key: item.source}


# ----- quality report -----------------------------------------------------------------------------------------------
def quality_report(folder: str | os.PathLike, embedder: Any = None, write: bool = True) -> dict[str, Any]:
    """Statistics of a built folder; written as quality_report.json / .md when `write`.

    Counts (inputs, kept, rejected by reason, unfinished), candidates per record, shortfall, candidate length in
    words, within-record SBERT cosine (skipped with `embedder=False`), candidates dropped by reason, attempts,
    and whether `load_one_to_many(folder)` accepts the data.
    """
    folder = Path(folder)
    if not (folder / TRAIN_FILE).is_file() and not (folder / REJECTED_FILE).is_file():
        raise BuildError(f"{folder}: no {TRAIN_FILE} or {REJECTED_FILE}: not a build-data output folder")
    records, rejected = _read_jsonl(folder / TRAIN_FILE), _read_jsonl(folder / REJECTED_FILE)
    config = _read_json(folder / CONFIG_FILE)
    progress = _read_json(folder / PROGRESS_FILE)
    written = {r.get("id") for r in records + rejected}
    unfinished = sorted(set(progress.get("unfinished", {})) - written)
    pending = max(0, progress.get("inputs", 0) - len(written) - len(unfinished))
    report = {
        "folder": str(folder),
        "teacher": config.get("teacher"),
        "prompt_version": config.get("prompt_version"),
        "num_candidates": config.get("num_candidates"),
        "records": _record_counts(records, rejected, unfinished, pending),
        "candidates_per_record": _distribution([len(r["candidates"]) for r in records]),
        "candidate_words": _summary([len(c.split()) for r in records for c in r["candidates"]]),
        "within_record_cosine": _similarity(records, embedder),
        "dropped_candidates": _dropped(records + rejected),
        "attempts": _distribution([r.get("provenance", {}).get("attempts", 0) for r in records + rejected
                                   if "provenance" in r]),
        "loads": _loads(folder, records),
    }
    if write:
        atomic_write_text(folder / REPORT_JSON, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        atomic_write_text(folder / REPORT_MD, render_report(report))
    return report


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        data = err
    if not isinstance(data, dict):
        raise BuildError(f"{path}: not a JSON object ({data}); the file was edited or damaged: fix or delete it")
    return data


def _record_counts(records: list[dict], rejected: list[dict], unfinished: list[str], pending: int) -> dict[str, Any]:
    total = len(records) + len(rejected) + len(unfinished) + pending
    reasons = Counter(r.get("reason", "unknown") for r in rejected)
    share = (lambda count: round(count / total, 4) if total else 0.0)  # noqa: E731
    shortfall = sum(1 for r in records if r.get("provenance", {}).get("shortfall", 0) > 0)
    return {
        "inputs": total,
        "kept": len(records), "kept_share": share(len(records)),
        "rejected": len(rejected), "rejected_share": share(len(rejected)),
        "rejected_by_reason": {reason: {"count": count, "share": share(count)}
                               for reason, count in reasons.most_common()},
        "unfinished": len(unfinished), "unfinished_ids": unfinished[:20], "not_processed": pending,
        "shortfall_records": shortfall,
    }


def _distribution(values: list[int]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    return {"count": len(values), "min": min(values), "max": max(values), "mean": round(float(np.mean(values)), 3),
            "histogram": {str(v): c for v, c in sorted(Counter(values).items())}}


def _summary(values: Iterable[float]) -> dict[str, Any]:
    array = np.asarray(list(values), dtype=float)
    if not array.size:
        return {"count": 0}
    quantiles = np.percentile(array, [10, 25, 50, 75, 90])
    return {"count": int(array.size), "mean": round(float(array.mean()), 3), "min": round(float(array.min()), 3),
            **{f"p{q}": round(float(v), 3) for q, v in zip((10, 25, 50, 75, 90), quantiles, strict=True)},
            "max": round(float(array.max()), 3)}


def _similarity(records: list[dict], embedder: Any) -> dict[str, Any]:
    """Pooled pair cosines (summary + histogram) and the mean of per-record means."""
    if embedder is False or not records:
        return {"count": 0}
    from peft_diversity.datacard import within_context_cosines

    sims = within_context_cosines(records, embedder)
    pooled = [x for s in sims for x in s]
    out = _summary(pooled)
    if pooled:
        out["per_record_mean"] = round(float(np.mean([np.mean(s) for s in sims if s])), 3)
        low = min(0.0, float(np.floor(min(pooled) * 10)) / 10)  # bins of 0.1 from 0 (or below) to 1
        edges = np.round(np.linspace(low, 1.0, round((1.0 - low) * 10) + 1), 2)
        counts, _ = np.histogram(np.clip(pooled, low, 1.0), bins=edges)
        out["histogram"] = [[float(lo), float(hi), int(c)] for lo, hi, c in zip(edges[:-1], edges[1:], counts,
                                                                               strict=True)]
    return out


def _dropped(entries: list[dict]) -> dict[str, Any]:
    counts: Counter = Counter()
    unparsed = requested = 0
    for entry in entries:
        prov = entry.get("provenance")
        if not prov:
            continue
        counts.update(prov.get("dropped", {}))
        unparsed += sum(len(f) for f in prov.get("parse_failures", []))
        requested += prov.get("requested", 0) * len(prov.get("parse_failures", []))
    return {"by_reason": {r: counts[r] for r in DROP_REASONS if counts[r]}, "unparsed_items": unparsed,
            "requested_items": requested}


def _loads(folder: Path, records: list[dict]) -> dict[str, Any]:
    if not records:
        return {"ok": False, "error": "no kept records"}
    from peft_diversity.data import load_one_to_many

    try:
        load_one_to_many(folder, split="train")
    except DataValidationError as err:
        return {"ok": False, "error": str(err)}
    return {"ok": True}


def render_report(report: dict[str, Any]) -> str:
    """The markdown form of `quality_report`'s dict."""
    counts = report["records"]
    lines = [f"# Quality report: `{report['folder']}`", "",
             f"Teacher `{report['teacher']}`, prompt version `{report['prompt_version']}`, "
             f"{report['num_candidates']} candidates requested per input. "
             f"Loads with `load_one_to_many`: {'yes' if report['loads']['ok'] else 'NO: ' + report['loads'].get('error', '')}.",
             "", "## Inputs", "", "| | count | share |", "|---|---:|---:|",
             f"| inputs | {counts['inputs']} | 100% |",
             f"| kept | {counts['kept']} | {counts['kept_share']:.1%} |"]
    lines += [f"| rejected: {reason} | {v['count']} | {v['share']:.1%} |"
              for reason, v in counts["rejected_by_reason"].items()]
    if counts["unfinished"]:
        lines.append(f"| unfinished (teacher errors; a resume retries them) | {counts['unfinished']} | |")
    if counts["not_processed"]:
        lines.append(f"| not processed yet (interrupted run) | {counts['not_processed']} | |")
    lines += ["", f"Kept records with fewer than {report['num_candidates']} candidates (shortfall): "
              f"{counts['shortfall_records']}.", ""]
    lines += _markdown_distribution("Candidates per record", "candidates", report["candidates_per_record"])
    lines += _markdown_summary("Candidate length (words)", report["candidate_words"])
    lines += _markdown_similarity(report["within_record_cosine"])
    lines += _markdown_dropped(report["dropped_candidates"])
    lines += _markdown_distribution("Teacher calls per input", "attempts", report["attempts"])
    return "\n".join(lines).rstrip() + "\n"


def _markdown_distribution(title: str, label: str, dist: dict[str, Any]) -> list[str]:
    if not dist.get("count"):
        return [f"## {title}", "", "(none)", ""]
    rows = [f"| {value} | {count} |" for value, count in dist["histogram"].items()]
    return [f"## {title}", "", f"mean {dist['mean']}, min {dist['min']}, max {dist['max']}", "",
            f"| {label} | records |", "|---:|---:|", *rows, ""]


def _markdown_summary(title: str, stats: dict[str, Any]) -> list[str]:
    if not stats.get("count"):
        return [f"## {title}", "", "(none)", ""]
    keys = ["mean", "min", "p10", "p25", "p50", "p75", "p90", "max"]
    return [f"## {title}", "", "| " + " | ".join(keys) + " |", "|" + "---:|" * len(keys),
            "| " + " | ".join(str(stats[k]) for k in keys) + " |", ""]


def _markdown_similarity(stats: dict[str, Any]) -> list[str]:
    title = "Within-record similarity (SBERT cosine between candidates of one record, all pairs)"
    lines = _markdown_summary(title, stats)
    if not stats.get("count"):
        return lines
    lines.insert(-1, "")
    lines.insert(-1, f"Mean of per-record means: {stats['per_record_mean']} (lower = more diverse).")
    top = max(c for _, _, c in stats["histogram"]) or 1
    bars = [f"{lo:5.2f}–{hi:4.2f} | {'#' * round(30 * c / top):<30} {c}" for lo, hi, c in stats["histogram"]]
    return [*lines, "```", *bars, "```", ""]


def _markdown_dropped(dropped: dict[str, Any]) -> list[str]:
    lines = ["## Candidates dropped during the build", "",
             f"Teacher items that could not be parsed: {dropped['unparsed_items']} of "
             f"{dropped['requested_items']} requested.", ""]
    if dropped["by_reason"]:
        lines += ["| reason | candidates |", "|---|---:|", *[f"| {r} | {c} |" for r, c in dropped["by_reason"].items()]]
    else:
        lines.append("No parsed candidate was dropped.")
    return [*lines, ""]
