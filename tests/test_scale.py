"""Scale paths, through the real recipe in subprocesses: 2-process data parallel (CPU, gloo) and resume after kill -9."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "sft_peft.py"
TIMEOUT = 300


def _load_ddp_check():
    spec = importlib.util.spec_from_file_location("ddp_check", REPO / "benchmarks" / "ddp_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_two_process_data_parallel_gradients_equal_single_process(tmp_path):
    """torchrun --nproc_per_node 2 (batch 2 each) vs 1 process (batch 4): same first-step gradients (1e-5)."""
    result = _load_ddp_check().run_check(tmp_path, launcher="torchrun", timeout=TIMEOUT)
    (pos_a, neg_a), (pos_b, neg_b) = result["half_batch_label_tokens"]
    # The halves hold different token counts: per-process normalisation would change the gradient.
    assert (pos_a, neg_a) != (pos_b, neg_b) and min(pos_a, neg_a, pos_b, neg_b) > 0
    assert result["max_abs_grad"] > 1e-2
    assert result["max_abs_diff"] < 1e-5, result["worst_tensor"]
    # both runs took the default shared-prefix path: two backbone passes inside one DDP forward
    assert result["shared_prefix"]


# ----- resume after SIGKILL -----------------------------------------------------------------------------------
def _write_inputs(workdir: Path) -> Path:
    from peft_diversity.data import load_one_to_many
    from peft_diversity.models.tiny import tiny_model_and_tokenizer

    model_dir, data = workdir / "tiny-llama", workdir / "train.jsonl"
    model, tokenizer = tiny_model_and_tokenizer("llama", seed=0)
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    # 6 contexts, batch 2: 3 steps per epoch, so checkpoints 2 and 4 fall mid-epoch (the resumed run must skip
    # the batches already seen in that epoch)
    records = load_one_to_many("builtin:dialogue")[:6]
    data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    config = workdir / "resume.yaml"
    config.write_text(
        "\n".join(
            [
                f"model_name_or_path: {model_dir}",
                f"dataset_name: {data}",
                "mode: poexft",
                "num_candidates: 3",
                "max_steps: 6",
                "per_device_train_batch_size: 2",
                "learning_rate: 1.0e-3",
                "save_strategy: steps",
                "save_steps: 2",
                "logging_steps: 1",
                "max_length: 128",
                "report_to: []",
                "bf16: false",
                "use_cpu: true",
                "disable_tqdm: true",
                "seed: 0",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    return config


def _recipe(config: Path, output_dir: Path, log: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, str(RECIPE), "--config", str(config), "--output_dir", str(output_dir), *extra]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _complete_checkpoints(output_dir: Path) -> list[Path]:
    """Checkpoints whose trainer_state.json (written last by the Trainer) parses."""
    done = []
    for folder in output_dir.glob("checkpoint-*"):
        try:
            json.loads((folder / "trainer_state.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        done.append(folder)
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def _finish(proc: subprocess.Popen, log: Path) -> None:
    if proc.wait(timeout=TIMEOUT) != 0:
        pytest.fail(f"recipe exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")


def _step_losses(output_dir: Path) -> dict[int, float]:
    state = json.loads((output_dir / "checkpoint-6" / "trainer_state.json").read_text())
    return {h["step"]: h["loss"] for h in state["log_history"] if "loss" in h}


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    config = _write_inputs(tmp_path)
    full_dir, killed_dir = tmp_path / "uninterrupted", tmp_path / "killed"
    full = _recipe(config, full_dir, tmp_path / "uninterrupted.log")
    killed = _recipe(config, killed_dir, tmp_path / "killed.log")

    deadline = time.monotonic() + TIMEOUT
    while not _complete_checkpoints(killed_dir):
        if killed.poll() is not None:
            pytest.fail(
                f"run ended before its first checkpoint:\n{(tmp_path / 'killed.log').read_text()[-3000:]}"
            )
        if time.monotonic() > deadline:
            killed.kill()
            pytest.fail("no checkpoint within the time limit")
        time.sleep(0.02)
    os.kill(killed.pid, signal.SIGKILL)
    assert killed.wait(timeout=60) == -signal.SIGKILL
    assert not (killed_dir / "model.safetensors").exists(), "the run finished before it was killed"
    checkpoint = _complete_checkpoints(killed_dir)[-1]
    assert checkpoint.name in ("checkpoint-2", "checkpoint-4")
    assert (checkpoint / "possibility_config.json").is_file()  # a checkpoint generates with its own template

    resumed = _recipe(
        config, killed_dir, tmp_path / "resumed.log", "--resume_from_checkpoint", str(checkpoint)
    )
    _finish(full, tmp_path / "uninterrupted.log")
    _finish(resumed, tmp_path / "resumed.log")

    expected, got = _step_losses(full_dir), _step_losses(killed_dir)
    assert sorted(got) == sorted(expected) == [1, 2, 3, 4, 5, 6]
    for step in expected:
        assert got[step] == pytest.approx(expected[step], rel=1e-6, abs=1e-6), step
    w_full = load_file(str(full_dir / "model.safetensors"))
    w_resumed = load_file(str(killed_dir / "model.safetensors"))
    w_start = load_file(str(tmp_path / "tiny-llama" / "model.safetensors"))
    assert w_full.keys() == w_resumed.keys()
    assert any(not torch.equal(w_full[k], w_start[k]) for k in w_full)
    for k in w_full:
        torch.testing.assert_close(w_resumed[k], w_full[k], rtol=0, atol=1e-6, msg=k)
