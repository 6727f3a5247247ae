"""Output flags of every subcommand: checked before any work (one line naming the flag and path, exit 2), never
the input file, and written so that a killed or disk-full write leaves the earlier file whole.

Each case runs `python -m peft_diversity.cli` in a subprocess (offline), as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
RESPONSES = b'{"context": "a", "responses": ["the cat sat", "a dog ran off", "birds sing"]}\n' * 3
OLD = b'{"old": "an earlier result"}\n' * 50
MISSING_MODEL = (
    "nobody/no-such-model"  # offline: loading it fails, so a check that runs first is the one seen
)


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_TOKEN": "hf_fake_for_tests",
        "PYTHONWARNINGS": "ignore",
        "PYTHONPATH": str(ROOT),
    }


def _cli(argv: list, cwd: Path, prelude: str = "", **env: str) -> subprocess.CompletedProcess:
    """`peft-diversity ARGV`, after `prelude` (Python run first in the same process, to break a write)."""
    code = f"import sys\n{prelude}\nfrom peft_diversity.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, argv)],
        capture_output=True,
        text=True,
        env={**_env(), **env},
        cwd=cwd,
        timeout=300,
    )


def _one_line(proc: subprocess.CompletedProcess, command: str, *expected: str) -> str:
    err = proc.stderr
    assert "Traceback" not in err, err
    assert proc.returncode == 2, (proc.returncode, err)
    lines = [line for line in err.splitlines() if line.startswith(f"peft-diversity {command}:")]
    assert len(lines) == 1, err
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def _can_create_in(folder: Path) -> bool:
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


@pytest.fixture
def readonly(tmp_path) -> Path:
    """A folder nobody may write in: chmod 555, or (as root, who ignores modes) /sys when it refuses writes."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    if _can_create_in(folder):
        folder.chmod(0o755)
        folder = Path("/sys")
        if not folder.is_dir() or _can_create_in(folder):
            pytest.skip("no folder here refuses writes to this user")
    yield folder
    if folder != Path("/sys"):
        folder.chmod(0o755)


@pytest.fixture
def work(tmp_path) -> Path:
    (tmp_path / "responses.jsonl").write_bytes(RESPONSES)
    (tmp_path / "a_file.txt").write_text("keep me")
    (tmp_path / "a_folder").mkdir()
    return tmp_path


# ----- the input as the output ---------------------------------------------------------------------------------
def _same_file(work: Path, how: str) -> str:
    source = work / "responses.jsonl"
    if how == "same":
        return str(source)
    if how == "spelling":
        return f"{work}/a_folder/../responses.jsonl"
    alias = work / f"{how}.jsonl"
    alias.symlink_to(source) if how == "symlink" else os.link(source, alias)
    return str(alias)


@pytest.mark.parametrize("how", ["same", "spelling", "symlink", "hardlink"])
def test_score_refuses_its_input_as_output(work, how):
    output = _same_file(work, how)
    proc = _cli(["score", work / "responses.jsonl", "--metrics", "distinct_n", "--output", output], cwd=work)
    _one_line(proc, "score", "--output", output, "input")
    assert (work / "responses.jsonl").read_bytes() == RESPONSES


@pytest.mark.parametrize("how", ["same", "symlink"])
def test_generate_refuses_its_input_as_output(work, how):
    (work / "records.jsonl").write_bytes(b'{"context": "Maya: hi"}\n')
    records = (work / "records.jsonl").read_bytes()
    output = str(work / "records.jsonl")
    if how == "symlink":
        (work / "alias.jsonl").symlink_to(work / "records.jsonl")
        output = str(work / "alias.jsonl")
    proc = _cli(
        [
            "generate",
            "--model-name-or-path",
            MISSING_MODEL,
            "--input",
            work / "records.jsonl",
            "--output",
            output,
        ],
        cwd=work,
    )
    _one_line(proc, "generate", "--output", output, "input")
    assert (work / "records.jsonl").read_bytes() == records


# ----- output paths that cannot be written, checked before any work ------------------------------------------
def _file_output(work: Path, readonly: Path, kind: str) -> str:
    return {
        "folder": str(work / "a_folder"),
        "under-a-file": str(work / "a_file.txt" / "out.json"),
        "read-only": str(readonly / "out.json"),
    }[kind]


def _folder_output(work: Path, readonly: Path, kind: str) -> str:
    return {
        "file": str(work / "a_file.txt"),
        "under-a-file": str(work / "a_file.txt" / "run"),
        "read-only": str(readonly / "run"),
    }[kind]


