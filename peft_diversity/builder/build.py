"""The build loop: ask the teacher, filter, retry hotter, write each record (see the package docstring)."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tqdm.auto import tqdm

from peft_diversity.builder.filter import DROP_REASONS, CandidateFilter, CandidateState, parse_reply
from peft_diversity.builder.folder import BuildFolder
from peft_diversity.builder.inputs import InputItem
from peft_diversity.builder.teachers import Teacher, TeacherFailure, prompt_version
from peft_diversity.errors import BuildError
from peft_diversity.templates import (
    PossibilityTemplate,
)

logger = logging.getLogger(__name__)


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
            raise BuildError(
                f"min_candidates must be in 1..num_candidates={self.num_candidates}, got {self.min_candidates}"
            )
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


def build_config(
    template: PossibilityTemplate,
    teacher: Teacher,
    settings: BuildSettings,
    *,
    semantic: bool = True,
    **extra: Any,
) -> dict[str, Any]:
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
        # a bar on a terminal (tqdm stays silent when stderr is not one); the per-batch log line either way
        with tqdm(total=len(usable), desc="build-data", unit="prompt", disable=None) as bar:
            for begin in range(0, len(usable), settings.batch_size):
                batch = usable[begin : begin + settings.batch_size]
                run.batch(batch)
                bar.update(len(batch))
                log(
                    f"[{begin + len(batch)}/{len(usable)}] kept {summary.kept}, "
                    f"rejected {sum(summary.rejected.values())}, unfinished {len(summary.unfinished)}"
                )
    finally:
        summary.wall_time_s = round(time.perf_counter() - start, 3)
        out.write_progress(
            {"inputs": summary.inputs, "unfinished": summary.unfinished, "last_run": summary.to_dict()}
        )
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
        states = [CandidateState(item, _teacher_record(item, self.template)) for item in items]
        for attempt in range(self.settings.max_retries + 1):
            pending = [s for s in states if len(s.kept) < n and s.error is None]
            if not pending:
                break
            replies = self.teacher([s.record for s in pending], n, attempt)
            if len(replies) != len(pending):
                raise BuildError(
                    f"teacher {self.teacher.name} returned {len(replies)} replies for {len(pending)} inputs"
                )
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
        if (
            self.failures_in_a_row >= self.settings.max_consecutive_failures
        ):  # only now: the batch is all written
            last = next(reversed(self.summary.unfinished.values()))
            raise BuildError(
                f"the teacher failed {self.failures_in_a_row} inputs in a row (last: {last}); stopping. "
                f"{self.summary.kept} records were written; run the same command again to resume"
            )

    def finish(self, state: CandidateState) -> None:
        item, n = state.item, self.settings.num_candidates
        short = len(state.kept) < self.settings.min_candidates
        if short and state.error is not None and state.error.retryable:
            self._unfinished(item, state.error.message)
            return
        self.failures_in_a_row = 0
        provenance = self.provenance(state)
        if short and state.error is not None:  # the teacher refused this input for good (e.g. HTTP 400)
            self.reject(
                item, "teacher_rejected", state.error.message, candidates=state.kept, provenance=provenance
            )
            return
        if short:
            detail = (
                f"{len(state.kept)} valid candidates after {state.attempts} attempts "
                f"(min_candidates={self.settings.min_candidates}); dropped: {dict(state.dropped) or 'none'}"
            )
            self.reject(item, "too_few_candidates", detail, candidates=state.kept, provenance=provenance)
            return
        key = "context" if "context" in state.record else "prompt"
        try:
            self.out.write_record(
                {"id": item.key, key: item.source, "candidates": state.kept, "provenance": provenance}
            )
        except (
            UnicodeEncodeError
        ) as err:  # inputs and candidates are checked; still, one record never stops a build
            self.reject(
                item,
                "invalid_utf8",
                f"the record cannot be written as UTF-8 ({err.reason})",
                provenance=provenance,
            )
            return
        self.summary.kept += 1
        if len(state.kept) < n:
            self.summary.shortfall += 1
            self.log(f"{item.where}: id {item.key!r} kept with {len(state.kept)}/{n} candidates")

    def provenance(self, state: CandidateState) -> dict[str, Any]:
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
