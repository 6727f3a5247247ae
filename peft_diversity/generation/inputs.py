"""Decoder inputs: records from any context form, the template to use, possibility numbers, and fitting
long contexts into the model's window."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Sequence
from typing import Any

from peft_diversity.errors import GenerationError
from peft_diversity.templates import (
    TEMPLATE_FILENAME,
    PossibilityTemplate,
    find_template,
    is_empty_input,
    load_template,
    turn_line,
)

logger = logging.getLogger(__name__)

DEFAULT_NUM_RESPONSES = 5


# ----- inputs: records, templates, possibility numbers, the model window ------------------------------------
def as_record(context: Any) -> dict[str, Any]:
    """A record from a record dict, a list of dialogue turns or a plain string; empty contexts are errors."""
    if isinstance(context, dict) and ("context" in context or "prompt" in context):
        record = context
    elif isinstance(context, str | list | tuple):
        record = {"context": list(context) if isinstance(context, tuple) else context}
    else:
        raise GenerationError(
            f"a context must be a string, a list of turns or a record dict, got {type(context)}"
        )
    if is_empty_input(record.get("context", record.get("prompt"))):
        raise GenerationError(f"empty context in record {record.get('id', '?')!r}: nothing to respond to")
    return record


def as_records(context: Any, contexts: Sequence[Any] | None) -> tuple[list[dict[str, Any]], bool]:
    """Normalised records and whether a single context (not a list) was given."""
    if (context is None) == (contexts is None):
        raise GenerationError("give exactly one of `context` (one) or `contexts` (a list)")
    if contexts is not None:
        if isinstance(contexts, str | dict):
            raise GenerationError("`contexts` must be a list of contexts; use `context=` for a single one")
        if not contexts:
            raise GenerationError("`contexts` is empty")
        return [as_record(item) for item in contexts], False
    return [as_record(context)], True


def model_name(model: Any) -> str | None:
    """The name or path the model was loaded from (None for a bare module)."""
    # `peft_diversity_source` (set by models.load_model_and_tokenizer) names the folder an adapter came from;
    # a peft model's own name_or_path is its base model's
    name = (
        getattr(model, "peft_diversity_source", None)
        or getattr(model, "name_or_path", None)
        or getattr(getattr(model, "config", None), "_name_or_path", None)
    )
    return str(name) if name else None


def resolve_template(
    template: PossibilityTemplate | str | os.PathLike | None,
    model: Any,
    *,
    required: bool,
    records: Sequence[dict[str, Any]] = (),
) -> PossibilityTemplate:
    """The template to render prompts with: given > saved beside the model > (if not `required`) a default.

    `required` is set by the `possibilities` decoder: the wording must be the one the model was trained with.
    """
    if isinstance(template, PossibilityTemplate):
        return template
    if template is not None:
        return load_template(template)
    # A peft model reports its base model's name here, not the adapter folder: callers that know the folder
    # (the CLI) look there themselves and pass the template in.
    found = find_template(model_name(model))
    if found is not None:
        return found
    if required:
        raise GenerationError(
            f"model {model_name(model) or '<in memory>'!r} has no {TEMPLATE_FILENAME}: it was not trained with "
            "peft_diversity, so the `possibilities` decoder does not know its wording. Pass a template "
            "(template=PossibilityTemplate(...) or --template path/to/possibility_config.json)."
        )
    story = bool(records) and all("prompt" in r and "context" not in r for r in records)
    return PossibilityTemplate(task="story" if story else "dialogue")


def choose_possibilities(
    num_responses: int | None,
    possibilities: Sequence[int] | str | None,
    max_possibility: int,
    rng: random.Random | None = None,
) -> list[int]:
    """Possibility numbers: 1..num_responses (default), the given list, or `"random"`: that many distinct draws
    from 1..max."""
    if isinstance(possibilities, str):
        if possibilities != "random":
            raise GenerationError(
                f"possibilities must be a list of numbers or 'random', got {possibilities!r}"
            )
        count = check_count(
            DEFAULT_NUM_RESPONSES if num_responses is None else num_responses, max_possibility
        )
        return sorted((rng or random.Random()).sample(range(1, max_possibility + 1), count))
    if possibilities is not None:
        numbers = [int(n) for n in possibilities]
        if not numbers:
            raise GenerationError("`possibilities` is empty")
        if num_responses is not None and num_responses != len(numbers):
            raise GenerationError(
                f"num_responses={num_responses} disagrees with {len(numbers)} possibilities {numbers}"
            )
        for number in numbers:
            check_count(number, max_possibility, what="possibility")
        return numbers
    count = check_count(DEFAULT_NUM_RESPONSES if num_responses is None else num_responses, max_possibility)
    return list(range(1, count + 1))


def check_count(value: int, max_possibility: int | None = None, what: str = "num_responses") -> int:
    """`value` when it is a count >= 1 (and within the template's `max_possibility`), else a GenerationError
    naming `what`."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise GenerationError(f"{what} must be an integer >= 1, got {value!r}")
    if max_possibility is not None and value > max_possibility:
        raise GenerationError(
            f"{what}={value} is above the template's max_possibility={max_possibility} (the model was trained "
            f"with possibility numbers 1..{max_possibility})"
        )
    return value


def model_window(model: Any, tokenizer: Any) -> int | None:
    """Most tokens (prompt + generation) the model can attend to; None when unknown."""
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "get_text_config"):
        config = config.get_text_config()
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 1_000_000 else None


