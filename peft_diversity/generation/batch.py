"""THE decoder base: the one signature every decoder is called with, the settings every decoder takes (typed),
and the one batch runner (records in batches of contexts, one generate call per batch, progress bar, clean-up).

A decoder is a `Decoder` subclass instance: its `name`, its own keyword settings (an `Options` dataclass) and
the steps it changes (the prompts of one context, how a batch is generated, how a result is made).
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import random
import time
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from peft_diversity.errors import GenerationError
from peft_diversity.generation.core import decode_rows, generate_kwargs, generate_rows
from peft_diversity.generation.inputs import (
    DEFAULT_NUM_RESPONSES,
    as_records,
    check_count,
    encode_fitted,
    fit_record,
    model_name,
    prompt_budget,
    resolve_template,
)
from peft_diversity.generation.responses import Responses
from peft_diversity.generation.text import clean_for_record
from peft_diversity.templates import (
    PossibilityTemplate,
    ensure_chat_template,
)

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 8


@dataclass
class RunSettings:
    """The settings every decoder takes beside its own and the generate settings (`generation.core`)."""

    seed: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    progress: Any = (
        None  # None: a bar only for more than one batch (and a terminal); True / False: always / never
    )
    clean: bool = True  # clean_response on every text


@dataclass
class NoOptions:
    """A decoder without keyword settings of its own."""


# ----- one call of a decoder -----------------------------------------------------------------------------------
@dataclass
class DecoderRun:
    """What one decoder call works with: records, template, generate kwargs, the settings to record."""

    model: Any
    tokenizer: Any
    records: list[dict[str, Any]]
    single: bool
    template: PossibilityTemplate
    gen_kwargs: dict[str, Any]
    settings: dict[str, Any]
    batch_size: int
    progress: bool | None
    clean: bool
    rng: random.Random
    options: Any = None  # the decoder's Options
    count: int | None = None  # responses per context (None: the decoder's default)

    def batches(self, items: list, desc: str) -> Iterable[list]:
        """Chunks of `batch_size`, with a progress bar when there is more than one chunk (and a terminal)."""
        from tqdm.auto import tqdm

        chunks = [items[i : i + self.batch_size] for i in range(0, len(items), self.batch_size)]
        disable = (not self.progress) if self.progress is not None else (True if len(chunks) < 2 else None)
        return tqdm(chunks, desc=desc, disable=disable, unit="batch")

    def budget(self, new_tokens: int | None = None) -> int | None:
        return prompt_budget(self.model, self.tokenizer, new_tokens or self.gen_kwargs["max_new_tokens"])

    @property
    def eos_ids(self) -> list[int]:
        return self.gen_kwargs.get("eos_token_id", [])

    def fitted(
        self, record: dict[str, Any], render: Callable[[dict[str, Any]], list[str]]
    ) -> list[list[int]]:
        """The token ids of `render(record)`, the record's context trimmed until every prompt fits the window."""
        budget = self.budget()
        return [
            encode_fitted(self.tokenizer, text, budget)
            for text in render(fit_record(record, render, self.tokenizer, budget))
        ]

    def plain_prompt(self, record: dict[str, Any], sentence: str | None = None) -> list[int]:
        """The record's plain (untagged) prompt, `sentence` ending its user turn when given."""
        extra = {} if sentence is None else {"sentence": sentence}
        return self.fitted(record, lambda r: [self.template.prompt_text(self.tokenizer, r, None, **extra)])[0]

    def finish(self, texts: list[str], record: dict[str, Any]) -> list[str]:
        if not self.clean:
            return texts
        return [clean_for_record(text, record, self.template) for text in texts]

    def result(
        self,
        record: dict[str, Any],
        texts: list[str],
        counts: list[int],
        wall: float,
        decoder: str,
        **extra: Any,
    ) -> Responses:
        return Responses(
            texts=texts,
            num_tokens=counts,
            wall_time_s=wall,
            decoder=decoder,
            context=record.get("context", record.get("prompt")),
            model=model_name(self.model),
            settings=dict(self.settings),
            id=record.get("id"),
            **extra,
        )

    def output(self, results: list[Responses]) -> Responses | list[Responses]:
        return results[0] if self.single else results


def _start(
    model: Any,
    tokenizer: Any,
    context: Any,
    contexts: Sequence[Any] | None,
    template: Any,
    *,
    required_template: bool,
    settings: dict[str, Any],
    num_responses: int | None,
) -> DecoderRun:
    records, single = as_records(context, contexts)
    common = RunSettings(
        **{f.name: settings.pop(f.name) for f in dataclasses.fields(RunSettings) if f.name in settings}
    )
    if not isinstance(common.batch_size, int) or common.batch_size < 1:
        raise GenerationError(f"batch_size must be an integer >= 1, got {common.batch_size!r}")
    tmpl = resolve_template(template, model, required=required_template, records=records)
    ensure_chat_template(tokenizer)
    if common.seed is not None:
        torch.manual_seed(common.seed)
    gen_kwargs, recorded = generate_kwargs(model, tokenizer, settings)
    recorded.update({"seed": common.seed, "batch_size": common.batch_size, "template_task": tmpl.task})
    if num_responses is not None:
        recorded["num_responses"] = num_responses
    return DecoderRun(
        model,
        tokenizer,
        records,
        single,
        tmpl,
        gen_kwargs,
        recorded,
        common.batch_size,
        common.progress,
        common.clean,
        random.Random(common.seed),
    )


