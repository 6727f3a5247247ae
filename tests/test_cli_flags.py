"""The command line's shared conventions (peft_diversity/cli.py): one logging set-up for every subcommand, one flag
name per concept (TRL's where it has one, `_` and `-` alike), old spellings refused with a one-line hint.

Each case runs `python -m peft_diversity.cli` in a subprocess (offline), as a user would.
"""

from __future__ import annotations

import argparse
import dataclasses
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
    (args,) = cli.parse_command(cli.make_command_parser(command), argv)
    assert {key: getattr(args, key) for key in expected} == expected


# ----- dataclass-based commands: every flag is a field, `--config FILE.yaml` sets any of them ---------------------
COMMANDS = [name for name in cli.SUBCOMMANDS if name != "train"]  # train's dataclasses are TRL's own


@pytest.mark.parametrize("command", COMMANDS)
def test_every_flag_of_a_command_is_a_documented_field_of_its_dataclass(command):
    parser = cli.make_command_parser(command)
    (arguments,) = parser.dataclass_types
    fields = {f.name: f for f in dataclasses.fields(arguments)}
    flags = {
        a.dest
        for a in parser._actions
        if a.option_strings and a.dest not in ("help", argparse.SUPPRESS) and not isinstance(a, cli._Renamed)
    }
    assert flags == set(fields)
    undocumented = [name for name, f in fields.items() if not f.metadata.get("help", "").strip()]
    assert undocumented == []


def test_a_config_file_sets_a_commands_flags_and_a_flag_given_after_it_wins(tmp_path):
    config = tmp_path / "bias.yaml"
    config.write_text("num_conversations: 7\nmodels: [a=m1, b=m2]\nrecap: false\nseed: 3\n", encoding="utf-8")
    (args,) = cli.parse_command(cli.make_command_parser("bias"), ["--config", str(config), "--seed", "5"])
    assert (args.num_conversations, args.models, args.recap, args.seed) == (7, ["a=m1", "b=m2"], False, 5)
    # a required flag may come from the file
    config = tmp_path / "push.yaml"
    config.write_text("repo_id: alice/x\nmetric: vendi\n", encoding="utf-8")
    (args,) = cli.parse_command(cli.make_command_parser("push"), ["--config", str(config)])
    assert (args.repo_id, args.metric, args.public) == ("alice/x", "vendi", False)


