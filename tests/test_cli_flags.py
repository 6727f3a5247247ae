"""The command line's shared conventions (peft_diversity/cli.py): one logging set-up for every subcommand, one flag
name per concept (TRL's where it has one, `_` and `-` alike), old spellings refused with a one-line hint.

Each case runs `python -m peft_diversity.cli` in a subprocess (offline), as a user would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from peft_diversity import cli

ROOT = Path(__file__).parents[1]


def run_cli(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "PYTHONWARNINGS": "ignore",
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "peft_diversity.cli", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def test_a_subcommand_without_its_own_logging_set_up_logs_through_the_shared_one(tmp_path):
    # build-data never configured logging: its warning came out bare (logging's last-resort handler); now every
    # subcommand's log lines carry the one format (time, logger name) at INFO and above
    proc = run_cli(
        ["build-data", "--input", "nobody/no-such", "--output-dir", str(tmp_path / "out")], tmp_path
    )
    assert proc.returncode == 2, proc.stderr
    assert re.search(
        r"^\d{4}-\d\d-\d\d [\d:,]+ peft_diversity\.builder\.inputs: nobody/no-such is not a local file",
        proc.stderr,
        re.M,
    ), proc.stderr


# every spelling a subcommand took before issue 22 that now has another name: (subcommand, old, new)
RENAMED = [
    ("generate", "--model", "--model-name-or-path"),
    ("generate", "-n", "--num-responses"),
    ("push", "--model-dir", "--model-name-or-path"),
    ("push", "--dataset-source", "--dataset-name"),
    ("build-data", "--teacher", "--model-name-or-path"),
    ("build-data", "--output", "--output-dir"),
    ("build-data", "-n", "--num-candidates"),
    ("bias", "--out", "--output-dir"),
    ("bias", "-n", "--num-conversations"),
    ("bias", "--n", "--num-conversations"),
    ("experiment", "--run-dir", "--output-dir"),
    ("demo", "--run-dir", "--output-dir"),
    ("score", "--judge-base-url", "--base-url"),
    ("score", "--judge-api-key-env", "--api-key-env"),
]


@pytest.mark.parametrize(("command", "old", "new"), RENAMED)
def test_an_old_spelling_is_refused_with_a_one_line_hint(command, old, new, capsys):
    # before any other check (the required flags are missing here too): the hint, not a usage dump
    with pytest.raises(SystemExit) as stop:
        cli.main([command, old, "x"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines() == [f"peft-diversity {command}: {old} was renamed {new}"]


def test_an_old_spelling_with_underscores_is_refused_too(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["experiment", "--config", "x.yaml", "--run_dir", "out"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "peft-diversity experiment: --run-dir was renamed --output-dir"
    ]


# the new spellings reach the same settings; TRL's own spelling (underscores) is taken as well
NEW_SPELLINGS = [
    (
        "generate",
        ["--model-name-or-path", "m", "--context", "hi", "--num-responses", "3"],
        {"model_name_or_path": "m", "num_responses": 3},
    ),
    (
        "generate",
        ["--model_name_or_path", "m", "--context", "hi", "--num_responses", "3", "--max_new_tokens", "4"],
        {"model_name_or_path": "m", "num_responses": 3, "max_new_tokens": 4},
    ),
    ("push", ["--model-name-or-path", "f", "--repo-id", "a/b"], {"model_name_or_path": "f"}),
    (
        "push",
        ["--dataset_name", "builtin:story", "--repo_id", "a/b"],
        {"dataset_name": "builtin:story", "repo_id": "a/b"},
    ),
    (
        "build-data",
        ["--input", "p.jsonl", "--output_dir", "o", "--model_name_or_path", "t", "--num_candidates", "4"],
        {"output_dir": Path("o"), "model_name_or_path": "t", "num_candidates": 4},
    ),
    (
        "bias",
        ["--output-dir", "o", "--num-conversations", "7"],
        {"output_dir": Path("o"), "num_conversations": 7},
    ),
    ("experiment", ["--config", "x.yaml", "--output_dir", "o"], {"output_dir": "o"}),
    ("demo", ["--output-dir", "o"], {"output_dir": "o"}),
    (
        "score",
        ["r.jsonl", "--base-url", "http://h/v1", "--api_key_env", "K"],
        {"base_url": "http://h/v1", "api_key_env": "K"},
    ),
]


@pytest.mark.parametrize(("command", "argv", "expected"), NEW_SPELLINGS)
def test_the_new_spellings_set_the_settings(command, argv, expected):
    args = cli.build_parser(only=command).parse_args(cli.dashed_flags([command, *argv]))
    assert {key: getattr(args, key) for key in expected} == expected


def test_dashed_flags_leaves_values_and_everything_after_double_dash_alone():
    argv = ["generate", "--model_name_or_path", "my_model", "--instruction=say_{input}", "--", "--not_a_flag"]
    assert cli.dashed_flags(argv) == [
        "generate",
        "--model-name-or-path",
        "my_model",
        "--instruction=say_{input}",
        "--",
        "--not_a_flag",
    ]


def test_generate_runs_with_trl_spelled_flags(tiny_dir, tmp_path):
    out = tmp_path / "responses.jsonl"
    code = cli.main(
        [
            "generate",
            "--model_name_or_path",
            str(tiny_dir),
            "--decoder",
            "sampling",
            "--context",
            "Ann: hi",
            "--num_responses",
            "2",
            "--max_new_tokens",
            "3",
            "--seed",
            "0",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    assert len(json.loads(out.read_text(encoding="utf-8").splitlines()[0])["responses"]) == 2
