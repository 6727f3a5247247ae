"""The decoders compared in an experiment, each a `generation.batch.Decoder` (one signature, one batch runner),
and their registry `DECODERS`."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from peft_diversity.errors import GenerationError
from peft_diversity.generation.batch import Decoder, DecoderRun
from peft_diversity.generation.beam import generate_diverse_beam
from peft_diversity.generation.core import DEFAULT_MAX_NEW_TOKENS, decode_rows, generate_rows
from peft_diversity.generation.inputs import choose_possibilities, encode
from peft_diversity.generation.responses import Responses
from peft_diversity.generation.text import listing_text, parse_numbered_list
from peft_diversity.templates import iterative_sentence, listing_sentence

logger = logging.getLogger(__name__)


DEFAULT_MIN_P = 0.1


# ----- decoders ---------------------------------------------------------------------------------------------
@dataclass
class SharedPrefixOptions:
    """`shared_prefix`: None = the shared-prefix path when it applies, False = the plain batched path."""

    shared_prefix: bool | None = None


@dataclass
class PossibilitiesOptions(SharedPrefixOptions):
    possibilities: Sequence[int] | str | None = None


class Possibilities(Decoder):
    """PoExFT: K prompts that differ only in the possibility number, answered by ONE batched generate call.

    Possibility numbers are 1..num_responses (default 5), the given `possibilities`, or `possibilities="random"`
    (num_responses distinct numbers from 1..max_possibility, drawn per context). The template is `template`, else the
    `possibility_config.json` beside the model (an error when there is none). The shared prompt prefix is
    computed once per context when possible (`shared_prefix=None`); `False` forces the plain batched path.
    """

    name = "possibilities"
    Options = PossibilitiesOptions
    required_template = True
    shares_prefix = True

    def count(self, num_responses: int | None) -> int | None:
        return num_responses  # checked against the template by choose_possibilities

    def items(self, run: DecoderRun) -> list[Any]:
        numbers = [
            choose_possibilities(run.count, run.options.possibilities, run.template.max_possibility, run.rng)
            for _ in run.records
        ]
        if len({len(n) for n in numbers}) != 1:
            raise GenerationError("every context needs the same number of possibilities")
        return list(zip(run.records, numbers, strict=True))

    def prompts(self, run: DecoderRun, item: Any) -> list[list[int]]:
        _, ks = item
        return run.fitted(item[0], lambda r: [run.template.prompt_text(run.tokenizer, r, n) for n in ks])

    def respond(
        self, run: DecoderRun, item: Any, texts: list[str], counts: list[int], wall: float
    ) -> Responses:
        record, ks = item
        return run.result(record, run.finish(texts, record), counts, wall, self.name, possibilities=list(ks))


class Sampling(Decoder):
    """Baseline: K temperature samples of the plain prompt in one call (the prompt's prefill is shared)."""

    name = "sampling"
    Options = SharedPrefixOptions
    shares_prefix = True

    def prompts(self, run: DecoderRun, item: Any) -> list[list[int]]:
        return [run.plain_prompt(item)] * run.count  # `num_return_sequences=K` semantics


@dataclass
class MinPOptions(SharedPrefixOptions):
    min_p: float = DEFAULT_MIN_P


class MinP(Sampling):
    """Baseline: K min-p samples (tokens below `min_p` x the top probability are dropped) of the plain prompt."""

    name = "min_p"
    Options = MinPOptions

    def generate_settings(self, options: Any, count: int | None, settings: dict[str, Any]) -> dict[str, Any]:
        if not 0.0 < options.min_p <= 1.0:
            raise GenerationError(f"min_p must be in (0, 1], got {options.min_p}")
        if settings.get("temperature", 1.0) in (0, 0.0, None):
            raise GenerationError("min_p needs sampling: use a temperature > 0")
        return {**settings, "min_p": options.min_p}


class Listing(Decoder):
    """Baseline: one generation asked for K numbered responses, parsed by `parse_numbered_list`.

    `max_new_tokens` is per response (the generation gets K times as many). Items that could not be parsed are
    left out of `texts` and listed in `parse_failures` (and logged).
    """

    name = "listing"

    def generate_settings(self, options: Any, count: int | None, settings: dict[str, Any]) -> dict[str, Any]:
        settings["max_new_tokens"] = settings.pop("max_new_tokens", DEFAULT_MAX_NEW_TOKENS) * count
        if settings.get("min_new_tokens") is not None:
            settings["min_new_tokens"] = settings["min_new_tokens"] * count
        return settings

    def recorded(self, run: DecoderRun) -> dict[str, Any]:
        return {"max_new_tokens_per_response": run.gen_kwargs["max_new_tokens"] // run.count}

    def prompts(self, run: DecoderRun, item: Any) -> list[list[int]]:
        return [run.plain_prompt(item, listing_sentence(run.count))]

    def respond(
        self, run: DecoderRun, item: Any, texts: list[str], counts: list[int], wall: float
    ) -> Responses:
        text = listing_text(texts[0], item, run.template) if run.clean else texts[0]
        parsed = parse_numbered_list(text, run.count)
        if parsed.failures:
            logger.warning(
                "listing: could not parse items %s of %d for record %r",
                parsed.failures,
                run.count,
                item.get("id", "?"),
            )
        kept = [t for t in run.finish(parsed.items, item) if t] if run.clean else parsed.items
        result = run.result(
            item,
            kept,
            [len(encode(run.tokenizer, t)) for t in kept],
            wall,
            self.name,
            parse_failures=parsed.failures,
        )
        result.settings["raw_output"] = text
        return result


class Iterative(Decoder):
    """Baseline: K sequential calls per context; call j is shown the j-1 responses so far and asked for a new one.

    Contexts of one batch share each call; the wall time is the sum of the K calls.
    """

    name = "iterative"

    def batch(self, run: DecoderRun, batch: list[Any]) -> list[Responses]:
        start = time.perf_counter()
        texts: list[list[str]] = [[] for _ in batch]
        counts: list[list[int]] = [[] for _ in batch]
        for _ in range(run.count):
            self._round(run, batch, texts, counts)
        wall = time.perf_counter() - start
        return [run.result(r, t, c, wall, self.name) for r, t, c in zip(batch, texts, counts, strict=True)]

    @staticmethod
    def _round(
        run: DecoderRun, batch: list[dict[str, Any]], texts: list[list[str]], counts: list[list[int]]
    ) -> None:
        """One call for every context of the batch, each shown its own previous responses; appends in place."""
        prompts = [
            run.plain_prompt(record, iterative_sentence(previous) if previous else None)
            for record, previous in zip(batch, texts, strict=True)
        ]
        rows, _ = generate_rows(run.model, prompts, 1, run.gen_kwargs)
        new, new_counts = decode_rows(run.tokenizer, rows, run.eos_ids)
        for i, record in enumerate(batch):
            texts[i].append(run.finish([new[i]], record)[0])
            counts[i].append(new_counts[i])


generate_possibilities = Possibilities()
generate_sampling = Sampling()
generate_min_p = MinP()
generate_listing = Listing()
generate_iterative = Iterative()


# ----- registry -----------------------------------------------------------------------------------------------
DECODERS: dict[str, Decoder] = {
    decoder.name: decoder
    for decoder in (
        generate_possibilities,
        generate_sampling,
        generate_min_p,
        generate_diverse_beam,
        generate_listing,
        generate_iterative,
    )
}


def get_decoder(name: str) -> Decoder:
    """The decoder registered under `name` (names used in YAML and on the CLI)."""
    try:
        return DECODERS[name]
    except KeyError:
        raise GenerationError(f"unknown decoder {name!r}; known: {list(DECODERS)}") from None


def generate_responses(
    decoder: str, model: Any, tokenizer: Any, context: Any = None, **kwargs: Any
) -> Responses | list[Responses]:
    """Run the decoder named `decoder` (a key of `DECODERS`) with the common decoder arguments."""
    return get_decoder(decoder)(model, tokenizer, context, **kwargs)
