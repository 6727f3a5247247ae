"""The comparison runner end to end on a tiny model: 2 training steps, 2 held-out contexts."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from peft_diversity.data import BUNDLED
from peft_diversity.errors import ExperimentConfigError
from peft_diversity.experiment.config import ExperimentConfig
from peft_diversity.experiment.runner import run_experiment
from peft_diversity.models.tiny import tiny_model_and_tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ALL_RUNS = [
    {"model": "base", "decoder": "sampling"},
    {"model": "base", "decoder": "min_p", "settings": {"min_p": 0.1}},
    {"model": "base", "decoder": "diverse_beam"},
    {"model": "base", "decoder": "listing", "settings": {"max_new_tokens": 12}},
    {"model": "base", "decoder": "iterative"},
    {"model": "oto", "decoder": "sampling"},
    {"model": "otm", "decoder": "sampling"},
    {"model": "poexft", "decoder": "possibilities"},
]


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("experiment")
    model, tokenizer = tiny_model_and_tokenizer("llama")
    model.save_pretrained(root / "tiny")
    tokenizer.save_pretrained(root / "tiny")
    data = root / "data"
    data.mkdir()
    for split, n in (("train", 4), ("test", 2)):
        lines = (BUNDLED["dialogue"] / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()[:n]
        (data / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def _config(root: Path, **overrides) -> dict:
    config = {
        "name": "tiny",
        "base_model": str(root / "tiny"),
        "dataset": str(root / "data"),
        "num_responses": 3,
        "train": {"max_steps": 2, "per_device_train_batch_size": 2, "learning_rate": 1e-3, "max_length": 128},
        "generation": {"max_new_tokens": 4, "temperature": 1.0},
        "runs": ALL_RUNS,
        "metrics": ["semantic_diversity", "distinct_n", "self_bleu", "coherence"],
    }
    config.update(overrides)
    return config


def test_runner_writes_every_output_and_resumes(tiny_setup, tmp_path):
    config = ExperimentConfig.from_dict(_config(tiny_setup))
    rows = run_experiment(config, tmp_path / "run")
    run = tmp_path / "run"
    assert [(r["model"], r["decoder"]) for r in rows[:-1]] == [(r["model"], r["decoder"]) for r in ALL_RUNS]
    assert rows[-1]["model"] == "human"
    for row in rows:
        assert 0.0 <= row["scores"]["semantic_diversity"] <= 2.0
        assert row["scores"]["num_prompts"] == 2
    for mode in ("poexft", "otm", "oto"):
        assert (run / "models" / mode / "possibility_config.json").is_file()
    responses = [json.loads(line) for line in (run / "responses.jsonl").read_text().splitlines()]
    assert len(responses) == 2 * len(ALL_RUNS)
    assert all(len(r["responses"]) <= 3 and "context" in r and "decoder" in r for r in responses)
    table = (run / "results.md").read_text()
    assert "| poexft | possibilities |" in table and "| human | candidates |" in table
    # the possibilities run against every other run, with a paired interval over the 2 contexts
    gaps = [line for line in table.splitlines() if line.startswith("| ") and "__" in line and "[" in line]
    assert [line.split(" | ")[0] for line in gaps] == [
        f"| {r['model']}__{r['decoder']}" for r in ALL_RUNS if r["decoder"] != "possibilities"
    ]
    assert json.loads((run / "results.json").read_text())["results"][0]["decoder"] == "sampling"
    assert (run / "diversity_vs_coherence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # resumable: a second run trains and generates nothing (outputs untouched); --force redoes
    stamp = (run / "models" / "poexft" / "train_summary.json").stat().st_mtime_ns
    gen_stamp = (run / "responses" / "base__sampling.jsonl").stat().st_mtime_ns
    run_experiment(config, run)
    assert (run / "models" / "poexft" / "train_summary.json").stat().st_mtime_ns == stamp
    assert (run / "responses" / "base__sampling.jsonl").stat().st_mtime_ns == gen_stamp
    shutil.rmtree(run / "responses")
    run_experiment(config, run)
    assert (run / "responses" / "base__sampling.jsonl").is_file()


def test_changed_settings_redo_the_stages_they_touch(tiny_setup, tmp_path, caplog):
    import logging

    runs = [{"model": "base", "decoder": "sampling"}, {"model": "poexft", "decoder": "possibilities"}]
    base = _config(tiny_setup, modes=["poexft"], runs=runs, metrics=["distinct_n"])
    run = tmp_path / "run"
    run_experiment(ExperimentConfig.from_dict(base), run)

    def stamps():
        files = [
            run / "models" / "poexft" / "train_summary.json",
            run / "responses" / "base__sampling.jsonl",
            run / "responses" / "poexft__possibilities.jsonl",
            run / "scores" / "base__sampling.json",
            run / "scores" / "human__candidates.json",
        ]
        return [f.stat().st_mtime_ns for f in files]

    first = stamps()
    with caplog.at_level(logging.WARNING, logger="peft_diversity.experiment.runner"):
        run_experiment(ExperimentConfig.from_dict(base), run)  # same settings: everything reused
    assert stamps() == first and "redoing" not in caplog.text

    # generation changed: every responses file and score is redone, the trained model is not
    changed = _config(
        tiny_setup,
        modes=["poexft"],
        runs=runs,
        metrics=["distinct_n"],
        num_responses=2,
        generation={"max_new_tokens": 3, "temperature": 1.0},
    )
    with caplog.at_level(logging.WARNING, logger="peft_diversity.experiment.runner"):
        rows = run_experiment(ExperimentConfig.from_dict(changed), run)
    second = stamps()
    assert second[0] == first[0] and all(a != b for a, b in zip(first[1:], second[1:], strict=True))
    assert "generate base__sampling: settings changed" in caplog.text
    assert all(
        len(json.loads(line)["responses"]) <= 2 for line in (run / "responses.jsonl").read_text().splitlines()
    )
    assert rows[-1]["scores"]["responses_per_context"] == 2

    # training changed: the mode is retrained and its responses redone; the base model's are kept
    caplog.clear()
    retrain = dict(changed, train={**changed["train"], "max_steps": 3})
    with caplog.at_level(logging.WARNING, logger="peft_diversity.experiment.runner"):
        run_experiment(ExperimentConfig.from_dict(retrain), run)
    third = stamps()
    assert third[0] != second[0] and third[2] != second[2] and third[1] == second[1]
    assert "train poexft: settings changed" in caplog.text and "(train): redoing" in caplog.text
    summary = json.loads((run / "models" / "poexft" / "train_summary.json").read_text())
    assert summary["log_history"][-1]["step"] == 3


def test_killed_training_stage_resumes_from_its_last_complete_checkpoint(
    tiny_setup, tmp_path, monkeypatch, caplog
):
    import logging

    from peft_diversity.trainer.trainer import PossibilityTrainer

    runs = [{"model": "poexft", "decoder": "possibilities"}]
    config = ExperimentConfig.from_dict(
        _config(
            tiny_setup,
            modes=["poexft"],
            runs=runs,
            metrics=["distinct_n"],
            train={
                "max_steps": 4,
                "save_steps": 2,
                "save_total_limit": 3,
                "per_device_train_batch_size": 2,
                "learning_rate": 1e-3,
                "max_length": 128,
                "logging_steps": 1,
            },
        )
    )
    run = tmp_path / "run"
    (run / "models" / ".poexft-x1y2").mkdir(parents=True)  # an older run's orphan temp folder
    original = PossibilityTrainer.training_step

    def killed_at_step_3(self, *args, **kwargs):
        if self.state.global_step == 3:
            raise RuntimeError("killed")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PossibilityTrainer, "training_step", killed_at_step_3)
    with pytest.raises(RuntimeError, match="killed"):
        run_experiment(config, run)
    work = run / "models" / ".poexft.partial"
    assert (work / "checkpoint-2" / "trainer_state.json").is_file() and not (
        run / "models" / "poexft"
    ).exists()
    assert not (run / "models" / ".poexft-x1y2").exists()
    half = work / "checkpoint-3"  # a kill during the next save: weights written, trainer_state.json not
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"half")
    cut = work / "checkpoint-4"  # complete but for its weights, cut short (a damaged copy, a full disk)
    shutil.copytree(work / "checkpoint-2", cut)
    (cut / "model.safetensors").write_bytes((cut / "model.safetensors").read_bytes()[:1000])

    steps_run = []

    def counted(self, *args, **kwargs):
        steps_run.append(self.state.global_step)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PossibilityTrainer, "training_step", counted)
    with caplog.at_level(logging.WARNING):
        run_experiment(config, run)
    assert "skipping" in caplog.text and "checkpoint-3" in caplog.text
    assert "checkpoint-4: model.safetensors is cut short" in caplog.text
    assert "resuming the interrupted run from" in caplog.text
    summary = json.loads((run / "models" / "poexft" / "train_summary.json").read_text())
    assert summary["resumed_from"].endswith("checkpoint-2")
    assert steps_run == [2, 3]  # only the steps after checkpoint-2 ran again
    assert [h["step"] for h in summary["log_history"] if "loss" in h] == [1, 2, 3, 4]
    assert sorted(p.name for p in (run / "models").iterdir()) == ["poexft", "poexft.settings.json"]
    assert not list((run / "models" / "poexft").glob("checkpoint-*"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"modes": ["poexft", "bogus"]}, "unknown modes"),
        ({"runs": [{"model": "base", "decoder": "telepathy"}]}, "unknown decoder"),
        ({"metrics": ["semantic_diversity", "vibes"]}, "unknown metrics"),
        ({"runs": [{"model": "base", "decoder": "possibilities"}]}, "needs a PoExFT model"),
        ({"runs": [{"model": "otm", "decoder": "sampling"}], "modes": ["poexft"]}, "neither 'base'"),
        ({"surprise": 1}, "surprise: unknown key"),
        ({"judge": {"base_url": "http://127.0.0.1:1/v1"}}, "at least 'model'"),
        ({"judge": {"model": "m", "temperature": 2}}, r"judge\.temperature: unknown key"),
    ],
)
def test_bad_config_fails_before_training(tiny_setup, tmp_path, change, message):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(_config(tiny_setup, **change)))
    with pytest.raises(ExperimentConfigError, match=message):
        ExperimentConfig.from_yaml(path)


def test_dataset_without_heldout_split_fails_before_training(tiny_setup, tmp_path):
    data = tmp_path / "only_train"
    data.mkdir()
    shutil.copy(tiny_setup / "data" / "train.jsonl", data / "train.jsonl")
    config = ExperimentConfig.from_dict(_config(tiny_setup, dataset=str(data)))
    with pytest.raises(ExperimentConfigError, match="held-out split 'test'"):
        run_experiment(config, tmp_path / "run")
    assert not (tmp_path / "run" / "models").exists()


def test_atomic_outputs_replace_whole_or_leave_the_old_file(tmp_path):
    from peft_diversity.atomic import atomic_path, atomic_write_text

    target = tmp_path / "sub" / "results.png"
    with atomic_path(target) as tmp:
        assert (
            tmp.parent == target.parent and tmp.suffix == ".png"
        )  # writers that go by the suffix still work
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"new" and sorted(p.name for p in target.parent.iterdir()) == [
        "results.png"
    ]
    assert atomic_write_text(tmp_path / "a.json", "{}").read_text() == "{}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nruns: [a, b\nk: 3\n", r"exp\.yaml:3:\d+: not valid YAML"),
        ("- just\n- a list\n", "must be a mapping"),
        ("name: x\n\tk: 3\n", "not valid YAML"),
    ],
)
def test_yaml_syntax_errors_are_one_line(tmp_path, capsys, text, message):
    import re

    from peft_diversity.cli import main

    path = tmp_path / "exp.yaml"
    path.write_text(text)
    assert main(["experiment", "--config", str(path), "--output-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert not (tmp_path / "run").exists()


def test_yaml_judge_rates_coherence_and_is_checked_against_shuffled_replies(tiny_setup, tmp_path):
    """`judge:` in the YAML reaches the scores through the CLI, and judge_check.json says what it is worth."""
    from peft_diversity.cli import main

    runs = [{"model": "base", "decoder": "sampling"}]
    config = _config(
        tiny_setup,
        modes=[],
        runs=runs,
        metrics=["coherence"],
        num_responses=2,
        judge={"model": str(tiny_setup / "tiny"), "max_new_tokens": 4},
    )
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["experiment", "--config", str(path), "--output-dir", str(tmp_path / "run")]) == 0
    scores = json.loads((tmp_path / "run" / "scores" / "base__sampling.json").read_text())["scores"]
    assert "num_unparsed" in scores and "coherence_relevance" in scores  # the judge ran beside the embedding
    check = json.loads((tmp_path / "run" / "judge_check.json").read_text())
    assert set(check) == {"own_rating", "other_rating", "prefers_own", "num_pairs", "num_unparsed"}
    assert "Judge `" in (tmp_path / "run" / "results.md").read_text()


# ----- one run per run folder -----------------------------------------------------------------------------------
QUICK_RUNS = [{"model": "base", "decoder": "sampling"}]


def test_a_second_run_on_a_locked_run_folder_fails_at_once(tiny_setup, tmp_path):
    """While one process holds the run folder, `experiment` on it from another process exits 2 with one line and
    touches nothing; once the holder lets go, the folder runs again."""
    import subprocess
    import sys

    from filelock import FileLock

    from peft_diversity.experiment.runner import LOCK_FILE

    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(_config(tiny_setup, modes=[], runs=QUICK_RUNS, metrics=["distinct_n"])))
    run = tmp_path / "run"
    live = run / "models" / ".poexft.partial" / "checkpoint-2"  # the first run's live training folder
    live.mkdir(parents=True)
    (live / "trainer_state.json").write_text("{}")
    with FileLock(run / LOCK_FILE):  # the first run, still going
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "peft_diversity.cli",
                "experiment",
                "--config",
                str(path),
                "--output-dir",
                str(run),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and str(run) in lines[0]
        and "another experiment run holds this run folder" in lines[0]
    )
    assert (live / "trainer_state.json").read_text() == "{}" and not (run / "experiment.json").exists()

    rows = run_experiment(ExperimentConfig.from_yaml(path), run)  # the lock is free again: the run goes ahead
    assert rows[0]["name"] == "base__sampling" and (run / "results.md").is_file()
    with FileLock(run / LOCK_FILE, blocking=False):  # and the finished run let go of it
        pass


# ----- stage stamps follow the base model's content ---------------------------------------------------------------
def test_rewritten_base_model_weights_redo_the_stages(tiny_setup, tmp_path, caplog):
    import logging

    base = tmp_path / "base"
    shutil.copytree(tiny_setup / "tiny", base)
    runs = [{"model": "base", "decoder": "sampling"}, {"model": "poexft", "decoder": "possibilities"}]
    config = ExperimentConfig.from_dict(
        _config(tiny_setup, base_model=str(base), modes=["poexft"], runs=runs, metrics=["distinct_n"])
    )
    run = tmp_path / "run"
    run_experiment(config, run)
    outputs = [
        run / "models" / "poexft" / "train_summary.json",
        run / "responses" / "base__sampling.jsonl",
        run / "responses" / "poexft__possibilities.jsonl",
    ]
    first = [f.stat().st_mtime_ns for f in outputs]

    model, _ = tiny_model_and_tokenizer("llama", seed=1)  # new weights, same architecture, same folder
    model.save_pretrained(base)
    with caplog.at_level(logging.WARNING, logger="peft_diversity.experiment.runner"):
        run_experiment(config, run)
    assert "train poexft: settings changed" in caplog.text and "base_model_content" in caplog.text
    assert "generate base__sampling: settings changed" in caplog.text
    assert all(a != b for a, b in zip(first, [f.stat().st_mtime_ns for f in outputs], strict=True))


def test_model_identity_is_the_content_hashed_once_or_the_hub_commit(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from peft_diversity.models import builtin
    from peft_diversity.models.builtin import model_identity

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"a" * 64)
    (folder / "config.json").write_text("{}")
    (folder / "README.md").write_text("notes")
    first = model_identity(str(folder))
    assert sorted(first["files"]) == [
        "config.json",
        "model.safetensors",
    ]  # what the model computes, not notes
    hits = builtin._content_hash.cache_info().hits
    assert model_identity(str(folder)) == first and builtin._content_hash.cache_info().hits == hits + 2
    (folder / "model.safetensors").write_bytes(b"b" * 64)  # same name, same size, new content
    assert model_identity(str(folder)) != first

    cache = tmp_path / "hub"  # a Hub cache as huggingface_hub lays it out, offline
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    repo = cache / "models--someone--tiny"
    for commit in ("a" * 40, "b" * 40):
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    assert model_identity("someone/tiny") == {"hub": "someone/tiny", "revision": "a" * 40}
    (repo / "refs" / "main").write_text("b" * 40)
    assert model_identity("someone/tiny")["revision"] == "b" * 40
    assert (
        model_identity(str(tmp_path / "no-such-model"))["revision"] is None
    )  # the loader says what is wrong

    # online, the Hub's answer wins over the cache and is asked once per process (every stage stamp wants it)
    import huggingface_hub

    asked = []
    monkeypatch.setattr(huggingface_hub, "is_offline_mode", lambda: False)
    monkeypatch.setattr(
        huggingface_hub, "model_info", lambda repo: asked.append(repo) or type("I", (), {"sha": "c" * 40})
    )
    builtin._hub_commit.cache_clear()
    assert [model_identity("someone/tiny")["revision"] for _ in range(2)] == ["c" * 40] * 2 and asked == [
        "someone/tiny"
    ]
    builtin._hub_commit.cache_clear()


# ----- the whole YAML is checked before any work -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"num_responses": "5"}, ["num_responses: must be an integer, got '5'"]),
        ({"train": [1, 2]}, ["train: must be a mapping, got [1, 2]"]),
        ({"train": {"max_stepz": 2}}, ["train.max_stepz: unknown key (did you mean 'max_steps'?)"]),
        (
            {"train": {"max_steps": "2", "learning_rate": "1e-3"}},
            [
                "train.learning_rate: must be a number, got '1e-3' (YAML",
                "train.max_steps: must be an integer, got '2'",
            ],
        ),
        ({"train": {"mode": "otm"}}, ["train.mode: set by the experiment"]),
        ({"train": {"lr_scheduler_type": "sideways"}}, ["train: sideways is not a valid SchedulerType"]),
        (
            {"generation": {"max_new_tokns": 4}},
            ["generation.max_new_tokns: unknown key (did you mean 'max_new_tokens'?)"],
        ),
        (
            {"generation": {"possibilities": [1, 2]}},
            ["generation.possibilities: not a setting of every run's decoder"],
        ),
        (
            {"generation": {"num_responses": 2, "seed": "x"}},
            ["generation.num_responses: set by the experiment", "generation.seed: must be an integer"],
        ),
        ({"generation": {"top_p": 2.0}}, ["generation: top_p must be in (0.0, 1.0], got 2.0"]),
        (
            {"runs": [{"model": "base", "decoder": "sampling", "settings": {"temprature": 0.7}}]},
            [
                "runs[0].settings.temprature: not a setting of the sampling decoder; unknown key (did you mean 'temperature'"
            ],
        ),
        (
            {"runs": [{"model": "poexft", "decoder": "possibilities", "settings": {"shared_prefix": "yes"}}]},
            ["runs[0].settings.shared_prefix: must be true or false or null, got 'yes'"],
        ),
        ({"lora": {"lora_rr": 4}}, ["lora.lora_rr: unknown key (did you mean 'lora_r'?)"]),
        (
            {"mode_overrides": {"oto": {"learning_rat": 0.1}}},
            ["mode_overrides.oto.learning_rat: unknown key"],
        ),
    ],
)
def test_every_problem_of_the_yaml_is_one_line_before_any_work(
    tiny_setup, tmp_path, capsys, change, expected
):
    from peft_diversity.cli import main

    path = tmp_path / "exp.yaml"
    config = _config(tiny_setup, modes=["poexft", "otm", "oto"], **change)
    path.write_text(yaml.safe_dump(config))
    assert main(["experiment", "--config", str(path), "--output-dir", str(tmp_path / "run")]) == 2
    lines = capsys.readouterr().err.strip().removeprefix("peft-diversity experiment: ").splitlines()
    assert len(lines) == len(expected), lines
    for line, wanted in zip(lines, expected, strict=True):
        assert line.startswith(f"{path}: {wanted}"), line
    assert not (tmp_path / "run").exists()


def test_all_problems_are_reported_at_once(tiny_setup, tmp_path):
    """The command line: exit 2 and one `file: key.path: message` line per problem, in one go."""
    import subprocess
    import sys

    path = tmp_path / "exp.yaml"
    config = _config(
        tiny_setup,
        num_responses="5",
        seedd=1,
        lora={"lora_r": "4"},
        generation={"max_new_tokns": 4},
        runs=[{"model": "base", "decoder": "magic"}, "sampling"],
    )
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "peft_diversity.cli",
            "experiment",
            "--config",
            str(path),
            "--output-dir",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().removeprefix("peft-diversity experiment: ").splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines), lines
    keys = [line.removeprefix(f"{path}: ").split(":")[0] for line in lines]
    assert keys == [
        "seedd",
        "num_responses",
        "lora.lora_r",
        "generation.max_new_tokns",
        "runs[0].decoder",
        "runs[1]",
    ]
    assert not (tmp_path / "run").exists()


def test_likelihood_coherence_is_scored_with_the_experiments_reference_model(tiny_setup, tmp_path, caplog):
    import logging

    other = tmp_path / "other-reference"
    model, tokenizer = tiny_model_and_tokenizer("llama", seed=1)
    model.save_pretrained(other)
    tokenizer.save_pretrained(other)
    runs = [{"model": "base", "decoder": "sampling"}]
    config = _config(
        tiny_setup,
        modes=[],
        runs=runs,
        metrics=["likelihood_coherence"],
        reference_model=str(tiny_setup / "tiny"),
    )
    run = tmp_path / "run"
    first = run_experiment(ExperimentConfig.from_dict(config), run)
    assert all(
        {"likelihood_coherence", "likelihood_pmi", "likelihood_fluency"} <= set(r["scores"]) for r in first
    )
    assert "coherence (likelihood PMI)" in (run / "results.md").read_text()
    with caplog.at_level(logging.WARNING, logger="peft_diversity.experiment.runner"):
        second = run_experiment(ExperimentConfig.from_dict(dict(config, reference_model=str(other))), run)
    assert "score base__sampling: settings changed" in caplog.text  # another reference model: scores redone
    assert second[0]["scores"]["likelihood_fluency"] != pytest.approx(
        first[0]["scores"]["likelihood_fluency"]
    )


def test_each_heldout_context_draws_its_own_random_numbers(tiny_setup, tmp_path):
    # the same context twice: with one seed reused per context both would get identical responses, and the
    # i-th response of every context would share its draw (openings per possibility number looked alike)
    data = tmp_path / "data"
    shutil.copytree(tiny_setup / "data", data)
    line = (data / "test.jsonl").read_text(encoding="utf-8").splitlines()[0]
    (data / "test.jsonl").write_text(f"{line}\n{line}\n", encoding="utf-8")
    runs = [{"model": "base", "decoder": "sampling"}]
    config = _config(tiny_setup, dataset=str(data), runs=runs, metrics=["distinct_n"])
    config["generation"] = {"max_new_tokens": 8, "temperature": 1.0}
    run_experiment(ExperimentConfig.from_dict(config), tmp_path / "run")
    first, second = [
        json.loads(x)
        for x in (tmp_path / "run" / "responses" / "base__sampling.jsonl").read_text().splitlines()
    ]
    assert first["context"] == second["context"]
    assert first["settings"]["seed"] != second["settings"]["seed"]
    assert first["responses"] != second["responses"]