@pytest.mark.parametrize(
    ("command", "yaml_text", "message"),
    [
        # the file itself: a misspelt key, an old name, not a mapping, not YAML
        (
            "bias",
            "num_conversatons: 7\n",
            "unknown key(s) num_conversatons (misspelled or not a setting; see ",
        ),
        ("bias", "out: runs/x\n", "unknown key(s) out (out was renamed output_dir)"),
        ("bias", "- a\n- b\n", "a config file must be a mapping of setting: value"),
        ("bias", "num_conversations: [\n", "not valid YAML"),
        # values are checked as the flag's would be, before they become defaults (they used to reach the command
        # raw: a string where a list belongs was split into letters; a float where an int belongs, a traceback)
        ("score", "max_order: 2.5\n", "max_order: invalid value 2.5"),
        ("score", "output: true\n", "output: true is not a value of this setting"),
        ("score", "smoothing: bogus\n", "smoothing: 'bogus' is not one of ['none', 'method1'"),
        ("score", "metrics: [distinct_n, vibes]\n", "metrics: 'vibes' is not one of"),
        (
            "bias",
            "possibility_per: sometimes\n",
            "possibility_per: 'sometimes' is not one of ['turn', 'conversation']",
        ),
        # a structure where one value belongs, null for a setting that cannot be unset, YAML's `no` (a bool) on a
        # flag with choices, an empty list (found by review: each reached the command and ended in a traceback)
        ("score", "max_order: [3]\n", "max_order: expected a single value, got list [3]"),
        ("score", "metrics: [[distinct_n]]\n", "metrics: expected a single value"),
        ("score", "max_order: null\n", "max_order: needs a value (null is not one)"),
        ("score", "smoothing: no\n", "smoothing: false is not a value of this setting"),
        ("bias", "models: []\n", "models: needs at least one value"),
        ("score", "max-order: 2\nmax_order: 3\n", "max_order is given twice"),
        # an old key is named before the required flag it leaves unset
        (
            "generate",
            "model: m\ncontext: hi\n",
            "unknown key(s) model (model was renamed model_name_or_path)",
        ),
    ],
)
def test_a_bad_config_file_or_value_is_one_line_naming_the_file_and_key(
    tmp_path, capsys, command, yaml_text, message
):
    config = tmp_path / "c.yaml"
    config.write_text(yaml_text, encoding="utf-8")
    assert cli.main([command, "--config", str(config)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"peft-diversity {command}: {config}: ") and message in line, line


def test_config_values_take_the_flags_types_and_a_single_value_fills_a_list(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "metrics: distinct_n\nmax-order: '3'\noutput: s.json\nembedder: null\nenv:\n", encoding="utf-8"
    )
    (args,) = cli.parse_command(cli.make_command_parser("score"), [f"--config={config}", "r.jsonl"])
    assert (args.metrics, args.max_order, args.output, args.embedder) == (
        ["distinct_n"],
        3,
        Path("s.json"),
        None,
    )


def test_config_twice_or_without_a_file_is_one_line(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("seed: 1\n", encoding="utf-8")
    for argv, message in [
        (["bias", "--config", str(config), f"--config={config}"], "--config given 2 times"),
        (["bias", "--config"], "--config needs a YAML file"),
    ]:
        assert cli.main(argv) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert message in line, line


def test_argparse_errors_are_one_line_too(capsys):
    for argv, message in [
        (["generate", "--context", "hi"], "the following arguments are required: --model_name_or_path"),
        (
            ["generate", "--model-name-or-path", "m", "--context", "hi", "--num-responses", "abc"],
            "invalid int value",
        ),
        (["score", "r.jsonl", "--smoothing", "bogus"], "invalid choice: 'bogus'"),
    ]:
        with pytest.raises(SystemExit) as stop:
            cli.main(argv)
        assert stop.value.code == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith(f"peft-diversity {argv[0]}: ") and message in line, line


def test_a_missing_config_file_a_stray_flag_and_conflicting_flags_are_one_line_each(tmp_path, capsys):
    cases = [
        (["bias", "--config", str(tmp_path / "nope.yaml")], "--config: file not found: "),
        (["generate", "--model-name-or-path", "m", "--contxt", "hi"], "unrecognized arguments: --contxt hi"),
        (
            ["generate", "--model-name-or-path", "m", "--context", "hi", "--prompt", "x"],
            "give exactly one of --context, --prompt or --input (got --context, --prompt)",
        ),
        (
            ["push", "--repo-id", "a/b"],
            "give exactly one of --model-name-or-path, --dataset-name or --metric",
        ),
    ]
    for argv, message in cases:
        assert cli.main(argv) == 2, argv
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith(f"peft-diversity {argv[0]}: ") and message in line, line


def test_score_takes_the_responses_file_as_a_positional_a_flag_or_a_config_key(tmp_path):
    parser = cli.make_command_parser("score")
    assert cli.parse_command(parser, ["r.jsonl"])[0].responses == Path("r.jsonl")
    assert cli.parse_command(cli.make_command_parser("score"), ["--responses", "q.jsonl"])[
        0
    ].responses == Path("q.jsonl")
    config = tmp_path / "score.yaml"
    config.write_text("responses: y.jsonl\nmetrics: [distinct_n]\n", encoding="utf-8")
    (args,) = cli.parse_command(cli.make_command_parser("score"), ["--config", str(config)])
    assert (args.responses, args.metrics) == (Path("y.jsonl"), ["distinct_n"])
    assert cli.parse_command(cli.make_command_parser("score"), [])[0].responses is None


def test_a_commands_help_lists_its_fields_and_the_config_flag(capsys):
    assert cli.main(["generate", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--model_name_or_path MODEL_NAME_OR_PATH, --model-name-or-path" in out
    assert "--no_shared_prefix, --no-shared-prefix" in out and "--config FILE.yaml" in out


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
