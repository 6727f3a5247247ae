"""Diverse generation: K possibilities in one batched call, and the baseline decoders it is compared with.

Every decoder has the same shape, so an experiment can swap them by name (see `DECODERS`):

    decoder(model, tokenizer, context=None, *, contexts=None, k=None, template=None, **settings)
        -> Responses            (one `context`)
        -> list[Responses]      (`contexts=[...]`, batched, with a progress bar for long lists)

Decoders: `possibilities` (PoExFT: K prompts differing only in the possibility number, one generate call),
`sampling` (K samples of the plain prompt), `min_p` (the same with min-p filtering), `diverse_beam` (group beam
search with a Hamming diversity penalty, Vijayakumar et al. 2016, implemented here), `listing` (one generation
asked for K numbered responses, parsed) and `iterative` (K sequential calls, each shown the previous responses).

Shared prefix. The K prompts of one context share every token up to the possibility number (the template puts
the possibility sentence last). `possibilities`, `sampling` and `min_p` therefore prefill that prefix once per
context, repeat its KV cache K times and let `generate` compute only the K suffixes. This path is used when the
model returns a cache that can be repeated along the batch (decoder-only transformers with the default dynamic
cache), K > 1 and the shared prefix has at least `MIN_SHARED_PREFIX` tokens; otherwise the plain path (K full
prompts, left-padded, one generate call) is used. Suffixes of different lengths (e.g. k=9 vs k=10) are padded
between prefix and suffix, masked out; positions come from the attention mask, so both paths compute the same
thing (token-identical under greedy decoding). `Responses.settings["path"]` says which one ran.

Settings shared by the generate-based decoders (keyword arguments): `temperature` (1.0; 0 = greedy),
`top_p`, `top_k`, `min_p`, `repetition_penalty`, `max_new_tokens` (64, per response), `min_new_tokens`,
`seed`, `batch_size` (contexts per call, 8), `progress` (None = automatic), `clean` (True: `clean_response`),
`shared_prefix` (None = automatic, False = plain path); other keywords go to `model.generate` unchanged.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import math
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from peft_diversity.errors import GenerationError
from peft_diversity.templates import (
    LISTING_SENTENCE,
    TEMPLATE_FILENAME,
    PossibilityTemplate,
    ensure_chat_template,
    find_template,
    is_empty_input,
    iterative_sentence,
    listing_sentence,
    load_template,
    turn_line,
)

logger = logging.getLogger(__name__)

DEFAULT_K = 5
DEFAULT_MAX_NEW_TOKENS = 64
DEFAULT_BATCH_SIZE = 8
DEFAULT_MIN_P = 0.1
DEFAULT_DIVERSITY_PENALTY = 1.0
MIN_SHARED_PREFIX = 8
"""Shortest shared prefix (tokens) worth a separate prefill; shorter ones take the plain path."""



# ----- result ------------------------------------------------------------------------------------------
@dataclass
class Responses:
    """K responses to one context, and how they were produced: the input of the metrics and experiments."""

    texts: list[str]
    """The responses, cleaned (unless `clean=False`)."""
    num_tokens: list[int]
    """Generated tokens per response (up to, not including, the end-of-sequence token)."""
    wall_time_s: float
    """Latency of the call(s) that produced these responses; contexts batched together share one value."""
    decoder: str
    """Decoder name: a key of `DECODERS`."""
    context: Any = None
    """The context (dialogue turns or text) or story prompt, as given."""
    possibilities: list[int] = field(default_factory=list)
    """Possibility numbers, one per response (`possibilities` decoder only)."""
    model: str | None = None
    """Model name or path."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Effective decoder settings (temperature, max_new_tokens, path, ...)."""
    id: str | None = None
    """The record's id, when it had one."""
    parse_failures: list[int] = field(default_factory=list)
    """`listing` only: numbers (1..K) of the list items that could not be parsed (absent from `texts`)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; the line format of responses.jsonl."""
        data = asdict(self)
        data["responses"] = data.pop("texts")
        order = ("context", "responses", "decoder", "model", "possibilities", "wall_time_s", "num_tokens",
                 "settings", "id", "parse_failures")
        return {key: data[key] for key in order}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Responses:
        data = dict(data)
        data["texts"] = data.pop("responses")
        return cls(**data)