FILE_CASES = {  # command -> argv given the output
    "score": lambda work, out: [
        "score",
        work / "responses.jsonl",
        "--metrics",
        "distinct_n",
        "--output",
        out,
    ],
    "generate": lambda work, out: [
        "generate",
        "--model-name-or-path",
        MISSING_MODEL,
        "--context",
        "hi",
        "--output",
        out,
    ],
}
FOLDER_CASES = {  # (command, flag) -> argv given the output; each would fail differently if it ran first
    ("demo", "--output-dir"): lambda work, out: ["demo", "--output-dir", out],
    ("train", "output_dir"): lambda work, out: [
        "train",
        "--model_name_or_path",
        MISSING_MODEL,
        "--dataset_name",
        work / "missing.jsonl",
        "--output_dir",
        out,
    ],
    ("bias", "--output-dir"): lambda work, out: ["bias", "--models", work / "no-model", "--output-dir", out],
    ("build-data", "--output-dir"): lambda work, out: [
        "build-data",
        "--input",
        work / "missing.jsonl",
        "--output-dir",
        out,
    ],
    ("push", "--save-only"): lambda work, out: [
        "push",
        "--model-name-or-path",
        work / "no-model",
        "--repo-id",
        "alice/x",
        "--save-only",
        out,
    ],
}


@pytest.mark.parametrize("kind", ["folder", "under-a-file", "read-only"])
@pytest.mark.parametrize("command", list(FILE_CASES))
def test_file_outputs_are_checked_first(work, readonly, command, kind):
    output = _file_output(work, readonly, kind)
    proc = _cli(FILE_CASES[command](work, output), cwd=work)
    _one_line(proc, command, "--output", output)
    assert (work / "a_file.txt").read_text() == "keep me"


# every command with a file as its folder; the other kinds where the command starts fast (train imports TRL: 10 s)
FOLDER_KINDS = [
    (case, kind)
    for case in FOLDER_CASES
    for kind in ("file", "under-a-file", "read-only")
    if kind == "file" or case[0] != "train"
]


@pytest.mark.parametrize(("case", "kind"), FOLDER_KINDS, ids=[f"{c[0]}-{k}" for c, k in FOLDER_KINDS])
def test_folder_outputs_are_checked_first(work, readonly, case, kind):
    command, flag = case
    output = _folder_output(work, readonly, kind)
    proc = _cli(FOLDER_CASES[case](work, output), cwd=work)
    _one_line(proc, command, flag, output)
    assert (work / "a_file.txt").read_text() == "keep me"


# ----- a write that dies midway leaves the earlier file ---------------------------------------------------------
# The output's writer writes half, then the process is killed (SIGKILL) or the disk is full (ENOSPC).
SCORE_WRITE_DIES = """
import errno, os, signal
from pathlib import Path
real = Path.write_text
def half(self, data, *args, **kwargs):
    if self.parent != Path(os.environ["OUT_DIR"]):
        return real(self, data, *args, **kwargs)
    with open(self, "w", encoding="utf-8") as handle:
        handle.write(data[: len(data) // 2])
        handle.flush()
    if os.environ["HOW"] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
Path.write_text = half
"""
# generate streams rows: the second row never comes
GENERATE_WRITE_DIES = """
import errno, os, signal
from peft_diversity.generation.responses import Responses
real, calls = Responses.to_dict, []
def dying(self):
    calls.append(1)
    if len(calls) == 2:
        if os.environ["HOW"] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real(self)
Responses.to_dict = dying
"""


@pytest.mark.parametrize("how", ["kill", "disk-full"])
def test_score_output_survives_a_dying_write(work, how):
    output = work / "out" / "scores.json"
    output.parent.mkdir()
    output.write_bytes(OLD)
    proc = _cli(
        ["score", work / "responses.jsonl", "--metrics", "distinct_n", "--output", output],
        cwd=work,
        prelude=SCORE_WRITE_DIES,
        OUT_DIR=str(output.parent),
        HOW=how,
    )
    if how == "kill":
        assert proc.returncode == -9, proc.stderr
    else:
        _one_line(proc, "score", "--output", str(output), "No space left")
    assert output.read_bytes() == OLD


@pytest.mark.parametrize("how", ["kill", "disk-full"])
def test_generate_output_survives_a_dying_write(work, tiny_dir, how):
    (work / "records.jsonl").write_text(
        "".join(json.dumps({"context": f"Maya: hello {i}"}) + "\n" for i in range(3))
    )
    output = work / "responses-old.jsonl"
    output.write_bytes(OLD)
    proc = _cli(
        [
            "generate",
            "--model-name-or-path",
            tiny_dir,
            "--input",
            work / "records.jsonl",
            "--output",
            output,
            "--num-responses",
            "2",
            "--decoder",
            "sampling",
            "--max-new-tokens",
            "3",
        ],
        cwd=work,
        prelude=GENERATE_WRITE_DIES,
        HOW=how,
    )
    if how == "kill":
        assert proc.returncode == -9, proc.stderr
    else:
        _one_line(proc, "generate", "--output", str(output), "No space left")
    assert output.read_bytes() == OLD
