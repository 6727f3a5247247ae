"""The decoders compared in an experiment, each with the same signature, and their registry `DECODERS`."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from peft_diversity.errors import GenerationError
from peft_diversity.generation.batch import _Run, _start
from peft_diversity.generation.beam import generate_diverse_beam
from peft_diversity.generation.core import DEFAULT_MAX_NEW_TOKENS, decode_rows, generate_rows
from peft_diversity.generation.inputs import (
    DEFAULT_NUM_RESPONSES,
    _check_count,
    _encode_fitted,
    choose_possibilities,
    encode,
    fit_record,
)
from peft_diversity.generation.responses import Responses
from peft_diversity.generation.text import listing_text, parse_numbered_list
from peft_diversity.templates import (
    PossibilityTemplate,
    iterative_sentence,
    listing_sentence,
)

logger = logging.getLogger(__name__)


DEFAULT_MIN_P = 0.1
# ----- decoders ---------------------------------------------------------------------------------------------
def generate_possibilities(
    model: Any,
    tokenizer: Any,
    context: Any = None,
    *,
    contexts: Sequence[Any] | None = None,
    num_responses: int | None = None,
    possibilities: Sequence[int] | str | None = None,
    template: PossibilityTemplate | str | os.PathLike | None = None,
    shared_prefix: bool | None = None,
    **settings: Any,
) -> Responses | list[Responses]:
    """PoExFT: K prompts that differ only in the possibility number, answered by ONE batched generate call.

    Possibility numbers are 1..num_responses (default 5), the given `possibilities`, or `possibilities="random"`
    (num_responses distinct numbers from 1..max_possibility, drawn per context). The template is `template`, else the
    `possibility_config.json` beside the model (an error when there is none). The shared prompt prefix is
    computed once per context when possible (`shared_prefix=None`); `False` forces the plain batched path.
    """
    run = _start(model, tokenizer, context, contexts, template, required_template=True, settings=settings, num_responses=num_responses)
    numbers = [choose_possibilities(num_responses, possibilities, run.template.max_possibility, run.rng) for _ in run.records]
    if len({len(n) for n in numbers}) != 1:
        raise GenerationError("every context needs the same number of possibilities")
    results: list[Responses] = []
    for batch in run.batches(list(zip(run.records, numbers, strict=True)), "possibilities"):
        start = time.perf_counter()
        prompts, fitted = [], []
        for record, ks in batch:
            def render(r: dict[str, Any], ks: list[int] = ks) -> list[str]:
                return [run.template.prompt_text(tokenizer, r, n) for n in ks]
            fitted.append(fit_record(record, render, tokenizer, run.budget()))
            prompts += [_encode_fitted(tokenizer, text, run.budget()) for text in render(fitted[-1])]
        rows, path = generate_rows(model, prompts, len(batch[0][1]), run.gen_kwargs, shared_prefix)
        texts, counts = decode_rows(tokenizer, rows, run.gen_kwargs.get("eos_token_id", []))
        wall = time.perf_counter() - start
        run.settings["path"] = path
        size = len(batch[0][1])
        for i, (record, ks) in enumerate(batch):
            part = slice(i * size, (i + 1) * size)
            results.append(run.result(record, run.finish(texts[part], record), counts[part], wall,
                                      "possibilities", possibilities=list(ks)))
    return run.output(results)


def _generate_plain_copies(
    decoder: str, model: Any, tokenizer: Any, context: Any, contexts: Sequence[Any] | None, num_responses: int | None,
    template: Any, shared_prefix: bool | None, settings: dict[str, Any],
) -> Responses | list[Responses]:
    """K samples of the plain (untagged) prompt per context: `num_return_sequences=K` semantics."""
    count = _check_count(DEFAULT_NUM_RESPONSES if num_responses is None else num_responses)
    run = _start(model, tokenizer, context, contexts, template, required_template=False, settings=settings,
                 num_responses=count)
    results: list[Responses] = []
    for batch in run.batches(run.records, decoder):
        start = time.perf_counter()
        prompts = []
        for record in batch:
            def render(r: dict[str, Any]) -> list[str]:
                return [run.template.prompt_text(tokenizer, r, None)]
            fitted = fit_record(record, render, tokenizer, run.budget())
            prompts += [_encode_fitted(tokenizer, render(fitted)[0], run.budget())] * count
        rows, path = generate_rows(model, prompts, count, run.gen_kwargs, shared_prefix)
        texts, counts = decode_rows(tokenizer, rows, run.gen_kwargs.get("eos_token_id", []))
        wall = time.perf_counter() - start
        run.settings["path"] = path
        for i, record in enumerate(batch):
            part = slice(i * count, (i + 1) * count)
            results.append(run.result(record, run.finish(texts[part], record), counts[part], wall, decoder))
    return run.output(results)


def generate_sampling(
    model: Any,
    tokenizer: Any,
    context: Any = None,
    *,
    contexts: Sequence[Any] | None = None,
    num_responses: int | None = None,
    template: PossibilityTemplate | str | os.PathLike | None = None,
    shared_prefix: bool | None = None,
    **settings: Any,
) -> Responses | list[Responses]:
    """Baseline: K temperature samples of the plain prompt in one call (the prompt's prefill is shared)."""
    return _generate_plain_copies("sampling", model, tokenizer, context, contexts, num_responses, template, shared_prefix,
                                  settings)


def generate_min_p(
    model: Any,
    tokenizer: Any,
    context: Any = None,
    *,
    contexts: Sequence[Any] | None = None,
    num_responses: int | None = None,
    template: PossibilityTemplate | str | os.PathLike | None = None,
    min_p: float = DEFAULT_MIN_P,
    shared_prefix: bool | None = None,
    **settings: Any,
) -> Responses | list[Responses]:
    """Baseline: K min-p samples (tokens below `min_p` x the top probability are dropped) of the plain prompt."""
    if not 0.0 < min_p <= 1.0:
        raise GenerationError(f"min_p must be in (0, 1], got {min_p}")
    if settings.get("temperature", 1.0) in (0, 0.0, None):
        raise GenerationError("min_p needs sampling: use a temperature > 0")
    return _generate_plain_copies("min_p", model, tokenizer, context, contexts, num_responses, template, shared_prefix,
                                  {**settings, "min_p": min_p})


def generate_listing(
    model: Any,
    tokenizer: Any,
    context: Any = None,
    *,
    contexts: Sequence[Any] | None = None,
    num_responses: int | None = None,
    template: PossibilityTemplate | str | os.PathLike | None = None,
    **settings: Any,
) -> Responses | list[Responses]:
    """Baseline: one generation asked for K numbered responses, parsed by `parse_numbered_list`.

    `max_new_tokens` is per response (the generation gets K times as many). Items that could not be parsed are
    left out of `texts` and listed in `parse_failures` (and logged).
    """
    count = _check_count(DEFAULT_NUM_RESPONSES if num_responses is None else num_responses)
    per_response = settings.pop("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
    settings["max_new_tokens"] = per_response * count
    if settings.get("min_new_tokens") is not None:
        settings["min_new_tokens"] = settings["min_new_tokens"] * count
    run = _start(model, tokenizer, context, contexts, template, required_template=False, settings=settings,
                 num_responses=count)
    run.settings["max_new_tokens_per_response"] = per_response
    sentence = listing_sentence(count)
    results: list[Responses] = []
    for batch in run.batches(run.records, "listing"):
        start = time.perf_counter()
        prompts = []
        for record in batch:
            def render(r: dict[str, Any]) -> list[str]:
                return [run.template.prompt_text(tokenizer, r, None, sentence=sentence)]
            fitted = fit_record(record, render, tokenizer, run.budget())
            prompts.append(_encode_fitted(tokenizer, render(fitted)[0], run.budget()))
        rows, _ = generate_rows(model, prompts, 1, run.gen_kwargs)
        raw, _ = decode_rows(tokenizer, rows, run.gen_kwargs.get("eos_token_id", []))
        wall = time.perf_counter() - start
        for record, text in zip(batch, raw, strict=True):
            results.append(_listing_result(run, record, text, count, wall))
    return run.output(results)


def _listing_result(run: _Run, record: dict[str, Any], text: str, count: int, wall: float) -> Responses:
    if run.clean:
        text = listing_text(text, record, run.template)
    parsed = parse_numbered_list(text, count)
    if parsed.failures:
        logger.warning("listing: could not parse items %s of %d for record %r", parsed.failures, count,
                       record.get("id", "?"))
    texts = [t for t in run.finish(parsed.items, record) if t] if run.clean else parsed.items
    counts = [len(encode(run.tokenizer, t)) for t in texts]
    result = run.result(record, texts, counts, wall, "listing", parse_failures=parsed.failures)
    result.settings["raw_output"] = text
    return result


def generate_iterative(
    model: Any,
    tokenizer: Any,
    context: Any = None,
    *,
    contexts: Sequence[Any] | None = None,
    num_responses: int | None = None,
    template: PossibilityTemplate | str | os.PathLike | None = None,
    **settings: Any,
) -> Responses | list[Responses]:
    """Baseline: K sequential calls per context; call j is shown the j-1 responses so far and asked for a new one.

    Contexts of one batch share each call; the wall time is the sum of the K calls.
    """
    count = _check_count(DEFAULT_NUM_RESPONSES if num_responses is None else num_responses)
    run = _start(model, tokenizer, context, contexts, template, required_template=False, settings=settings,
                 num_responses=count)
    results: list[Responses] = []
    for batch in run.batches(run.records, "iterative"):
        start = time.perf_counter()
        texts: list[list[str]] = [[] for _ in batch]
        counts: list[list[int]] = [[] for _ in batch]
        for _ in range(count):
            _iterative_round(run, batch, texts, counts)
        wall = time.perf_counter() - start
        results += [run.result(r, t, c, wall, "iterative") for r, t, c in zip(batch, texts, counts, strict=True)]
    return run.output(results)


def _iterative_round(run: _Run, batch: list[dict[str, Any]], texts: list[list[str]], counts: list[list[int]]) -> None:
    """One call for every context of the batch, each shown its own previous responses; appends in place."""
    prompts = []
    for record, previous in zip(batch, texts, strict=True):
        def render(r: dict[str, Any], previous: list[str] = previous) -> list[str]:
            if not previous:
                return [run.template.prompt_text(run.tokenizer, r, None)]
            return [run.template.prompt_text(run.tokenizer, r, None, sentence=iterative_sentence(previous))]
        fitted = fit_record(record, render, run.tokenizer, run.budget())
        prompts.append(_encode_fitted(run.tokenizer, render(fitted)[0], run.budget()))
    rows, _ = generate_rows(run.model, prompts, 1, run.gen_kwargs)
    new, new_counts = decode_rows(run.tokenizer, rows, run.gen_kwargs.get("eos_token_id", []))
    for i, record in enumerate(batch):
        texts[i].append(run.finish([new[i]], record)[0])
        counts[i].append(new_counts[i])


# ----- registry -----------------------------------------------------------------------------------------------
Decoder = Callable[..., "Responses | list[Responses]"]
DECODERS: dict[str, Decoder] = {
    "possibilities": generate_possibilities,
    "sampling": generate_sampling,
    "min_p": generate_min_p,
    "diverse_beam": generate_diverse_beam,
    "listing": generate_listing,
    "iterative": generate_iterative,
}


def get_decoder(name: str) -> Decoder:
    """The decoder function registered under `name` (names used in YAML and on the CLI)."""
    try:
        return DECODERS[name]
    except KeyError:
        raise GenerationError(f"unknown decoder {name!r}; known: {list(DECODERS)}") from None


def generate_responses(decoder: str, model: Any, tokenizer: Any, context: Any = None, **kwargs: Any
                       ) -> Responses | list[Responses]:
    """Run the decoder named `decoder` (a key of `DECODERS`) with the common decoder arguments."""
    return get_decoder(decoder)(model, tokenizer, context, **kwargs)
