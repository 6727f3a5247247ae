"""The one JSONL reader: every file of records this package reads (one-to-many data, responses, build folders,
transcripts, labelled snippets) goes through `read_jsonl`, so a bad line is always one error naming file:line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from peft_diversity.errors import PeftDiversityError


def read_jsonl(
    path: str | os.PathLike,
    *,
    error: type[Exception] = PeftDiversityError,
    complete_only: bool = False,
    hint: str = "",
) -> Iterator[tuple[int, Any]]:
    """(line number, value) for every non-blank line of `path`.

    A missing or unreadable file, a line that is not UTF-8 or not JSON raises `error` naming `path:line`, with
    `hint` appended. `complete_only` ignores a last line without its newline (a writer killed mid-line).
    """
    suffix = f"; {hint}" if hint else ""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as err:
        raise error(f"{path}: cannot read ({err.strerror or err})") from None
    lines = data.split(b"\n")
    if complete_only:
        lines = lines[:-1]  # after the last newline: empty, or a torn line
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise error(
                f"{path}:{lineno}: line is not valid UTF-8 ({err.reason}); save the file as UTF-8{suffix}"
            ) from None
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise error(f"{path}:{lineno}: not valid JSON ({err.msg}){suffix}") from None
        yield lineno, value
