"""Every subcommand on bad input: exit 2 and one line on stderr naming the problem, never a Python traceback.

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

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    files = {
        "non_utf8": b'{"context": "caf\xe9", "responses": ["a"]}\n',
        "broken_json": b'{"context": "a", "responses": ["x", \n',
        "wrong_schema": b'{"context": "a", "answers": ["x"]}\n',
        "empty": b"",
        "no_context": b'{"text": "hello"}\n',
        "bad_yaml": b"name: x\nruns: [a, b\nk: 3\n",
        "typo_recipe": (
            b"model_name_or_path: builtin:minilm-decoder\ndataset_name: builtin:dialogue\n"
            b"output_dir: OUT\nul_wieght: 0.3\n"
        ),
        "bad_csv": b"",
    }
    paths = {}
    for name, content in files.items():
        path = root / f"{name}.{'yaml' if 'yaml' in name or 'recipe' in name else 'jsonl'}"
        path.write_bytes(content.replace(b"OUT", str(root / "out").encode()))
        paths[name] = path
    paths["mine"] = root / "mine"
    paths["mine"].mkdir()
    (paths["mine"] / "notes.txt").write_text("keep me")
    paths["model"] = root / "model"
    paths["model"].mkdir()
    (paths["model"] / "config.json").write_text(json.dumps({"model_type": "llama"}))
    paths["killed"] = root / "killed"
    (paths["killed"] / "checkpoint-3").mkdir(parents=True)
    paths["pickled"] = root / "pickled"  # a model whose only weights are a pickle (torch.save)
    paths["pickled"].mkdir()
    (paths["pickled"] / "config.json").write_text(json.dumps({"model_type": "llama"}))
    import torch

    torch.save({"lm_head.weight": torch.zeros(2, 2)}, paths["pickled"] / "pytorch_model.bin")
    paths["responses"] = root / "responses.jsonl"
    paths["responses"].write_text('{"context": "a", "responses": ["x y", "z w"]}\n')
    paths["root"] = root
    return paths


CASES = {
    "score-missing": lambda b: ["score", str(b["root"] / "missing.jsonl")],
    "score-non-utf8": lambda b: ["score", str(b["non_utf8"])],
    "score-broken-json": lambda b: ["score", str(b["broken_json"])],
    "score-wrong-schema": lambda b: ["score", str(b["wrong_schema"])],
    "score-empty": lambda b: ["score", str(b["empty"])],
    "train-typo": lambda b: ["train", "--config", str(b["typo_recipe"])],
    "train-missing-recipe": lambda b: ["train", "--config", str(b["root"] / "nope.yaml")],
    "train-empty-data": lambda b: [
        "train",
        "--model_name_or_path",
        "builtin:minilm-decoder",
        "--dataset_name",
        str(b["empty"]),
        "--output_dir",
        str(b["root"] / "o1"),
    ],
    "train-bad-ul-weight": lambda b: [
        "train",
        "--model_name_or_path",
        "builtin:minilm-decoder",
        "--dataset_name",
        "builtin:dialogue",
        "--output_dir",
        str(b["root"] / "o2"),
        "--ul_weight",
        "-1",
    ],
    "generate-non-utf8": lambda b: [
        "generate",
        "--model-name-or-path",
        "builtin:minilm-decoder",
        "--input",
        str(b["non_utf8"]),
    ],
    "generate-no-context": lambda b: [
        "generate",
        "--model-name-or-path",
        "builtin:minilm-decoder",
        "--input",
        str(b["no_context"]),
    ],
    "generate-not-a-model": lambda b: [
        "generate",
        "--model-name-or-path",
        str(b["killed"]),
        "--context",
        "hi",
    ],
    "generate-negative-temperature": lambda b: [
        "generate",
        "--model-name-or-path",
        "builtin:minilm-decoder",
        "--context",
        "hi",
        "--decoder",
        "sampling",
        "--temperature",
        "-1",
    ],
    "generate-offline-hub-model": lambda b: [
        "generate",
        "--model-name-or-path",
        "nobody/no-such-model",
        "--context",
        "hi",
    ],
    "generate-bad-dtype": lambda b: [
        "generate",
        "--model-name-or-path",
        "builtin:minilm-decoder",
        "--context",
        "hi",
        "--dtype",
        "float99",
    ],
    "generate-pickle-only-model": lambda b: [
        "generate",
        "--model-name-or-path",
        str(b["pickled"]),
        "--context",
        "hi",
    ],
    "score-missing-embedder": lambda b: [
        "score",
        str(b["responses"]),
        "--embedder",
        str(b["root"] / "no-embedder"),
    ],
    "score-embedder-is-a-file": lambda b: ["score", str(b["responses"]), "--embedder", str(b["responses"])],
    "score-offline-hub-embedder": lambda b: [
        "score",
        str(b["responses"]),
        "--embedder",
        "nobody/no-such-embedder",
    ],
    "experiment-bad-yaml": lambda b: ["experiment", "--config", str(b["bad_yaml"])],
    "experiment-missing": lambda b: ["experiment", "--config", str(b["root"] / "nope.yaml")],
    "push-save-only-over-my-folder": lambda b: [
        "push",
        "--model-name-or-path",
        str(b["model"]),
        "--repo-id",
        "alice/x",
        "--save-only",
        str(b["mine"]),
    ],
    "push-missing-model": lambda b: [
        "push",
        "--model-name-or-path",
        str(b["root"] / "nope"),
        "--repo-id",
        "alice/x",
        "--save-only",
        str(b["root"] / "up"),
    ],
    "push-bad-repo-id": lambda b: ["push", "--model-name-or-path", str(b["model"]), "--repo-id", "not an id"],
    "push-metric-save-only": lambda b: [
        "push",
        "--metric",
        "vendi",
        "--repo-id",
        "alice/vendi",
        "--save-only",
        str(b["root"] / "up-metric"),
    ],
    "push-split-outside": lambda b: [
        "push",
        "--dataset-name",
        "builtin:story",
        "--repo-id",
        "alice/s",
        "--save-only",
        str(b["root"] / "up-splits"),
        "--splits",
        "train,../../x",
    ],
    "push-pickle-only-model": lambda b: [
        "push",
        "--model-name-or-path",
        str(b["pickled"]),
        "--repo-id",
        "alice/x",
        "--save-only",
        str(b["root"] / "up-pickle"),
    ],
    "push-offline": lambda b: ["push", "--metric", "vendi", "--repo-id", "alice/vendi"],
    "build-data-missing-input": lambda b: [
        "build-data",
        "--input",
        str(b["root"] / "nope.jsonl"),
        "--output",
        str(b["root"] / "bd"),
    ],
    "build-data-empty-input": lambda b: [
        "build-data",
        "--input",
        str(b["empty"]),
        "--output",
        str(b["root"] / "bd2"),
    ],
    "bias-missing-model": lambda b: [
        "bias",
        "--models",
        str(b["root"] / "nope"),
        "--output-dir",
        str(b["root"] / "bias"),
    ],
    "bias-bad-reference": lambda b: [
        "bias",
        "--models",
        "builtin:minilm-decoder",
        "--reference",
        str(b["broken_json"]),
        "--output-dir",
        str(b["root"] / "bias2"),
    ],
}


# what the line must say, where a case was once a traceback or a wrong message (issue 19)
MESSAGES = {
    "generate-bad-dtype": r"--dtype 'float99' is not a torch dtype",
    "generate-pickle-only-model": r"pytorch_model\.bin: pickled weights; only safetensors",
    "score-missing-embedder": r"--embedder .*no-embedder: no such folder",
    "score-embedder-is-a-file": r"--embedder .*responses\.jsonl: a file, not a SentenceTransformer folder",
    "score-offline-hub-embedder": r"--embedder nobody/no-such-embedder: cannot load a SentenceTransformer",
    "push-metric-save-only": r"--save-only works for --model-name-or-path and --dataset-name, not --metric",
    "push-split-outside": r"'\.\./\.\./x' is not a split name",
    "push-pickle-only-model": r"pytorch_model\.bin: pickled weights; only safetensors",
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2(case, bad):
    argv = CASES[case](bad)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_TOKEN": "hf_fake_for_tests",
        "PYTHONWARNINGS": "ignore",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "peft_diversity.cli", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=bad["root"],
        timeout=300,
    )
    err = proc.stderr
    assert "Traceback" not in err, err
    assert proc.returncode == 2, (proc.returncode, err)
    command = argv[0]
    lines = [line for line in err.splitlines() if line.startswith(f"peft-diversity {command}:")]
    assert len(lines) == 1, err
    assert re.search(MESSAGES.get(case, ""), lines[0]), lines[0]
    assert (bad["mine"] / "notes.txt").read_text() == "keep me"
