"""The resumable output folder: append + fsync per record, torn-line repair, the lock, what a resume may reuse."""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from peft_diversity.atomic import atomic_write_text
from peft_diversity.builder.inputs import InputItem
from peft_diversity.errors import BuildError
from peft_diversity.jsonl import read_json, read_jsonl, write_json

logger = logging.getLogger(__name__)


TRAIN_FILE, REJECTED_FILE = "train.jsonl", "rejected.jsonl"
CONFIG_FILE, PROGRESS_FILE = "build_config.json", "build_progress.json"
REPORT_MD, REPORT_JSON = "quality_report.md", "quality_report.json"
LOCK_FILE = ".lock"


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
        logger.warning(
            "%s: removing an incomplete last line (%d bytes) left by an interrupted run",
            path,
            len(data) - cut,
        )
        with open(path, "r+b") as handle:
            handle.truncate(cut)
            handle.flush()
            os.fsync(handle.fileno())
        data = data[:cut]
    return _records(path)


def read_records(path: Path) -> list[dict[str, Any]]:
    """Complete lines only (a torn last line is ignored, not repaired): for read-only reporting."""
    return _records(path, complete_only=True) if path.is_file() else []


DAMAGED = "the file was edited or damaged: fix or delete that line, then run again"
DAMAGED_FILE = "the file was edited or damaged: fix or delete it"


def read_object(path: Path) -> dict[str, Any]:
    """A JSON object file of the folder (build_config.json, build_progress.json); {} when it is not there."""
    return read_json(path, error=BuildError, missing={}, kind=dict, hint=DAMAGED_FILE)


def _records(path: Path, complete_only: bool = False) -> list[dict[str, Any]]:
    records = []
    for lineno, record in read_jsonl(path, error=BuildError, complete_only=complete_only, hint=DAMAGED):
        if not isinstance(record, dict):
            raise BuildError(f"{path}:{lineno}: not a JSON object; {DAMAGED}")
        records.append(record)
    return records


class BuildFolder:
    """The output folder of a build: lock, config check, resume state, append-only writers."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.train_path, self.rejected_path = self.folder / TRAIN_FILE, self.folder / REJECTED_FILE
        self.done: set[str] = set()

    def open(
        self, config: dict[str, Any], items: Sequence[InputItem], force: bool = False
    ) -> list[InputItem]:
        """Lock the folder, check/write build_config.json, repair torn lines; returns the items still to build."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            self._check_config(config, force)
            todo = self._pending(items, force)
            write_json(self.folder / CONFIG_FILE, config)
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
            raise BuildError(
                f"{self.folder} is in use by another build (it holds {self.folder / LOCK_FILE}); wait "
                "for it to finish or use another --output-dir folder"
            ) from None

    def _check_config(self, config: dict[str, Any], force: bool) -> None:
        path = self.folder / CONFIG_FILE
        if not path.is_file():
            if self.train_path.exists() or self.rejected_path.exists():
                if not force:
                    raise BuildError(
                        f"{self.folder} holds build outputs but no {CONFIG_FILE}: use a new folder, or "
                        "--force to add to it"
                    )
            return
        old = read_object(path)
        changed = [
            f"{key}: {old.get(key)!r} -> {config.get(key)!r}"
            for key in CONTENT_KEYS
            if old.get(key) != config.get(key)
        ]
        if changed and not force:
            raise BuildError(
                f"{self.folder} was built with different settings ({'; '.join(changed)}); resuming "
                "would mix them. Use a new --output-dir folder, or --force to continue anyway"
            )
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
                    f"{self.train_path}: the input changed since that run. Use a new --output-dir folder, or --force "
                    "to keep the old records"
                )
            if item.key in rejected and not _rejection_holds(rejected[item.key], item):
                stale.add(item.key)
        if stale:
            logger.warning(
                "%s: %d rejected inputs changed since the last run; processing them again",
                self.rejected_path,
                len(stale),
            )
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
        write_json(self.folder / PROGRESS_FILE, progress)

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


CONTENT_KEYS = (
    "column",
    "id_column",
    "split",
    "teacher",
    "prompt_version",
    "num_candidates",
    "min_candidates",
    "similarity_threshold",
)
"""Settings that change what a record looks like: a resume must keep them (other settings may change). The input
file's path is not one (a checkout may move): a resume compares each finished input's content instead."""
