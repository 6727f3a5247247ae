"""atomic.py: a failed, killed or disk-full write leaves the old file whole; temp names never collide; the
data is fsynced before the rename; permission bits are the old file's (or the umask's for a new one)."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from peft_diversity.atomic import atomic_directory, atomic_path, atomic_write_text
from peft_diversity.generation.responses import Responses, write_responses_jsonl

ROOT = Path(__file__).parents[1]
OLD = b'{"old": "an earlier result"}\n' * 100


def _old_file(tmp_path: Path, name: str = "out.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(OLD)
    return path


def _rows(n: int, fail_at: int | None = None, error: Exception | None = None):
    for i in range(n):
        if i == fail_at:
            raise error
        yield Responses(
            texts=[f"response {i}"] * 3,
            context=f"context {i}",
            decoder="sampling",
            num_tokens=[2, 2, 2],
            wall_time_s=0.1,
        )


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_writer_that_raises_midway_leaves_the_old_file(tmp_path):
    path = _old_file(tmp_path)
    with pytest.raises(RuntimeError, match="boom"):
        write_responses_jsonl(_rows(50, fail_at=30, error=RuntimeError("boom")), path)
    assert path.read_bytes() == OLD
    assert _leftovers(tmp_path) == []


def test_disk_full_midway_leaves_the_old_file(tmp_path):
    path = _old_file(tmp_path)
    disk_full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    with pytest.raises(OSError) as raised:
        write_responses_jsonl(_rows(50, fail_at=30, error=disk_full), path)
    assert raised.value.errno == errno.ENOSPC
    assert path.read_bytes() == OLD
    assert _leftovers(tmp_path) == []


def test_disk_full_at_fsync_leaves_the_old_file(tmp_path, monkeypatch):
    """Delayed allocation reports a full disk at fsync: the rename must not happen then."""
    path = _old_file(tmp_path, "results.json")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        atomic_write_text(path, '{"new": 1}')
    assert path.read_bytes() == OLD


KILL_MIDWAY = """
import os, signal, sys
from peft_diversity.generation.responses import Responses, write_responses_jsonl

def rows():
    for i in range(200):
        if i == 70:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)  # as a user's kill -9, mid-file
        yield Responses(texts=["x" * 500] * 3, context=f"context {i}", decoder="sampling", num_tokens=[1, 1, 1],
                        wall_time_s=0.1)

write_responses_jsonl(rows(), sys.argv[1])
"""


@pytest.mark.skipif(not hasattr(os, "kill") or sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_midway_leaves_the_old_file(tmp_path):
    path = _old_file(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", KILL_MIDWAY, str(path)],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == -9, proc.stderr.decode()
    assert path.read_bytes() == OLD


def test_threads_writing_one_target_never_share_a_temp_file(tmp_path):
    target = tmp_path / "results.json"
    texts = [f"thread {i}\n" * 1000 for i in range(6)]
    all_inside = threading.Barrier(len(texts))
    errors = []

    def write(text: str) -> None:
        try:
            with atomic_path(target) as tmp:
                tmp.write_text(text)
                all_inside.wait(timeout=30)  # every thread holds its temp file before any renames
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=write, args=(text,)) for text in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert target.read_text() in texts  # one whole write, never a mix
    assert _leftovers(tmp_path) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names an fd through /proc")
def test_data_is_fsynced_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_write_text(tmp_path / "a.json", "{}")
    renamed = [i for i, event in enumerate(events) if event[0] == "replace"]
    assert len(renamed) == 1 and renamed[0] > 0
    assert events[renamed[0] - 1] == ("fsync", events[renamed[0]][1])  # the temp file itself, just before


def test_replacing_keeps_the_old_permission_bits(tmp_path):
    path = _old_file(tmp_path, "results.json")
    path.chmod(0o640)
    atomic_write_text(path, "{}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.read_text() == "{}"


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_a_new_file_and_folder_get_the_umask_mode(tmp_path, umask_022):
    path = atomic_write_text(tmp_path / "new.json", "{}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0600
    with atomic_directory(tmp_path / "upload") as folder:
        (folder / "a.txt").write_text("a")
    assert stat.S_IMODE((tmp_path / "upload").stat().st_mode) == 0o755  # not mkdtemp's 0700


def test_a_folder_write_that_fails_keeps_the_old_folder(tmp_path):
    target = tmp_path / "upload"
    target.mkdir()
    (target / "kept.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(target) as folder:
        (folder / "new.txt").write_text("half")
        raise RuntimeError("killed")
    assert sorted(p.name for p in target.iterdir()) == ["kept.txt"]
    assert _leftovers(tmp_path) == []


def test_a_failed_folder_swap_puts_the_old_folder_back(tmp_path, monkeypatch):
    target = tmp_path / "upload"
    target.mkdir()
    (target / "kept.txt").write_text("old")
    real_replace, calls = os.replace, []

    def replace(src, dst):  # the second rename (new folder into place) fails, as on a full or vanished disk
        calls.append(src)
        if len(calls) == 2:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError), atomic_directory(target) as folder:
        (folder / "new.txt").write_text("new")
    monkeypatch.undo()
    assert sorted(p.name for p in target.iterdir()) == ["kept.txt"]
    with atomic_directory(target) as folder:
        (folder / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert _leftovers(tmp_path) == []


def test_a_symlinked_output_is_written_through(tmp_path):
    real = _old_file(tmp_path, "real.json")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    atomic_write_text(link, "{}")
    assert link.is_symlink() and real.read_text() == "{}"


def test_atomic_figure_saves_on_success_and_leaves_nothing_when_drawing_fails(tmp_path):
    import matplotlib.pyplot as plt

    from peft_diversity.atomic import atomic_figure

    path = tmp_path / "plot.png"
    with atomic_figure(path, figsize=(2, 2), dpi=50) as (_, ax):
        ax.plot([0, 1], [1, 0])
    assert path.read_bytes().startswith(b"\x89PNG")
    before, open_figures = path.read_bytes(), plt.get_fignums()
    with pytest.raises(RuntimeError, match="drawing failed"), atomic_figure(path) as (_, ax):
        ax.plot([0, 1], [0, 1])
        raise RuntimeError("drawing failed")
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["plot.png"]
    assert plt.get_fignums() == open_figures  # closed either way
