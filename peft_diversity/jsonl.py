"""THE reader and writer of JSON and JSONL files.

Every file of records this package reads (one-to-many data, responses, build folders, transcripts, labelled
snippets) goes through `read_jsonl`, and every settings / results / report JSON file through `read_json`, so a bad
file is always one error naming file:line. `write_json` writes a JSON file atomically (`atomic.atomic_write_text`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from peft_diversity.atomic import atomic_write_text
from peft_diversity.errors import PeftDiversityError

_REQUIRED: Any = object()
_KIND_NAMES = {dict: "object", list: "list"}


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


def read_json(
    path: str | os.PathLike,
    *,
    error: type[Exception] = PeftDiversityError,
    hint: str = "",
    missing: Any = _REQUIRED,
    kind: type | None = None,
) -> Any:
    """The value of the JSON file `path`.

    A missing file gives `missing` when one is given, else raises `error`; an unreadable file, text that is not
    UTF-8 or not JSON, or (with `kind`) a value that is not a `kind` raises `error`: one line naming `path` (and
    the line of a JSON error), with `hint` appended.
    """
    suffix = f"; {hint}" if hint else ""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        if missing is not _REQUIRED:
            return missing
        raise error(f"{path}: no such file{suffix}") from None
    except OSError as err:
        raise error(f"{path}: cannot read ({err.strerror or err}){suffix}") from None
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise error(f"{path}: not valid UTF-8 ({err.reason} at byte {err.start}){suffix}") from None
    except json.JSONDecodeError as err:
        raise error(f"{path}:{err.lineno}: not valid JSON ({err.msg}, column {err.colno}){suffix}") from None
    if kind is not None and not isinstance(value, kind):
        name = _KIND_NAMES.get(kind, kind.__name__)
        raise error(f"{path}: not a JSON {name} (got {type(value).__name__}){suffix}")
    return value


def write_json(path: str | os.PathLike, data: Any, *, default: Callable[[Any], Any] | None = None) -> Path:
    """Write `data` to `path` as indented UTF-8 JSON, atomically (the old file stays whole when this fails).

    A value JSON cannot hold raises TypeError before anything is written, unless `default` converts it (as
    `json.dumps`); a string holding a lone surrogate (not valid Unicode) is kept, escaped as \\udXXXX."""
    try:
        text = json.dumps(data, indent=2, ensure_ascii=False, default=default) + "\n"
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(data, indent=2, default=default) + "\n"
    return atomic_write_text(path, text)
