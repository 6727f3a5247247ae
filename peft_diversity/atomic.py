"""Atomic outputs: write beside the target, then rename, so a crash never leaves a half-written result."""

from __future__ import annotations

import glob
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_DIR_TAG = ".partial-"  # `.<name>.partial-<host>-<pid>-<random>`: whose temp folder it is, found by name


@contextmanager
def atomic_directory(target: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temp folder beside `target`; on success it replaces `target`, on error it is removed.

    The temp folder is made with `mkdir` (umask-derived mode, like any folder the user makes; `mkdtemp`'s 0o700
    would follow the renamed result), and its name records host and pid: a SIGKILL leaves it behind, so each
    call first removes the temp folders of `target` whose process on this host is gone.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_dirs(target)
    tmp = _make_temp_dir(target)
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _host() -> str:
    import socket

    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname()) or "host"


def _make_temp_dir(target: Path) -> Path:
    for _ in range(100):
        tmp = target.with_name(f".{target.name}{TEMP_DIR_TAG}{_host()}-{os.getpid()}-{os.urandom(4).hex()}")
        try:
            tmp.mkdir()
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temp folder name beside {target}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temp_dirs(target: str | os.PathLike) -> list[Path]:
    """Remove the temp folders `atomic_directory(target)` left behind when killed: those whose process, on this
    host, is gone (another host's, or a live process's, are left alone). Returns the removed folders."""
    target = Path(target)
    pattern = re.compile(re.escape(f".{target.name}{TEMP_DIR_TAG}{_host()}-") + r"(\d+)-[0-9a-f]+$")
    removed = []
    for path in target.parent.glob(f".{glob.escape(target.name)}{TEMP_DIR_TAG}*"):
        found = pattern.match(path.name)
        if found and path.is_dir() and not path.is_symlink() and not _pid_alive(int(found.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path` (same suffix, so writers that go by it still work); on success it
    replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` through a temp file in the same folder and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
