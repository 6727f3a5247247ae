"""Teachers that list N candidates for a prompt: a local transformers model or an OpenAI-compatible endpoint,
both asked with the listing decoder's wording."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from peft_diversity.builder.inputs import display_name
from peft_diversity.chat import FATAL_ERRORS, ChatRequestError, ChatRetriesExhausted, HttpChat, public_url
from peft_diversity.errors import BuildError
from peft_diversity.templates import (
    LISTING_SENTENCE,
    PossibilityTemplate,
    listing_sentence,
)

logger = logging.getLogger(__name__)


PARSER_VERSION = "1"
"""Bump when parsing or cleaning changes what a teacher reply becomes: it is part of `prompt_version`."""


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

    def __call__(
        self, records: Sequence[dict[str, Any]], n: int, attempt: int
    ) -> list[str | TeacherFailure]: ...


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
        return min(
            max(self.max_temperature, self.temperature),
            self.temperature + self.retry_temperature_step * attempt,
        )

    def seed_for(self, attempt: int) -> int | None:
        return None if self.seed is None else self.seed + attempt


def listing_messages(template: PossibilityTemplate, record: dict[str, Any], n: int) -> list[dict[str, str]]:
    """The chat messages asking for N numbered candidates: the `listing` decoder's exact wording."""
    return template.messages(record, None, sentence=listing_sentence(n))


def prompt_version(template: PossibilityTemplate) -> str:
    """Short hash of everything that shapes a teacher's prompt and how its reply is read."""
    blob = json.dumps(
        {"listing": LISTING_SENTENCE, "template": template.to_dict(), "parser": PARSER_VERSION},
        sort_keys=True,
    )
    return "listing-" + hashlib.sha256(blob.encode("utf-8")).hexdigest()[:10]


class LocalTeacher:
    """A transformers causal LM (Hub id, folder or `builtin:<name>`): one batched `generate_listing` per batch."""

    def __init__(
        self,
        model: Any,
        template: PossibilityTemplate,
        sampling: Sampling | None = None,
        *,
        tokenizer: Any = None,
        batch_size: int = 8,
        dtype: str = "auto",
        trust_remote_code: bool = False,
    ) -> None:
        if isinstance(model, str | os.PathLike):
            from peft_diversity.models.loading import load_model_and_tokenizer

            self.name = f"local:{display_name(model)}"
            model, tokenizer = load_model_and_tokenizer(
                str(model), dtype=dtype, trust_remote_code=trust_remote_code
            )
        else:
            from peft_diversity.generation.inputs import model_name

            if tokenizer is None:
                raise BuildError("LocalTeacher needs the tokenizer when the model is an object")
            self.name = f"local:{display_name(model_name(model) or type(model).__name__)}"
        self.model, self.tokenizer, self.template = model, tokenizer, template
        self.sampling, self.batch_size = sampling or Sampling(), batch_size

    def __call__(self, records: Sequence[dict[str, Any]], n: int, attempt: int) -> list[str | TeacherFailure]:
        from peft_diversity.generation.decoders import generate_listing

        generation_logger = logging.getLogger("peft_diversity.generation.decoders")
        generation_logger.addFilter(
            _skip_parse_warnings
        )  # the builder records parse failures per record itself
        try:
            results = generate_listing(
                self.model,
                self.tokenizer,
                contexts=list(records),
                num_responses=n,
                template=self.template,
                clean=False,
                temperature=self.sampling.temperature_for(attempt),
                max_new_tokens=self.sampling.max_new_tokens,
                seed=self.sampling.seed_for(attempt),
                batch_size=self.batch_size,
                progress=False,
            )
        finally:
            generation_logger.removeFilter(_skip_parse_warnings)
        return [result.settings["raw_output"] for result in results]


class OpenAITeacher:
    """An OpenAI-compatible `/chat/completions` endpoint (`chat.HttpChat`, from `chat.make_chat`); the records
    of a batch are requested concurrently.

    Retries, rate limit and error messages are the chat backend's. Auth, quota and unknown-model errors stop the
    build; a record whose retries run out comes back as a retryable `TeacherFailure`, one the endpoint refuses
    (another 4xx, an unreadable reply) as a final one.
    """

    def __init__(
        self, client: HttpChat, template: PossibilityTemplate, sampling: Sampling | None = None
    ) -> None:
        self.client = client
        self.name = f"openai:{client.model}@{public_url(client.base_url)}"
        self.template, self.sampling, self.concurrency = template, sampling or Sampling(), client.concurrency

    def __call__(self, records: Sequence[dict[str, Any]], n: int, attempt: int) -> list[str | TeacherFailure]:
        params = {
            "temperature": self.sampling.temperature_for(attempt),
            "max_tokens": self.sampling.max_new_tokens * n,
        }

        def one(record: dict[str, Any]) -> str | TeacherFailure:
            try:
                return self.client.complete(listing_messages(self.template, record, n), **params)
            except FATAL_ERRORS:
                raise
            except ChatRetriesExhausted as err:
                return TeacherFailure(str(err))
            except (
                ChatRequestError
            ) as err:  # refused for this input (e.g. 400 prompt too long): asking again won't help
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
