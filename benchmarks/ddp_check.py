"""Data-parallel check: a 2-process CPU run gives the same first-step gradients as 1 process on the same batch.

    python benchmarks/ddp_check.py [--workdir DIR] [--launcher torchrun|accelerate] [--atol 1e-5] [--json out.json]

Both runs go through the real recipe (`recipes/sft_peft.py`) on a tiny random llama and 4 bundled dialogue
contexts, for one optimizer step with SGD, lr=1, no clipping and a constant schedule, so the saved weights are
`w0 - grad` and the gradient is read back exactly from `model.safetensors`:

- 2 processes (`torchrun --standalone --nproc_per_node 2`, gloo on CPU), per_device_train_batch_size=2;
- 1 process, per_device_train_batch_size=4 (the same global batch).

Both runs take the default shared-prefix path (each context's prompt prefix computed once; max_length 256 cuts no
row, so every context shares its prefix), i.e. two passes of the backbone inside one DDP forward.
`train_sampling_strategy: sequential` makes the split explicit: accelerate shards batches round-robin, so rank 0
gets contexts 0-1 and rank 1 gets 2-3, the two halves of the single process's batch. The two halves hold
different numbers of label tokens, so a per-process mean (instead of PossibilityTrainer's whole-batch token
counts) would give a different gradient. Exit status 1 when the gradients differ by more than --atol.

`--launcher accelerate` runs `accelerate launch --multi_gpu --num_processes 2 --mixed_precision no` instead
(on a machine without GPUs that starts two CPU processes with gloo). Note: `accelerate launch` with
`distributed_type: MULTI_CPU` and no MPI host file starts ONE process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "sft_peft.py"
BIN = Path(sys.executable).parent
NUM_RECORDS = 4


def prepare(workdir: Path) -> dict[str, Path]:
    """Tiny llama folder, a 4-context JSONL file and the shared YAML recipe."""
    from peft_diversity.data import load_one_to_many
    from peft_diversity.models.tiny import tiny_model_and_tokenizer

    model_dir, data = workdir / "tiny-llama", workdir / "train.jsonl"
    model, tokenizer = tiny_model_and_tokenizer("llama", seed=0)
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    records = load_one_to_many("builtin:dialogue")[:NUM_RECORDS]
    data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    config = workdir / "ddp.yaml"
    config.write_text(
        "\n".join(
            [
                f"model_name_or_path: {model_dir}",
                f"dataset_name: {data}",
                "mode: poexft",
                "num_candidates: 3",
                "max_possibility: 9",
                "ul_weight: 0.5",
                "max_steps: 1",
                "optim: sgd",
                "learning_rate: 1.0",
                "lr_scheduler_type: constant",
                "max_grad_norm: 0.0",
                "train_sampling_strategy: sequential",
                "max_length: 256",
                "logging_steps: 1",
                'save_strategy: "no"',
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
    return {"model": model_dir, "data": data, "config": config}


def half_batch_token_counts(paths: dict[str, Path]) -> list[tuple[int, int]]:
    """(positive, negative) label tokens in each process's half of the global batch."""
    from peft_diversity.data import load_one_to_many
    from peft_diversity.models.loading import load_tokenizer
    from peft_diversity.trainer.config import PossibilityConfig
    from peft_diversity.trainer.trainer import IGNORE, build_train_dataset

    args = PossibilityConfig(
        output_dir=str(paths["data"].parent / "unused"),
        num_candidates=3,
        max_length=256,
        bf16=False,
        use_cpu=True,
        report_to=[],
        seed=0,
    )
    dataset = build_train_dataset(load_one_to_many(paths["data"]), load_tokenizer(str(paths["model"])), args)
    counts = []
    for half in (range(0, NUM_RECORDS // 2), range(NUM_RECORDS // 2, NUM_RECORDS)):
        pos = neg = 0
        for i in half:
            for labels, negative in zip(dataset[i]["labels"], dataset[i]["negative"], strict=True):
                n = sum(1 for t in labels[1:] if t != IGNORE)
                neg, pos = (neg + n, pos) if negative else (neg, pos + n)
        counts.append((pos, neg))
    return counts


def launch(paths: dict[str, Path], out: Path, processes: int, batch: int, launcher: str, log: Path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    recipe_args = [
        str(RECIPE),
        "--config",
        str(paths["config"]),
        "--output_dir",
        str(out),
        "--per_device_train_batch_size",
        str(batch),
    ]
    if processes == 1:
        cmd = [sys.executable, *recipe_args]
    elif launcher == "torchrun":
        cmd = [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", str(processes), *recipe_args]
    else:
        cmd = [
            str(BIN / "accelerate"),
            "launch",
            "--multi_gpu",
            "--num_processes",
            str(processes),
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--main_process_port",
            "0",
            *recipe_args,
        ]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT), cmd


def gradients(w0: dict, w1: dict, lr: float = 1.0) -> dict:
    return {k: (w0[k] - w1[k]) / lr for k in w0}


def run_check(workdir: Path, launcher: str = "torchrun", timeout: float = 540) -> dict:
    """Run both trainings (concurrently) and compare their first-step gradients."""
    from safetensors.torch import load_file

    workdir.mkdir(parents=True, exist_ok=True)
    paths = prepare(workdir)
    runs = {"dp2": (2, NUM_RECORDS // 2), "single": (1, NUM_RECORDS)}
    procs = {}
    for name, (processes, batch) in runs.items():
        procs[name] = launch(paths, workdir / name, processes, batch, launcher, workdir / f"{name}.log")
    counts = half_batch_token_counts(paths)
    for name, (proc, cmd) in procs.items():
        if proc.wait(timeout=timeout) != 0:
            tail = (workdir / f"{name}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{tail}")
    w0 = load_file(str(paths["model"] / "model.safetensors"))
    g_dp = gradients(w0, load_file(str(workdir / "dp2" / "model.safetensors")))
    g_single = gradients(w0, load_file(str(workdir / "single" / "model.safetensors")))
    diffs = {k: (g_dp[k] - g_single[k]).abs().max().item() for k in w0}
    # the trainer logs one line when the shared-prefix path does not apply, or a context shares too little
    logs = [(workdir / f"{name}.log").read_text(errors="replace") for name in runs]
    per_row_lines = ("shared_prefix does not apply", "shared_prefix: a context's rows share only")
    return {
        "launcher": launcher,
        "shared_prefix": not any(line in log for line in per_row_lines for log in logs),
        "commands": {name: " ".join(cmd) for name, (_, cmd) in procs.items()},
        "half_batch_label_tokens": counts,
        "max_abs_grad": max(g.abs().max().item() for g in g_single.values()),
        "max_abs_diff": max(diffs.values()),
        "worst_tensor": max(diffs, key=diffs.get),
        "per_tensor_max_abs_diff": diffs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--launcher", choices=["torchrun", "accelerate"], default="torchrun")
    parser.add_argument("--atol", type=float, default=1e-5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ddp_check-"))
    result = run_check(workdir, args.launcher)
    ok = result["max_abs_diff"] <= args.atol
    print(f"launcher: {result['launcher']}")
    for name, cmd in result["commands"].items():
        print(f"  {name}: {cmd}")
    print(
        f"label tokens (positive, negative) per process half: {result['half_batch_label_tokens']}; "
        f"shared-prefix path throughout: {result['shared_prefix']}"
    )
    print(
        f"max |grad| = {result['max_abs_grad']:.4g}; max |grad_2proc - grad_1proc| = "
        f"{result['max_abs_diff']:.3g} ({result['worst_tensor']}); tolerance {args.atol:g}: "
        f"{'OK' if ok else 'MISMATCH'}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