def prompt_budget(model: Any, tokenizer: Any, new_tokens: int) -> int | None:
    """Tokens left for the prompt once `new_tokens` are reserved; None when the window is unknown."""
    window = model_window(model, tokenizer)
    if window is None:
        return None
    if new_tokens >= window:
        raise GenerationError(
            f"{new_tokens} new tokens do not fit the model's window of {window} tokens; lower max_new_tokens"
        )
    return window - new_tokens


# ----- fitting long contexts into the window -----------------------------------------------------------------
def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a chat-rendered prompt (its special tokens are already in the text)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def fit_record(
    record: dict[str, Any],
    render: Callable[[dict[str, Any]], list[str]],
    tokenizer: Any,
    budget: int | None,
) -> dict[str, Any]:
    """Trim the record's context from the left (oldest turns first) until every prompt of `render` fits.

    Warns when it trims. If even an emptied context does not fit, the record is returned as trimmed as it can
    be and `encode_fitted` cuts the prompt tokens from the left as a last resort: never an error.
    """
    if budget is None:
        return record
    excess = _excess(record, render, tokenizer, budget)
    if excess <= 0:
        return record
    logger.warning(
        "context of record %r is %d tokens too long for the model window; truncating it from the left",
        record.get("id", "?"),
        excess,
    )
    key = "context" if record.get("context") is not None else "prompt"
    for _ in range(16):
        source = _trim_source(record[key], excess, tokenizer)
        if source is None:
            break
        record = {**record, key: source}
        excess = _excess(record, render, tokenizer, budget)
        if excess <= 0:
            break
    return record


def _excess(record: dict[str, Any], render: Callable, tokenizer: Any, budget: int) -> int:
    return max(len(encode(tokenizer, prompt)) for prompt in render(record)) - budget


def _trim_source(source: Any, excess: int, tokenizer: Any) -> Any:
    """`source` shortened by about `excess` tokens from the left; None when nothing is left to cut."""
    if isinstance(source, str):
        trimmed = _trim_text(source, excess, tokenizer)
        return trimmed if trimmed and trimmed != source else None
    turns = list(source)
    if len(turns) > 1:
        dropped, count = 0, 0
        while count < len(turns) - 1 and dropped < excess:
            dropped += len(encode(tokenizer, turn_line(turns[count]))) + 1
            count += 1
        return turns[count:]
    if not turns:
        return None
    turn = turns[0]
    text = turn.get("text", "") if isinstance(turn, dict) else str(turn)
    trimmed = _trim_text(str(text), excess, tokenizer)
    if not trimmed or trimmed == text:
        return None
    return [{**turn, "text": trimmed} if isinstance(turn, dict) else trimmed]


def _trim_text(text: str, n_tokens: int, tokenizer: Any) -> str:
    """`text` without its first `n_tokens` tokens (cut at a character offset when the tokenizer gives them)."""
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        return "" if n_tokens >= len(offsets) else text[offsets[n_tokens][0] :].strip()
    ids = encode(tokenizer, text)
    return "" if n_tokens >= len(ids) else tokenizer.decode(ids[n_tokens:]).strip()


def encode_fitted(tokenizer: Any, prompt: str, budget: int | None) -> list[int]:
    """The prompt's token ids, cut from the left to `budget` (with a warning) when still too long."""
    ids = encode(tokenizer, prompt)
    if budget is not None and len(ids) > budget:
        logger.warning(
            "prompt still %d tokens too long after trimming the context; cutting its start", len(ids) - budget
        )
        ids = ids[-budget:]
    return ids
