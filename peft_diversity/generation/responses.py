"""The result of every decoder: `Responses` (K texts for one context) and its JSONL round trip."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from peft_diversity.atomic import atomic_path
from peft_diversity.errors import GenerationError
from peft_diversity.jsonl import read_jsonl

logger = logging.getLogger(__name__)


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
        order = (
            "context",
            "responses",
            "decoder",
            "model",
            "possibilities",
            "wall_time_s",
            "num_tokens",
            "settings",
            "id",
            "parse_failures",
        )
        return {key: data[key] for key in order}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Responses:
        data = dict(data)
        data["texts"] = data.pop("responses")
        return cls(**data)


def write_responses_jsonl(results: Iterable[Responses], path: str | os.PathLike) -> Path:
    """Write one JSON line per context (responses.jsonl), streamed into a temp file renamed over `path` at the
    end: a failed or killed write leaves an earlier file whole."""
    path = Path(path)
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for result in results:
            handle.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
    return path


def read_responses_jsonl(path: str | os.PathLike) -> list[Responses]:
    """Read a responses.jsonl back."""
    return [Responses.from_dict(row) for _, row in read_jsonl(path, error=GenerationError)]
