"""The batched generate core: K rows in one `generate` call, with the shared prompt prefix prefilled once
and its KV cache repeated K times (see the package docstring)."""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Sequence
from typing import Any

import torch

from peft_diversity.errors import GenerationError
from peft_diversity.shared_prefix import (  # noqa: F401 - the first two stay importable here (since issue 4)
    MIN_SHARED_PREFIX,
    common_prefix_length,
    expand_cache,
    pad_left,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_NEW_TOKENS = 64


# ----- batched generate core -----------------------------------------------------------------------------------
def model_device(model: Any) -> torch.device:
    """The device a model's inputs go to: its `device`, else its first parameter's, else the CPU."""
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


def generate_kwargs(
    model: Any, tokenizer: Any, settings: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(kwargs for `model.generate`, effective settings to record) from a decoder's keyword settings."""
    settings = dict(settings)
    check_sampling_settings(settings)
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
    kwargs["max_new_tokens"] = record["max_new_tokens"] = settings.pop(
        "max_new_tokens", DEFAULT_MAX_NEW_TOKENS
    )
    min_new = settings.pop("min_new_tokens", None)
    check_new_tokens(kwargs["max_new_tokens"], min_new)
    if min_new is not None:
        kwargs["min_new_tokens"] = record["min_new_tokens"] = min_new
    kwargs.update(settings)
    record.update({key: value for key, value in settings.items() if _jsonable(value)})
    return kwargs, record


# setting -> (lowest, highest, lowest allowed?) ; None = no bound
SAMPLING_RANGES = {
    "temperature": (0.0, None, True),
    "top_p": (0.0, 1.0, False),
    "min_p": (0.0, 1.0, True),
    "top_k": (0, None, True),
    "repetition_penalty": (0.0, None, False),
}


def check_sampling_settings(settings: dict[str, Any]) -> None:
    """Out-of-range sampling settings are errors (a negative temperature used to act as greedy)."""
    import math

    for key, (low, high, low_ok) in SAMPLING_RANGES.items():
        value = settings.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise GenerationError(f"{key} must be a number, got {value!r}")
        if key == "top_k" and not isinstance(value, int):
            raise GenerationError(f"top_k must be an integer >= 0, got {value!r}")
        if value < low or (value == low and not low_ok) or (high is not None and value > high):
            interval = (
                f"{'[' if low_ok else '('}{low}, {high if high is not None else 'inf'}{']' if high else ')'}"
            )
            raise GenerationError(f"{key} must be in {interval}, got {value}")


def check_new_tokens(max_new: Any, min_new: Any) -> None:
    """Refuse (GenerationError) a max_new_tokens that is not an integer >= 1, or a min_new_tokens outside
    0..max_new_tokens; the decoders and the experiment's YAML check share it."""
    if not isinstance(max_new, int) or isinstance(max_new, bool) or max_new < 1:
        raise GenerationError(f"max_new_tokens must be an integer >= 1, got {max_new!r}")
    if min_new is not None and (not isinstance(min_new, int) or not 0 <= min_new <= max_new):
        raise GenerationError(
            f"min_new_tokens must be an integer in 0..max_new_tokens={max_new}, got {min_new!r}"
        )


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


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
        kwargs["position_ids"] = position_ids[:, -ids.shape[1] :]
    if cache is not None:
        kwargs["cache"] = cache  # transformers 5's name; `past_key_values` is deprecated
    if _accepts(model, "logits_to_keep"):
        kwargs["logits_to_keep"] = 1
    with torch.no_grad():
        out = model(**kwargs)
    return out.logits[:, -1, :], getattr(out, "cache", None) if use_cache else None


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
    groups = [prompts[i : i + group_size] for i in range(0, len(prompts), group_size)]
    prefix_lengths = [common_prefix_length(group) for group in groups]
    wanted = shared_prefix is not False and group_size > 1 and min(prefix_lengths) >= MIN_SHARED_PREFIX
    if wanted and not getattr(model.config, "is_encoder_decoder", False):
        out = _generate_shared(model, groups, prefix_lengths, gen_kwargs, pad)
        if out is not None:
            return out, "shared_prefix"
    if shared_prefix:
        logger.warning(
            "shared-prefix generation does not apply here (prefix too short or no repeatable cache)"
        )
    ids, mask = pad_left(prompts, pad, model_device(model))
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, **gen_kwargs)
    return out[:, ids.shape[1] :], "plain"


def _generate_shared(
    model: Any, groups: list, prefix_lengths: list[int], gen_kwargs: dict[str, Any], pad: int
) -> torch.Tensor | None:
    """Prefill each group's prefix once, repeat its cache to the group's rows, generate the suffixes.

    Rows are laid out [left pad | prefix | middle pad | suffix]; the pads are masked out. None when the model's
    cache cannot be repeated along the batch (the caller then takes the plain path).
    """
    device = model_device(model)
    prefixes = [group[0][:length] for group, length in zip(groups, prefix_lengths, strict=True)]
    prefix_ids, prefix_mask = pad_left(prefixes, pad, device)
    _, cache = forward_last(model, prefix_ids, prefix_mask)
    size = len(groups[0])
    if not expand_cache(cache, torch.arange(len(groups), device=device).repeat_interleave(size)):
        return None
    suffixes = [row[length:] for group, length in zip(groups, prefix_lengths, strict=True) for row in group]
    suffix_ids, suffix_mask = pad_left(suffixes, pad, device)
    ids = torch.cat([prefix_ids.repeat_interleave(size, dim=0), suffix_ids], dim=1)
    mask = torch.cat([prefix_mask.repeat_interleave(size, dim=0), suffix_mask], dim=1)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, cache=cache, **gen_kwargs)
    return out[:, ids.shape[1] :]


def decode_rows(
    tokenizer: Any, rows: torch.Tensor | Sequence[Sequence[int]], eos_ids: Sequence[int]
) -> tuple[list[str], list[int]]:
    """(texts, token counts) of generated rows, each cut at its first end-of-sequence token."""
    texts, counts = [], []
    for row in rows:
        tokens = row.tolist() if isinstance(row, torch.Tensor) else list(row)
        end = next((i for i, tok in enumerate(tokens) if tok in eos_ids), len(tokens))
        texts.append(tokenizer.decode(tokens[:end], skip_special_tokens=True))
        counts.append(end)
    return texts, counts
