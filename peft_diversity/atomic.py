"""Atomic outputs: write beside the target, then rename, so a crash never leaves a half-written result.

`check_output` is THE check every subcommand runs on its output flags before any work; `atomic_path`,
`atomic_write_text` and `atomic_directory` write so that a failed or killed write leaves the old output whole.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from peft_diversity.errors import OutputPathError

TEMP_DIR_TAG = ".partial-"  # `.<name>.partial-<host>-<pid>-<random>`: whose temp folder it is, found by name


def check_output(
    path: str | os.PathLike,
    flag: str,
    *,
    folder: bool = False,
    inputs: Iterable[str | os.PathLike | None] = (),
) -> Path:
    """Refuse (OutputPathError, one line naming `flag` and `path`) an output that cannot be written or would
    destroy an input: a folder given as a file or a file as a folder, a path under an existing file, a folder
    that cannot be written, or a file that is one of `inputs` (any spelling, symlink or hard link of it)."""
    path = Path(path)
    where = f"{flag} {path}"
    if folder and (path.exists() and not path.is_dir()):
        raise OutputPathError(f"{where}: is a file, not a folder; give a folder path")
    if not folder and path.is_dir():
        raise OutputPathError(f"{where}: is a folder; give a file path")
    for source in inputs:
        if source is not None and path.exists() and Path(source).exists() and os.path.samefile(path, source):
            raise OutputPathError(
                f"{where}: is the input file {source}; writing it would replace the input, give another path"
            )
    existing = path if path.is_dir() else next(p for p in path.absolute().parents if p.exists())
    if not existing.is_dir():
        raise OutputPathError(f"{where}: {existing} is a file, so nothing can be written under it")
    if not _can_create_in(existing):
        raise OutputPathError(f"{where}: cannot write in {existing} (read-only or no permission)")
    return path


def _can_create_in(folder: Path) -> bool:
    # a real probe, not os.access: root passes os.access on read-only mounts and sysfs
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".peft-diversity-probe-"):
            return True
    except OSError:
        return False


@contextmanager
def output_errors(flag: str, path: str | os.PathLike) -> Iterator[None]:
    """Turn an OSError while writing an output (disk full, quota, I/O error) into one OutputPathError line."""
    try:
        yield
    except OSError as err:
        reason = err.strerror or str(err)
        raise OutputPathError(
            f"{flag} {path}: writing failed ({reason}); an earlier file there is unchanged"
        ) from err


@contextmanager
def atomic_directory(target: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temp folder beside `target`; on success it replaces `target` (keeping its permission bits;
    a new folder gets the umask's), on error it is removed and `target` is untouched.

    The temp folder's name records host and pid: a SIGKILL leaves it behind, so each call first removes the temp
    folders of `target` whose process on this host is gone.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_dirs(target)
    tmp = _make_temp_dir(target)
    try:
        yield tmp
        os.chmod(tmp, _mode_for(target, 0o777))  # the replaced folder's bits, else the umask's
        _replace_directory(tmp, target)
        _fsync(target.parent, directory=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _replace_directory(new: Path, target: Path) -> None:
    """Move `target` aside, move `new` in, then delete the old one; if the move in fails the old one returns."""
    if not (target.exists() or target.is_symlink()):
        os.replace(new, target)
        return
    aside = new.with_name(f"{new.name}.old")  # new's name is unique (mkdtemp), so is this
    os.replace(target, aside)
    try:
        os.replace(new, target)
    except OSError:
        os.replace(aside, target)
        raise
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        aside.unlink(missing_ok=True)


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
    """Yield a fresh temp path beside `path` (same suffix, so writers that go by it still work; a unique name, so
    threads and processes never share one); on success it is fsynced and renamed over `path` (keeping an old
    file's permission bits; a new file gets the umask's), on error it is removed and `path` is untouched.

    A symlink at `path` is written through, as `open(path, "w")` would."""
    path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _mode_for(path, 0o666))  # mkstemp makes 0600
        _fsync(tmp)  # the data is on disk before the name points at it
        os.replace(tmp, path)
        _fsync(path.parent, directory=True)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_figure(path: str | os.PathLike, **subplots: Any) -> Iterator[tuple[Any, Any]]:
    """Yield `(fig, axes)` of `matplotlib.pyplot.subplots(**subplots)` (Agg backend: no display needed); on success
    the figure is laid out and saved to `path` through `atomic_path`. The figure is closed either way."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(**subplots)
    try:
        yield fig, axes
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp)
    finally:
        plt.close(fig)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` through a temp file in the same folder and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _mode_for(target: Path, default: int) -> int:
    """The permission bits an output at `target` gets: the old one's, else `default` less the umask."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        return default & ~_umask()


def _umask() -> int:
    try:  # Linux reports it without changing it
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync(path: Path, directory: bool = False) -> None:
    """fsync a file (errors raise: the data may not be on disk); a folder's fsync is best effort (not every
    platform or file system allows one)."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        handle = os.open(path, flags)
    except OSError:
        if directory:
            return
        raise
    try:
        os.fsync(handle)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(handle)