# ----- the decoder base ----------------------------------------------------------------------------------------
class Decoder:
    """A decoder: `decoder(model, tokenizer, context=None, *, contexts=None, num_responses=None, template=None,
    **settings)` -> Responses (one `context`) or list[Responses] (`contexts=[...]`, in batches).

    `settings` are the decoder's own (its `Options` fields), the `RunSettings` and the generate settings
    (`generation.core.generate_kwargs`; the rest go to `model.generate`). The default batch step renders each
    context's prompts (`prompts`), answers the whole batch with ONE generate call (`rows` rows per context) and
    makes each context's Responses (`respond`).
    """

    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    required_template: ClassVar[bool] = False
    # whether the K rows of a context go through the shared-prefix path (`shared_prefix` option, `path` recorded)
    shares_prefix: ClassVar[bool] = False

    def __call__(
        self,
        model: Any,
        tokenizer: Any,
        context: Any = None,
        *,
        contexts: Sequence[Any] | None = None,
        num_responses: int | None = None,
        template: PossibilityTemplate | str | os.PathLike | None = None,
        **settings: Any,
    ) -> Responses | list[Responses]:
        options = self.Options(
            **{f.name: settings.pop(f.name) for f in dataclasses.fields(self.Options) if f.name in settings}
        )
        count = self.count(num_responses)
        run = _start(
            model,
            tokenizer,
            context,
            contexts,
            template,
            required_template=self.required_template,
            settings=self.generate_settings(options, count, settings),
            num_responses=count,
        )
        run.options, run.count = options, count
        run.settings.update(self.recorded(run))
        results: list[Responses] = []
        for batch in run.batches(self.items(run), self.name):
            results += self.batch(run, batch)
        return run.output(results)

    @classmethod
    def setting_types(cls) -> dict[str, Any]:
        """{keyword: annotation} of what this decoder takes beside the run and generate settings: the common
        keywords of the call (template, ...) and its own `Options`."""
        call = inspect.signature(cls.__call__, eval_str=True).parameters.values()
        common = {p.name: p.annotation for p in call if p.kind is inspect.Parameter.KEYWORD_ONLY}
        return {**common, **typing.get_type_hints(cls.Options)}

    # ----- the steps a decoder may change ---------------------------------------------------------------------
    def count(self, num_responses: int | None) -> int | None:
        """Responses per context (checked): `num_responses`, else 5."""
        return check_count(DEFAULT_NUM_RESPONSES if num_responses is None else num_responses)

    def generate_settings(self, options: Any, count: int | None, settings: dict[str, Any]) -> dict[str, Any]:
        """The settings `generate_kwargs` gets (checked here, before any work)."""
        return settings

    def recorded(self, run: DecoderRun) -> dict[str, Any]:
        """Settings recorded in every Responses beside the effective generate settings."""
        return {}

    def items(self, run: DecoderRun) -> list[Any]:
        """What the batches are made of: one item per record."""
        return run.records

    def prompts(self, run: DecoderRun, item: Any) -> list[list[int]]:
        """The token ids of one item's `rows` prompts: its plain prompt once."""
        return [run.plain_prompt(item)]

    def batch(self, run: DecoderRun, batch: list[Any]) -> list[Responses]:
        """One batch of items answered by one generate call; the wall time is the batch's."""
        start = time.perf_counter()
        prompts = [ids for item in batch for ids in self.prompts(run, item)]
        size = len(prompts) // len(batch)
        shared = run.options.shared_prefix if self.shares_prefix else None
        rows, path = generate_rows(run.model, prompts, size, run.gen_kwargs, shared)
        texts, counts = decode_rows(run.tokenizer, rows, run.eos_ids)
        wall = time.perf_counter() - start
        if self.shares_prefix:
            run.settings["path"] = path
        return [
            self.respond(run, item, texts[i * size : (i + 1) * size], counts[i * size : (i + 1) * size], wall)
            for i, item in enumerate(batch)
        ]

    def respond(
        self, run: DecoderRun, item: Any, texts: list[str], counts: list[int], wall: float
    ) -> Responses:
        """One item's Responses from its generated texts (cleaned unless `clean=False`)."""
        return run.result(item, run.finish(texts, item), counts, wall, self.name)
