"""The batch loop every decoder shares: settings, template, records in batches of contexts, progress bar."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from peft_diversity.errors import GenerationError
from peft_diversity.generation.core import generate_kwargs
from peft_diversity.generation.inputs import (
    _prompt_budget,
    _records,
    model_name,
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


# ----- shared plumbing of the decoders -------------------------------------------------------------------------
@dataclass
class _Run:
    """What every decoder call needs: records, template, generate kwargs, settings to record."""

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

    def batches(self, items: list, desc: str) -> Iterable[list]:
        """Chunks of `batch_size`, with a progress bar when there is more than one chunk (and a terminal)."""
        from tqdm.auto import tqdm

        chunks = [items[i:i + self.batch_size] for i in range(0, len(items), self.batch_size)]
        disable = (not self.progress) if self.progress is not None else (True if len(chunks) < 2 else None)
        return tqdm(chunks, desc=desc, disable=disable, unit="batch")

    def budget(self, new_tokens: int | None = None) -> int | None:
        return _prompt_budget(self.model, self.tokenizer, new_tokens or self.gen_kwargs["max_new_tokens"])

    def finish(self, texts: list[str], record: dict[str, Any]) -> list[str]:
        if not self.clean:
            return texts
        return [clean_for_record(text, record, self.template) for text in texts]

    def result(self, record: dict[str, Any], texts: list[str], counts: list[int], wall: float, decoder: str,
               **extra: Any) -> Responses:
        return Responses(
            texts=texts, num_tokens=counts, wall_time_s=wall, decoder=decoder,
            context=record.get("context", record.get("prompt")), model=model_name(self.model),
            settings=dict(self.settings), id=record.get("id"), **extra,
        )

    def output(self, results: list[Responses]) -> Responses | list[Responses]:
        return results[0] if self.single else results


def _start(
    model: Any, tokenizer: Any, context: Any, contexts: Sequence[Any] | None, template: Any, *,
    required_template: bool, settings: dict[str, Any], num_responses: int | None,
) -> _Run:
    records, single = _records(context, contexts)
    seed = settings.pop("seed", None)
    batch_size = settings.pop("batch_size", DEFAULT_BATCH_SIZE)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise GenerationError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    progress = settings.pop("progress", None)
    clean = settings.pop("clean", True)
    tmpl = resolve_template(template, model, required=required_template, records=records)
    ensure_chat_template(tokenizer)
    if seed is not None:
        torch.manual_seed(seed)
    gen_kwargs, recorded = generate_kwargs(model, tokenizer, settings)
    recorded.update({"seed": seed, "batch_size": batch_size, "template_task": tmpl.task})
    if num_responses is not None:
        recorded["num_responses"] = num_responses
    return _Run(model, tokenizer, records, single, tmpl, gen_kwargs, recorded, batch_size, progress, clean,
                random.Random(seed))
