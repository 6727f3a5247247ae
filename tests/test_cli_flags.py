"""The command line's shared conventions (peft_diversity/cli.py): one logging set-up for every subcommand, one flag
name per concept (TRL's where it has one, `_` and `-` alike), old spellings refused with a one-line hint.

Each case runs `python -m peft_diversity.cli` in a subprocess (offline), as a user would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def run_cli(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "peft_diversity.cli", *argv], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def test_a_subcommand_without_its_own_logging_set_up_logs_through_the_shared_one(tmp_path):
    # build-data never configured logging: its warning came out bare (logging's last-resort handler); now every
    # subcommand's log lines carry the one format (time, logger name) at INFO and above
    proc = run_cli(["build-data", "--input", "nobody/no-such", "--output", str(tmp_path / "out")], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert re.search(r"^\d{4}-\d\d-\d\d [\d:,]+ peft_diversity\.builder\.inputs: nobody/no-such is not a local file",
                     proc.stderr, re.M), proc.stderr