def write_responses_jsonl(results: Iterable[Responses], path: str | os.PathLike) -> Path:
    """Write one JSON line per context (responses.jsonl)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for result in results:
            handle.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
    return path


def read_responses_jsonl(path: str | os.PathLike) -> list[Responses]:
    """Read a responses.jsonl back."""
    with Path(path).open(encoding="utf-8") as handle:
        return [Responses.from_dict(json.loads(line)) for line in handle if line.strip()]


# ----- inputs: records, templates, possibility numbers, the model window ------------------------------------
def as_record(context: Any) -> dict[str, Any]:
    """A record from a record dict, a list of dialogue turns or a plain string; empty contexts are errors."""
    if isinstance(context, dict) and ("context" in context or "prompt" in context):
        record = context
    elif isinstance(context, str | list | tuple):
        record = {"context": list(context) if isinstance(context, tuple) else context}
    else:
        raise GenerationError(f"a context must be a string, a list of turns or a record dict, got {type(context)}")
    if is_empty_input(record.get("context", record.get("prompt"))):
        raise GenerationError(f"empty context in record {record.get('id', '?')!r}: nothing to respond to")
    return record


def _records(context: Any, contexts: Sequence[Any] | None) -> tuple[list[dict[str, Any]], bool]:
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
    name = (getattr(model, "peft_diversity_source", None) or getattr(model, "name_or_path", None)
            or getattr(getattr(model, "config", None), "_name_or_path", None))
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
    k: int | None,
    possibilities: Sequence[int] | str | None,
    max_possibility: int,
    rng: random.Random | None = None,
) -> list[int]:
    """Possibility numbers: 1..k (default), the given list, or `"random"`: k distinct draws from 1..max."""
    if isinstance(possibilities, str):
        if possibilities != "random":
            raise GenerationError(f"possibilities must be a list of numbers or 'random', got {possibilities!r}")
        count = _check_k(DEFAULT_K if k is None else k, max_possibility)
        return sorted((rng or random.Random()).sample(range(1, max_possibility + 1), count))
    if possibilities is not None:
        numbers = [int(n) for n in possibilities]
        if not numbers:
            raise GenerationError("`possibilities` is empty")
        if k is not None and k != len(numbers):
            raise GenerationError(f"k={k} disagrees with {len(numbers)} possibilities {numbers}")
        for number in numbers:
            _check_k(number, max_possibility, what="possibility")
        return numbers
    return list(range(1, _check_k(DEFAULT_K if k is None else k, max_possibility) + 1))


def _check_k(k: int, max_possibility: int | None = None, what: str = "k") -> int:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise GenerationError(f"{what} must be an integer >= 1, got {k!r}")
    if max_possibility is not None and k > max_possibility:
        raise GenerationError(
            f"{what}={k} is above the template's max_possibility={max_possibility} (the model was trained "
            f"with possibility numbers 1..{max_possibility})"
        )
    return k


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


def _prompt_budget(model: Any, tokenizer: Any, new_tokens: int) -> int | None:
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
    be and `_encode_fitted` cuts the prompt tokens from the left as a last resort: never an error.
    """
    if budget is None:
        return record
    excess = _excess(record, render, tokenizer, budget)
    if excess <= 0:
        return record
    logger.warning(
        "context of record %r is %d tokens too long for the model window; truncating it from the left",
        record.get("id", "?"), excess,
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
        return "" if n_tokens >= len(offsets) else text[offsets[n_tokens][0]:].strip()
    ids = encode(tokenizer, text)
    return "" if n_tokens >= len(ids) else tokenizer.decode(ids[n_tokens:]).strip()


def _encode_fitted(tokenizer: Any, prompt: str, budget: int | None) -> list[int]:
    ids = encode(tokenizer, prompt)
    if budget is not None and len(ids) > budget:
        logger.warning("prompt still %d tokens too long after trimming the context; cutting its start", len(ids) - budget)
        ids = ids[-budget:]
    return ids


# ----- clean-up ----------------------------------------------------------------------------------------------
ROLE_LABELS = ("assistant", "user", "system")
_NUMBERED_LABEL = r"(?:response|reply|answer|possibility|option)\s*(?:number\s*)?#?\s*\d*"


def clean_response(text: str, *, speakers: Iterable[str] = (), echoes: Iterable[str] = ()) -> str:
    """Normalise one generated response; every decoder's outputs go through this one function.

    1. Template echoes are removed: each string of `echoes` (e.g. the possibility sentence) wherever it occurs,
       matched case- and spacing-insensitively (WordPiece decoding puts spaces around punctuation); a string
       with `{k}` matches any number there.
    2. Leading labels are stripped, repeatedly: a known speaker (`Maya:`), a chat role (`assistant:`) or a
       numbered label (`Response 2:`, `possibility #3:`).
    3. The text is cut where a new turn starts: a chat role label anywhere after the start, or a known speaker
       label at a line start or after a sentence end.
    4. Whitespace is normalised: runs of spaces/tabs become one space, lines are stripped, blank lines dropped.
    """
    text = strip_echoes(text, echoes)
    names = [name for name in {str(s).strip() for s in speakers} if name]
    labels = [_loose_pattern(name).pattern for name in names] + list(ROLE_LABELS) + [_NUMBERED_LABEL]
    leading = re.compile(rf"^\s*(?:{'|'.join(labels)})\s*:\s*", re.IGNORECASE)
    while (match := leading.match(text)) and match.end() > 0:
        text = text[match.end():]
    text = _cut_at_next_turn(text, names)
    lines = (re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def strip_echoes(text: str, echoes: Iterable[str]) -> str:
    """`text` without any occurrence of the `echoes` (see `clean_response`, step 1)."""
    for echo in echoes:
        if echo and echo.strip():
            text = _loose_pattern(echo).sub(" ", text)
    return text


def _loose_pattern(text: str) -> re.Pattern:
    """Regex for `text` ignoring case and spacing between words/punctuation; `{k}` / `{count}` match a number."""
    parts = [r"\d+" if piece in ("{k}", "{count}") else re.escape(piece)
             for piece in re.findall(r"\{(?:k|count)\}|\w+|[^\w\s]", text)]
    return re.compile(r"\s*".join(parts), re.IGNORECASE)


def _cut_at_next_turn(text: str, speakers: Sequence[str]) -> str:
    roles = rf"(?:^|(?<=\s))(?:{'|'.join(ROLE_LABELS)})\s*:"
    cuts = [m.start() for m in re.finditer(roles, text, re.IGNORECASE) if m.start() > 0]
    if speakers:
        names = "|".join(_loose_pattern(name).pattern for name in speakers)
        turn = rf"(?:\n|(?<=[.!?])\s+)\s*(?:{names})\s*:"
        cuts += [m.start() for m in re.finditer(turn, text, re.IGNORECASE) if m.start() > 0]
    return text[: min(cuts)] if cuts else text


def clean_for_record(text: str, record: dict[str, Any], template: PossibilityTemplate) -> str:
    """`clean_response` with the record's speakers and the template's sentences as echoes."""
    return clean_response(text, speakers=_speakers(record), echoes=_template_echoes(template))


def listing_text(text: str, record: dict[str, Any], template: PossibilityTemplate) -> str:
    """A listing generation made ready to parse: template echoes removed, cut where a new turn starts.

    Numbered labels are the list markers here, so they stay until `parse_numbered_list` has split the items.
    """
    return _cut_at_next_turn(strip_echoes(text, _template_echoes(template)), _speakers(record))


def _speakers(record: dict[str, Any]) -> list[str]:
    source = record.get("context")
    if isinstance(source, list):
        return [str(turn["speaker"]) for turn in source if isinstance(turn, dict) and turn.get("speaker")]
    return []


def _template_echoes(template: PossibilityTemplate) -> list[str]:
    return [template.possibility_sentence, template.plain_sentence, LISTING_SENTENCE]


# ----- listing parse -----------------------------------------------------------------------------------------
@dataclass
class ListParse:
    """Items parsed from a listing-prompt generation."""

    items: list[str]
    """Non-empty items, in list order (at most K)."""
    failures: list[int]
    """Numbers 1..K that were missing or empty."""


_MARKER = re.compile(
    r"(?:^|(?<=\s)|(?<=[.!?:;]))(?:(?:response|possibility|option|reply|answer)\s*(?:number\s*)?)?"
    r"#?\s*(\d{1,3})\s*(?:[.):]|\s-)(?=\s|$)",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^\s*[-*\u2022]\s+(.*)$")


def parse_numbered_list(text: str, k: int) -> ListParse:
    """Split a generation into K responses: "1." / "1)" / "#1:" / "Response 1:" markers, else bullets, else lines.

    Numbered markers are accepted only in sequence (1, 2, 3, ...), so a stray number inside a response does
    not split it; markers need not start a line (some tokenizers drop newlines). Missing or empty items are
    reported in `failures`; items past K are ignored.
    """
    items = _numbered_items(text) or _bullet_items(text) or _line_items(text)
    items = items[:k] + [""] * max(0, k - len(items))
    failures = [i for i, item in enumerate(items, start=1) if not item.strip()]
    return ListParse([item.strip() for item in items if item.strip()], failures)


def _numbered_items(text: str) -> list[str]:
    accepted: list[re.Match] = []
    for match in _MARKER.finditer(text):
        if int(match.group(1)) == len(accepted) + 1:
            accepted.append(match)
    if not accepted:
        return []
    ends = [m.start() for m in accepted[1:]] + [len(text)]
    return [text[m.end():end].strip() for m, end in zip(accepted, ends, strict=True)]


def _bullet_items(text: str) -> list[str]:
    items: list[str] = []
    for line in text.splitlines():
        if match := _BULLET.match(line):
            items.append(match.group(1))
        elif items and line.strip():
            items[-1] += " " + line.strip()
    return items


def _line_items(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


# ----- batched generate core -----------------------------------------------------------------------------------
def _device(model: Any) -> torch.device:
    device = getattr(model, "device", None)
    if isinstance(device, torch.device):
        return device
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError, TypeError):
        return torch.device("cpu")


def _special_ids(model: Any, tokenizer: Any) -> tuple[list[int], int]:
    """(end-of-sequence ids, pad id) from the generation config, else the tokenizer."""
    config = getattr(model, "generation_config", None)
    eos = getattr(config, "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    eos_ids = [int(e) for e in (eos if isinstance(eos, list | tuple) else [eos]) if e is not None]
    pad = getattr(config, "pad_token_id", None)
    pad = pad if pad is not None else tokenizer.pad_token_id
    pad = pad if pad is not None else (eos_ids[0] if eos_ids else 0)
    return eos_ids, int(pad)


SAMPLING_KEYS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")


def generate_kwargs(model: Any, tokenizer: Any, settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(kwargs for `model.generate`, effective settings to record) from a decoder's keyword settings."""
    settings = dict(settings)
    temperature = settings.pop("temperature", 1.0)
    do_sample = settings.pop("do_sample", temperature is not None and temperature > 0)
    record = {"temperature": temperature if do_sample else 0.0, "do_sample": do_sample}
    eos_ids, pad = _special_ids(model, tokenizer)
    kwargs: dict[str, Any] = {"do_sample": do_sample, "pad_token_id": pad, "return_dict_in_generate": False}
    if eos_ids:
        kwargs["eos_token_id"] = eos_ids
    for key in SAMPLING_KEYS:
        value = temperature if key == "temperature" else settings.pop(key, None)
        if value is not None and (do_sample or key == "repetition_penalty"):
            kwargs[key] = value
            record[key] = value
    kwargs["max_new_tokens"] = record["max_new_tokens"] = settings.pop("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
    min_new = settings.pop("min_new_tokens", None)
    _check_new_tokens(kwargs["max_new_tokens"], min_new)
    if min_new is not None:
        kwargs["min_new_tokens"] = record["min_new_tokens"] = min_new
    kwargs.update(settings)
    record.update({key: value for key, value in settings.items() if _jsonable(value)})
    return kwargs, record


def _check_new_tokens(max_new: Any, min_new: Any) -> None:
    if not isinstance(max_new, int) or isinstance(max_new, bool) or max_new < 1:
        raise GenerationError(f"max_new_tokens must be an integer >= 1, got {max_new!r}")
    if min_new is not None and (not isinstance(min_new, int) or not 0 <= min_new <= max_new):
        raise GenerationError(f"min_new_tokens must be an integer in 0..max_new_tokens={max_new}, got {min_new!r}")


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Tokens shared by all rows, leaving at least one token per row for `generate` to process."""
    limit = min(len(row) for row in rows) - 1
    length = 0
    while length < limit and all(row[length] == rows[0][length] for row in rows):
        length += 1
    return length


def _accepts(model: Any, name: str) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return _forward_accepts(type(base), name)


@functools.lru_cache(maxsize=256)
def _forward_accepts(model_type: type, name: str) -> bool:
    params = inspect.signature(model_type.forward).parameters
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def forward_last(
    model: Any, ids: torch.Tensor, mask: torch.Tensor, cache: Any = None, use_cache: bool = True
) -> tuple[torch.Tensor, Any]:
    """One forward pass: (logits of the last position, the cache or None).

    Positions follow the attention mask, as in `generate`, so padded rows get the positions of unpadded ones.
    """
    position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
    kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "use_cache": use_cache}
    if _accepts(model, "position_ids"):
        kwargs["position_ids"] = position_ids[:, -ids.shape[1]:]
    if cache is not None:
        kwargs["past_key_values"] = cache
    if _accepts(model, "logits_to_keep"):
        kwargs["logits_to_keep"] = 1
    with torch.no_grad():
        out = model(**kwargs)
    return out.logits[:, -1, :], getattr(out, "past_key_values", None) if use_cache else None


def _pad_left(rows: Sequence[Sequence[int]], pad: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row):] = 1
    return ids.to(device), mask.to(device)


def generate_rows(
    model: Any,
    prompts: Sequence[Sequence[int]],
    group_size: int,
    gen_kwargs: dict[str, Any],
    shared_prefix: bool | None = None,
) -> tuple[torch.Tensor, str]:
    """Generated tokens for prompt rows grouped by context (`group_size` consecutive rows each), ONE generate call.

    Returns (new tokens [rows, new], path) with path `"shared_prefix"` or `"plain"` (see the module docstring).
    """
    pad = gen_kwargs["pad_token_id"]
    groups = [prompts[i:i + group_size] for i in range(0, len(prompts), group_size)]
    prefix_lengths = [common_prefix_length(group) for group in groups]
    wanted = shared_prefix is not False and group_size > 1 and min(prefix_lengths) >= MIN_SHARED_PREFIX
    if wanted and not getattr(model.config, "is_encoder_decoder", False):
        out = _generate_shared(model, groups, prefix_lengths, gen_kwargs, pad)
        if out is not None:
            return out, "shared_prefix"
    if shared_prefix:
        logger.warning("shared-prefix generation does not apply here (prefix too short or no repeatable cache)")
    ids, mask = _pad_left(prompts, pad, _device(model))
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, **gen_kwargs)
    return out[:, ids.shape[1]:], "plain"


def _generate_shared(
    model: Any, groups: list, prefix_lengths: list[int], gen_kwargs: dict[str, Any], pad: int
) -> torch.Tensor | None:
    """Prefill each group's prefix once, repeat its cache to the group's rows, generate the suffixes.

    Rows are laid out [left pad | prefix | middle pad | suffix]; the pads are masked out. None when the model's
    cache cannot be repeated along the batch (the caller then takes the plain path).
    """
    device = _device(model)
    prefixes = [group[0][:length] for group, length in zip(groups, prefix_lengths, strict=True)]
    prefix_ids, prefix_mask = _pad_left(prefixes, pad, device)
    _, cache = forward_last(model, prefix_ids, prefix_mask)
    if cache is None or not hasattr(cache, "batch_repeat_interleave"):
        return None
    size = len(groups[0])
    cache.batch_repeat_interleave(size)
    suffixes = [row[length:] for group, length in zip(groups, prefix_lengths, strict=True) for row in group]
    suffix_ids, suffix_mask = _pad_left(suffixes, pad, device)
    ids = torch.cat([prefix_ids.repeat_interleave(size, dim=0), suffix_ids], dim=1)
    mask = torch.cat([prefix_mask.repeat_interleave(size, dim=0), suffix_mask], dim=1)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, past_key_values=cache, **gen_kwargs)
    return out[:, ids.shape[1]:]


def decode_rows(tokenizer: Any, rows: torch.Tensor | Sequence[Sequence[int]], eos_ids: Sequence[int]) -> tuple[list[str], list[int]]:
    """(texts, token counts) of generated rows, each cut at its first end-of-sequence token."""
    texts, counts = [], []
    for row in rows:
        tokens = row.tolist() if isinstance(row, torch.Tensor) else list(row)
        end = next((i for i, tok in enumerate(tokens) if tok in eos_ids), len(tokens))
        texts.append(tokenizer.decode(tokens[:end], skip_special_tokens=True))
        counts.append(end)
    return texts, counts


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
    required_template: bool, settings: dict[str, Any], k: int | None,
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
    if k is not None:
        recorded["k"] = k
    return _Run(model, tokenizer, records, single, tmpl, gen_kwargs, recorded, batch_size, progress, clean,
                random.Random(seed))


# ----- decoders ---------------------------------------------------------------------------------------------
def generate_possibilities(
    model: Any,
    tokenizer: Any,
    context: Any = None,
    *,
    contexts: Sequence[Any] | None = None,
    k: int | None = None,
    possibilities: Sequence[int] | str | None = None,
    template: PossibilityTemplate | str | os.PathLike | None = None,
    shared_prefix: bool | None = None,
    **settings: Any,
) -> Responses | list[Responses]:
    """PoExFT: K prompts that differ only in the possibility number, answered by ONE batched generate call.

    Possibility numbers are 1..k (default k=5), the given `possibilities`, or `possibilities="random"`
    (k distinct numbers from 1..max_possibility, drawn per context). The template is `template`, else the
    `possibility_config.json` beside the model (an error when there is none). The shared prompt prefix is
    computed once per context when possible (`shared_prefix=None`); `False` forces the plain batched path.
    """
    run = _start(model, tokenizer, context, contexts, template, required_template=True, settings=settings, k=k)
    numbers = [choose_possibilities(k, possibilities, run.template.max_possibility, run.rng) for _ in run.records]
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
    decoder: str, model: Any, tokenizer: Any, context: Any, contexts: Sequence[Any] | None, k: int | None,
    template: Any, shared_prefix: bool | None, settings: dict[str, Any],
) -> Responses | list[Responses]:
    """K samples of the plain (untagged) prompt per context: `num_return_sequences=K` semantics."""
    count = _check_k(DEFAULT_K if k is None else k)
    run = _start(model, tokenizer, context, contexts, template, required_template=False, settings=settings,
                 k=count)
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
    k: int | None = None,
    template: PossibilityTemplate | str | os.PathLike | None = None,
    shared_prefix: bool | None = None,
    **settings: Any,
) -> Responses | list[Responses]:
    """Baseline: K temperature samples of the plain prompt in one call (the prompt's prefill is shared)."""
    return _generate_plain_copies("sampling", model, tokenizer, context, contexts, k, template, shared_prefix,
                                  settings)


def generate_min_p(
    model: Any,
    tokenizer: Any,
    context: Any = None,
    *,
    contexts: Sequence[Any] | None = None,
    k: int | None = None,
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
    return _generate_plain_copies("min_p", model, tokenizer, context, contexts, k, template, shared_prefix,
                                  {**settings, "min_p": min_p})


def generate_listing(
    model: Any,
    tokenizer: Any,
    context: Any = None,
    *,
    contexts: Sequence[Any] | None = None,
    k: int | None = None,
    template: PossibilityTemplate | str | os.PathLike | None = None,
    **settings: Any,
) -> Responses | list[Responses]:
    """Baseline: one generation asked for K numbered responses, parsed by `parse_numbered_list`.

    `max_new_tokens` is per response (the generation gets K times as many). Items that could not be parsed are
    left out of `texts` and listed in `parse_failures` (and logged).
    """
    count = _check_k(DEFAULT_K if k is None else k)
    per_response = settings.pop("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
    settings["max_new_tokens"] = per_response * count
    if settings.get("min_new_tokens") is not None:
        settings["min_new_tokens"] = settings["min_new_tokens"] * count
    run = _start(model, tokenizer, context, contexts, template, required_template=False, settings=settings,
                 k=count)
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
    k: int | None = None,
    template: PossibilityTemplate | str | os.PathLike | None = None,
    **settings: Any,
) -> Responses | list[Responses]:
    """Baseline: K sequential calls per context; call j is shown the j-1 responses so far and asked for a new one.

    Contexts of one batch share each call; the wall time is the sum of the K calls.
    """
    count = _check_k(DEFAULT_K if k is None else k)
    run = _start(model, tokenizer, context, contexts, template, required_template=False, settings=settings,
                 k=count)
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


# ----- diverse beam search ---------------------------------------------------------------------------------
@dataclass
class Hypothesis:
    """A finished beam: generated tokens (without the end token) and its length-normalised score."""

    tokens: list[int]
    score: float


def diverse_beam_search(
    model: Any,
    prompt_ids: Sequence[int],
    *,
    num_beams: int,
    num_beam_groups: int,
    diversity_penalty: float = DEFAULT_DIVERSITY_PENALTY,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    min_new_tokens: int = 0,
    length_penalty: float = 1.0,
    eos_token_id: int | Sequence[int] = (),
    use_cache: bool = True,
) -> list[list[Hypothesis]]:
    """Group beam search with Hamming diversity (Vijayakumar et al. 2016) for one prompt; best-first per group.

    The beams are split into `num_beam_groups` groups of `num_beams // num_beam_groups`. At every step the
    groups choose in turn; group g's log-probabilities are lowered by `diversity_penalty` x (how many beams of
    groups 0..g-1 chose that token at this step), and the penalised scores accumulate into its beam scores.
    Within a group it is ordinary beam search: the top (1 + #eos) x beams candidates; an end token among the
    top `beams` finishes a hypothesis, scored sum-log-prob / length**length_penalty (length counts the end
    token). A group stops once it has `beams` finished hypotheses none of which its best running beam can
    still beat; at `max_new_tokens` the running beams are finished as they are. The model runs one forward per
    step over all beams, reusing its KV cache (reordered by beam) when it returns one, else the full sequences.
    """
    if num_beam_groups < 1 or num_beams < num_beam_groups or num_beams % num_beam_groups:
        raise GenerationError(f"num_beams={num_beams} must be a positive multiple of num_beam_groups={num_beam_groups}")
    eos_ids = [int(e) for e in ([eos_token_id] if isinstance(eos_token_id, int) else eos_token_id)]
    state = _BeamState(num_beams, num_beam_groups, length_penalty, _device(model))
    ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=state.device)
    logits, cache = forward_last(model, ids, torch.ones_like(ids), use_cache=use_cache)
    if cache is not None and hasattr(cache, "batch_repeat_interleave") and hasattr(cache, "reorder_cache"):
        cache.batch_repeat_interleave(num_beams)
    else:
        cache = None
    logits = logits.expand(num_beams, -1)
    for step in range(max_new_tokens):
        logp = torch.log_softmax(logits.float(), dim=-1)
        if step < min_new_tokens and eos_ids:
            logp[:, eos_ids] = -math.inf
        beam_idx, tokens = state.step(logp, diversity_penalty, eos_ids)
        if state.all_done() or step + 1 == max_new_tokens:
            break
        logits, cache = _beam_forward(model, ids, state, beam_idx, tokens, cache, use_cache)
    return state.finish()


def _beam_forward(model: Any, prompt: torch.Tensor, state: _BeamState, beam_idx: torch.Tensor,
                  tokens: torch.Tensor, cache: Any, use_cache: bool) -> tuple[torch.Tensor, Any]:
    """Logits for the next step: feed only the new tokens when a cache is kept, else the full sequences."""
    if cache is not None:
        cache.reorder_cache(beam_idx)
        length = prompt.shape[1] + state.sequences.shape[1]
        mask = torch.ones((len(tokens), length), dtype=torch.long, device=state.device)
        return forward_last(model, tokens[:, None], mask, cache=cache, use_cache=True)
    full = torch.cat([prompt.expand(len(tokens), -1), state.sequences], dim=1)
    logits, _ = forward_last(model, full, torch.ones_like(full), use_cache=False)
    return logits, None


class _BeamState:
    """Running beams, their scores and the finished hypotheses of every group."""

    def __init__(self, num_beams: int, num_groups: int, length_penalty: float, device: torch.device) -> None:
        self.groups, self.per_group = num_groups, num_beams // num_groups
        self.length_penalty, self.device = length_penalty, device
        # Only the first beam of each group is live at the start: the copies would pick the same tokens.
        self.scores = torch.full((num_beams,), -1e9, device=device)
        self.scores[:: self.per_group] = 0.0
        self.sequences = torch.empty((num_beams, 0), dtype=torch.long, device=device)
        self.hypotheses: list[list[Hypothesis]] = [[] for _ in range(num_groups)]
        self.done = [False] * num_groups

    def step(self, logp: torch.Tensor, penalty: float, eos_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Choose every group's next beams in turn; returns (source beam per row, new token per row)."""
        beam_idx = torch.arange(len(self.scores), device=self.device)
        tokens = torch.zeros(len(self.scores), dtype=torch.long, device=self.device)
        new_scores = self.scores.clone()
        counts = torch.zeros(logp.shape[-1], device=self.device)
        for group in range(self.groups):
            if self.done[group]:
                continue
            rows = slice(group * self.per_group, (group + 1) * self.per_group)
            scores = logp[rows] + self.scores[rows, None] - penalty * counts
            self._select(group, scores, eos_ids, beam_idx, tokens, new_scores)
            counts += torch.bincount(tokens[rows], minlength=logp.shape[-1]).to(counts.dtype)
            best_running = new_scores[rows].max().item()
            self.done[group] = self._group_done(group, best_running, self.sequences.shape[1] + 1)
        self.scores = new_scores
        self.sequences = torch.cat([self.sequences[beam_idx], tokens[:, None]], dim=1)
        return beam_idx, tokens

    def _select(self, group: int, scores: torch.Tensor, eos_ids: list[int], beam_idx: torch.Tensor,
                tokens: torch.Tensor, new_scores: torch.Tensor) -> None:
        """Beam search within one group: fill its rows of beam_idx/tokens/new_scores in place."""
        vocab, width = scores.shape[-1], self.per_group
        top_scores, top_flat = scores.reshape(-1).topk(min(width * (1 + len(eos_ids)), scores.numel()))
        filled, length = 0, self.sequences.shape[1] + 1
        for rank, (score, flat) in enumerate(zip(top_scores.tolist(), top_flat.tolist(), strict=True)):
            beam, token = divmod(flat, vocab)
            source = group * width + beam
            if token in eos_ids:
                if rank < width:
                    self._add(group, self.sequences[source].tolist(), score, length)
                continue
            row = group * width + filled
            beam_idx[row], tokens[row], new_scores[row] = source, token, score
            filled += 1
            if filled == width:
                break

    def _add(self, group: int, tokens: list[int], score: float, length: int) -> None:
        hyps = self.hypotheses[group]
        hyps.append(Hypothesis(tokens, score / length**self.length_penalty))
        hyps.sort(key=lambda h: h.score, reverse=True)
        del hyps[self.per_group:]

    def _group_done(self, group: int, best_running: float, length: int) -> bool:
        hyps = self.hypotheses[group]
        return len(hyps) >= self.per_group and hyps[-1].score >= best_running / length**self.length_penalty

    def all_done(self) -> bool:
        return all(self.done)

    def finish(self) -> list[list[Hypothesis]]:
        """Finish the running beams of the groups still open; each group's hypotheses, best first."""
        length = self.sequences.shape[1]
        for group in range(self.groups):
            if self.done[group]:
                continue
            for row in range(group * self.per_group, (group + 1) * self.per_group):
                self._add(group, self.sequences[row].tolist(), self.scores[row].item(), max(length, 1))
        return self.hypotheses


def pick_diverse(hypotheses: list[list[Hypothesis]], k: int) -> list[Hypothesis]:
    """K hypotheses taking each group's best in turn (group 0's best, group 1's best, ..., then second bests)."""
    picked: list[Hypothesis] = []
    for rank in range(max((len(h) for h in hypotheses), default=0)):
        picked += [group[rank] for group in hypotheses if rank < len(group)]
    return picked[:k]


def generate_diverse_beam(
    model: Any,
    tokenizer: Any,
    context: Any = None,
    *,
    contexts: Sequence[Any] | None = None,
    k: int | None = None,
    template: PossibilityTemplate | str | os.PathLike | None = None,
    num_beams: int | None = None,
    num_beam_groups: int | None = None,
    diversity_penalty: float = DEFAULT_DIVERSITY_PENALTY,
    length_penalty: float = 1.0,
    **settings: Any,
) -> Responses | list[Responses]:
    """Baseline: diverse (group) beam search on the plain prompt, one context at a time.

    Defaults: K groups of one beam each (`num_beams = num_beam_groups = K`), one response per group. Sampling
    settings do not apply; `max_new_tokens`, `min_new_tokens` and `seed` do.
    """
    count = _check_k(DEFAULT_K if k is None else k)
    groups = num_beam_groups or count
    beams = num_beams or groups
    if beams < count:
        raise GenerationError(f"num_beams={beams} cannot return k={count} responses")
    unknown = set(settings) - {"max_new_tokens", "min_new_tokens", "seed", "batch_size", "progress", "clean"}
    if unknown:
        raise GenerationError(f"diverse_beam does not take {sorted(unknown)}")
    run = _start(model, tokenizer, context, contexts, template, required_template=False,
                 settings={**settings, "temperature": 0.0}, k=count)
    run.settings.update(num_beams=beams, num_beam_groups=groups, diversity_penalty=diversity_penalty,
                        length_penalty=length_penalty)
    eos_ids = run.gen_kwargs.get("eos_token_id", [])
    results: list[Responses] = []
    for batch in run.batches(run.records, "diverse_beam"):
        for record in batch:
            start = time.perf_counter()
            def render(r: dict[str, Any]) -> list[str]:
                return [run.template.prompt_text(tokenizer, r, None)]
            prompt = _encode_fitted(tokenizer, render(fit_record(record, render, tokenizer, run.budget()))[0],
                                    run.budget())
            hyps = diverse_beam_search(
                model, prompt, num_beams=beams, num_beam_groups=groups, diversity_penalty=diversity_penalty,
                max_new_tokens=run.gen_kwargs["max_new_tokens"], min_new_tokens=run.gen_kwargs.get("min_new_tokens") or 0,
                length_penalty=length_penalty, eos_token_id=eos_ids,
            )
            chosen = pick_diverse(hyps, count)
            texts, counts = decode_rows(tokenizer, [h.tokens for h in chosen], eos_ids)
            wall = time.perf_counter() - start
            results.append(run.result(record, run.finish(texts, record), counts, wall, "diverse_beam"))
    return run.output(results)


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
