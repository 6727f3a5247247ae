"""Benchmark PossibilityTrainer against the paper-procedure reference loop in ``reference_training.py``.

    python benchmarks/bench_training.py [--model-name-or-path builtin:minilm-decoder] [--steps 10] [--warmup 2] [--repeats 1]
                                        [--memory-contexts 1 2] [--markdown out.md]

Same model (two fresh copies loaded with `models.load_model_and_tokenizer`), same data (the first warmup + steps
contexts of the bundled dialogue train split, encoded once and fed to both), same steps (one context = 4
positives + 12 negatives per step, AdamW, constant lr, no clipping, float32 on CPU).

Measured:
- training throughput: non-padding tokens per second over `--steps` timed steps (after `--warmup` untimed ones).
  The two loops run in one process, interleaved step by step (the reference's step i runs inside the trainer's
  on_step_end of step i), so background load on a shared machine hits both alike; wall clock and process CPU
  time are both reported, with the median per-step ratio;
- peak memory: live tensor bytes (every tensor allocated inside the measured region, counted until freed, via a
  TorchDispatchMode; CPU torch allocations are invisible to tracemalloc) for (a) one full training step
  (forward + backward, gradients included), (b) the loss alone computed from stored final hidden states
  (LM head + MLE + unlikelihood, forward + backward into the hidden states; LM head weights frozen), and (c) the
  unlikelihood term alone from the model's outputs (per-token log-probs for PossibilityTrainer, full logits for
  the reference), per token and at `--memory-contexts` batch sizes, to show how it scales;
- agreement: both implementations' losses on the first context at the initial weights (eval mode).

Prints the numbers and a markdown snippet for BENCHMARKS.md; exit status 1 if a target is missed
(throughput >= 1.3x; the PossibilityTrainer UL term below 1 KiB per token, i.e. no per-vocabulary storage).

    python benchmarks/bench_training.py --shared-prefix [--model-name-or-path builtin:smollm2-135m-instruct] [--steps 3]
                                        [--warmup 1] [--negatives 4 12] [--context-tokens 100 200]

`--shared-prefix` measures instead the shared-prefix training path against the per-row path (issue 20) on the
same LoRA model (r=16 on every linear layer, as the SmolLM2 recipes): for each (negatives, context length) cell,
one context per step (4 positives + that many negatives), both paths interleaved step by step in one process
(alternating which goes first), each step = collation + forward + backward + AdamW step. Reported: seconds per
step and the steps/s ratio (shared / per row; median over steps), and the peak live tensor bytes of one step each
way (TorchDispatchMode accounting, as above). Contexts of about N tokens: bundled dialogue contexts whose prompt
is about N tokens, extended with the next records' turns when shorter. Exit status 1 if the CPU-time ratio
at 12 negatives is below 3x.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import sys
import tempfile
import time
import types
import weakref
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

_HERE = Path(__file__).resolve().parent
THROUGHPUT_TARGET = 1.3
SHARED_PREFIX_TARGET = 3.0  # steps/s, shared prefix / per row, at 4 positives + 12 negatives
UL_BYTES_PER_TOKEN_LIMIT = 1024


def _reference_module():
    spec = importlib.util.spec_from_file_location("reference_training", _HERE / "reference_training.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----- memory --------------------------------------------------------------------------------------------------
class LiveTensorBytes(TorchDispatchMode):
    """Peak bytes of tensor storages allocated inside the region and still alive (freed ones are subtracted)."""

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self._refs: dict[int, weakref.ref] = {}

    def _freed(self, key: int, nbytes: int) -> None:
        self.live -= nbytes
        self._refs.pop(key, None)

    def __torch_dispatch__(self, func, types_, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or t.device.type != "cpu":
                continue
            storage = t.untyped_storage()
            key = id(storage)
            if key in self._refs:
                continue
            nbytes = storage.nbytes()
            self._refs[key] = weakref.ref(storage, lambda _, key=key, n=nbytes: self._freed(key, n))
            self.live += nbytes
            self.peak = max(self.peak, self.live)
        return out


def peak_bytes(fn) -> int:
    with LiveTensorBytes() as tracker:
        fn()
    return tracker.peak


# ----- data ------------------------------------------------------------------------------------------------------
def make_args(output_dir: str, total_steps: int, learning_rate: float, max_length: int):
    from peft_diversity.trainer.config import PossibilityConfig

    return PossibilityConfig(
        output_dir=output_dir,
        mode="poexft",
        num_candidates=4,
        max_possibility=9,
        ul_weight=0.5,
        per_device_train_batch_size=1,
        gradient_accumulation_steps=1,
        max_steps=total_steps,
        learning_rate=learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        optim="adamw_torch",
        max_grad_norm=0.0,
        max_length=max_length,
        train_sampling_strategy="sequential",
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        bf16=False,
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
    )


def context_stats(group: dict[str, Any]) -> dict[str, int]:
    lengths = [len(ids) for ids in group["input_ids"]]
    labelled = sum(sum(1 for t in lab[1:] if t != -100) for lab in group["labels"])
    return {
        "rows": len(lengths),
        "tokens": sum(lengths),
        "padded": len(lengths) * max(lengths),
        "labelled": labelled,
    }


# ----- throughput --------------------------------------------------------------------------------------------------
def run_interleaved(model_id: str, dataset, groups, args) -> dict[str, Any]:
    """PossibilityTrainer.train() with the reference loop's step i run right after the trainer's step i.

    Interleaving step by step exposes both to the same background load (the machine is shared). A trainer step is
    timed from the end of the previous reference step to the trainer's on_step_end, so it includes the Trainer's
    data loading, collation and bookkeeping; a reference step includes its padding.
    """
    from transformers import TrainerCallback

    from peft_diversity.models.loading import load_model_and_tokenizer
    from peft_diversity.trainer.trainer import PossibilityTrainer

    ref = _reference_module()
    ref_model, tokenizer = load_model_and_tokenizer(model_id, dtype=torch.float32)
    loop = ref.ReferenceLoop(
        ref_model, tokenizer.pad_token_id, learning_rate=args.learning_rate, ul_weight=args.ul_weight
    )

    class Interleave(TrainerCallback):
        def __init__(self):
            self.ours: list[dict[str, float]] = []
            self.reference: list[dict[str, float]] = []
            self.wall = self.cpu = 0.0

        def on_train_begin(self, *_, **__):
            self.wall, self.cpu = time.perf_counter(), time.process_time()

        def on_step_end(self, *_, **__):
            self.ours.append({"wall": time.perf_counter() - self.wall, "cpu": time.process_time() - self.cpu})
            self.reference.append(loop.step(groups[len(self.reference)]))
            self.wall, self.cpu = time.perf_counter(), time.process_time()

    model, tokenizer = load_model_and_tokenizer(model_id, dtype=torch.float32)
    clock = Interleave()
    trainer = PossibilityTrainer(
        model, args=args, train_dataset=dataset, processing_class=tokenizer, callbacks=[clock]
    )
    trainer.train()
    return {
        "ours": clock.ours,
        "reference": clock.reference,
        "ours_losses": [h["loss"] for h in trainer.state.log_history if "loss" in h],
        "reference_losses": [r["loss"] for r in clock.reference],
    }


# ----- memory and agreement ------------------------------------------------------------------------------------------
class _StoredHidden(torch.nn.Module):
    """Stands in for the backbone so the trainer's own LM-head path runs on stored hidden states."""

    def __init__(self, hidden: torch.Tensor):
        super().__init__()
        self.hidden = hidden

    def forward(self, *args, **kwargs):
        return types.SimpleNamespace(last_hidden_state=self.hidden)


def measure_memory(model_id: str, dataset, groups, args, sizes: tuple[int, ...] = (1, 2)) -> dict[str, Any]:
    from peft_diversity.models.loading import load_model_and_tokenizer
    from peft_diversity.trainer.loss import poexft_loss
    from peft_diversity.trainer.trainer import PossibilityCollator, PossibilityTrainer

    ref = _reference_module()
    ours_model, tokenizer = load_model_and_tokenizer(model_id, dtype=torch.float32)
    ref_model, _ = load_model_and_tokenizer(model_id, dtype=torch.float32)
    trainer = PossibilityTrainer(ours_model, args=args, train_dataset=dataset, processing_class=tokenizer)
    collate = trainer.data_collator  # the trainer's own batches (shared prefix when it applies)
    pad = tokenizer.pad_token_id
    per_row = PossibilityCollator(pad)  # (b) and (c) run the backbone on full rows
    out: dict[str, Any] = {}

    # agreement at the initial weights, eval mode (no dropout)
    ours_model.eval()
    ref_model.eval()
    batch = collate([dataset[0]])
    with torch.no_grad():
        ours = trainer.compute_loss(ours_model, dict(batch)).item()
        theirs = ref.reference_loss(ref_model, ref.pad_context(groups[0], pad), args.ul_weight)[0].item()
    out["loss_ours"], out["loss_reference"] = ours, theirs

    # (a) one training step, forward + backward (gradients allocated inside: set_to_none before)
    ours_model.train()
    ref_model.train()
    ours_model.zero_grad(set_to_none=True)
    ref_model.zero_grad(set_to_none=True)
    out["step_ours"] = peak_bytes(lambda: trainer.training_step(ours_model, dict(batch)))

    def ref_step():
        ref.reference_loss(ref_model, ref.pad_context(groups[0], pad), args.ul_weight)[0].backward()

    out["step_reference"] = peak_bytes(ref_step)
    ours_model.zero_grad(set_to_none=True)
    ref_model.zero_grad(set_to_none=True)

    # (b) the loss alone from stored hidden states, (c) the UL term alone; at 1 and 4 contexts
    ours_model.eval()
    for p in ours_model.parameters():
        p.requires_grad_(False)
    backbone = ours_model.base_model
    head = ours_model.lm_head
    for n in sizes:
        batch = per_row([dataset[i] for i in range(n)])
        tokens = int(batch["attention_mask"].sum())
        with torch.no_grad():
            hidden = backbone(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).last_hidden_state
        targets = batch["labels"][:, 1:]
        neg_mask = (targets != -100) & batch["negative"][:, None]

        def ours_loss(hidden=hidden, batch=batch):
            h = hidden.clone().requires_grad_(True)
            setattr(ours_model, ours_model.base_model_prefix, _StoredHidden(h))
            try:
                o = ours_model(
                    input_ids=batch["input_ids"],
                    attention_mask=batch["attention_mask"],
                    labels=batch["labels"],
                    label_log_probs=True,
                )
                poexft_loss(o.log_probs, o.label_mask, batch["negative"], args.ul_weight)[0].backward()
            finally:
                setattr(ours_model, ours_model.base_model_prefix, backbone)

        def ref_loss(hidden=hidden, batch=batch):
            h = hidden.clone().requires_grad_(True)
            logits = head(h)
            labelled = batch["labels"][:, 1:] != -100
            neg = labelled & batch["negative"][:, None]
            pos_targets = batch["labels"][:, 1:].masked_fill(~(labelled & ~neg), -100)
            lg = logits[:, :-1]
            mle = torch.nn.functional.cross_entropy(lg.reshape(-1, lg.shape[-1]), pos_targets.reshape(-1))
            (mle + args.ul_weight * ref.unlikelihood_full_vocab(lg, batch["labels"][:, 1:], neg)).backward()

        with torch.no_grad():
            o = trainer_log_probs(ours_model, batch)
            logits = head(hidden)[:, :-1]

        def ours_ul(o=o, batch=batch):
            lp = o.log_probs.clone().requires_grad_(True)
            poexft_loss(lp, o.label_mask & batch["negative"][:, None], batch["negative"], 1.0)[2].backward()

        def ref_ul(logits=logits, targets=targets, neg_mask=neg_mask):
            lg = logits.clone().requires_grad_(True)
            ref.unlikelihood_full_vocab(lg, targets, neg_mask).backward()

        # the clones of the inputs are counted by both; subtract them so only the computation is measured
        out[f"loss_ours_{n}"] = peak_bytes(ours_loss) - hidden.nbytes
        out[f"loss_reference_{n}"] = peak_bytes(ref_loss) - hidden.nbytes
        out[f"ul_ours_{n}"] = peak_bytes(ours_ul) - o.log_probs.nbytes
        out[f"ul_reference_{n}"] = peak_bytes(ref_ul) - logits.nbytes
        out[f"tokens_{n}"] = tokens
        out[f"negative_labels_{n}"] = int(neg_mask.sum())
    return out


def trainer_log_probs(model, batch):
    return model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        labels=batch["labels"],
        label_log_probs=True,
    )


# ----- report ------------------------------------------------------------------------------------------------------------
def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def summarize(runs: list[dict[str, Any]], stats: list[dict[str, int]], warmup: int) -> dict[str, float]:
    """Throughput over the timed steps of all runs (wall and process CPU time) and the median per-step ratio."""
    tokens = sum(s["tokens"] for s in stats) * len(runs)
    out = {}
    for side in ("ours", "reference"):
        out[f"{side}_wall"] = sum(step["wall"] for run in runs for step in run[side][warmup:])
        out[f"{side}_cpu"] = sum(step["cpu"] for run in runs for step in run[side][warmup:])
        out[f"{side}_tps"] = tokens / out[f"{side}_wall"]
        out[f"{side}_tps_cpu"] = tokens / out[f"{side}_cpu"]
    ratios = sorted(
        r["wall"] / o["wall"]
        for run in runs
        for o, r in zip(run["ours"][warmup:], run["reference"][warmup:], strict=True)
    )
    out["speedup"] = out["ours_tps"] / out["reference_tps"]
    out["speedup_cpu"] = out["ours_tps_cpu"] / out["reference_tps_cpu"]
    out["speedup_median_step"] = ratios[len(ratios) // 2]
    return out


def markdown(t: dict[str, float], m: dict[str, Any], info: dict[str, Any], a: argparse.Namespace) -> str:
    sizes = a.memory_contexts
    lines = [
        f"### Training throughput and memory: PossibilityTrainer vs the paper-procedure loop ({a.model})",
        "",
        f"Command: `python benchmarks/bench_training.py --model-name-or-path {a.model} --steps {a.steps} --warmup {a.warmup} "
        f"--repeats {a.repeats}{f' --threads {a.threads}' if a.threads else ''}`  ",
        f"Machine: 2-core CPU ({os.cpu_count()} logical CPUs visible, {platform.processor() or platform.machine()}, "
        f"shared with other work: load average {info['load']:.1f} at the end), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, float32; date {datetime.date.today().isoformat()}.  ",
        f"Data: contexts 1-{a.warmup + a.steps} of the bundled dialogue train split; one context per step (4 "
        f"positives + 12 negatives padded together; {info['tokens_per_step']:.0f} non-pad tokens per step on average, "
        f"{info['labelled_per_step']:.0f} of them labelled); AdamW, constant lr, no clipping. Both loops run in one "
        f"process, interleaved step by step ({a.warmup} untimed warm-up steps, {a.steps} timed steps, {a.repeats} "
        "run(s)). PossibilityTrainer runs with its defaults: each context's shared prompt prefix once (issue 20), "
        "no activation checkpointing; the reference runs every row in full.",
        "",
        "| | reference loop | PossibilityTrainer | ratio |",
        "|---|---:|---:|---:|",
        f"| training throughput, wall clock (non-pad tokens/s) | {t['reference_tps']:.0f} | {t['ours_tps']:.0f} | "
        f"**{t['speedup']:.2f}x** (median step {t['speedup_median_step']:.2f}x) |",
        f"| training throughput, process CPU time (tokens/CPU-s) | {t['reference_tps_cpu']:.0f} | "
        f"{t['ours_tps_cpu']:.0f} | {t['speedup_cpu']:.2f}x |",
        f"| peak live tensor memory, one training step (fwd+bwd, grads) | {_mib(m['step_reference'])} | "
        f"{_mib(m['step_ours'])} | {m['step_reference'] / m['step_ours']:.1f}x less |",
    ]
    for n in sizes:
        tok = m[f"tokens_{n}"]
        lines.append(
            f"| loss from stored hidden states, {n} context(s) = {tok} tokens (fwd+bwd) | "
            f"{_mib(m[f'loss_reference_{n}'])} = {m[f'loss_reference_{n}'] / tok / 1024:.0f} KiB/token | "
            f"{_mib(m[f'loss_ours_{n}'])} = {m[f'loss_ours_{n}'] / tok / 1024:.0f} KiB/token | "
            f"{m[f'loss_reference_{n}'] / m[f'loss_ours_{n}']:.0f}x less |"
        )
    for n in sizes:
        tok = m[f"tokens_{n}"]
        lines.append(
            f"| unlikelihood term alone, {n} context(s) (fwd+bwd) | {m[f'ul_reference_{n}'] / tok / 1024:.0f} KiB/token "
            f"| {m[f'ul_ours_{n}'] / tok:.0f} bytes/token | {m[f'ul_reference_{n}'] / max(m[f'ul_ours_{n}'], 1):.0f}x less |"
        )
    lines += [
        "",
        "The reference computes full (rows x length x vocab) logits and, for the unlikelihood term, a softmax, `1 - p`, "
        "clamp and log over the whole vocabulary (as in Welleck et al.'s code) before picking the label entries. "
        "PossibilityTrainer sends only labelled positions through the LM head and gets -log(1-p) from each label's "
        f"log-prob, so its unlikelihood term stores a few numbers per token, independent of the vocabulary "
        f"({info['vocab']} entries). Memory: peak bytes of tensors allocated in the measured region and still alive "
        "(TorchDispatchMode accounting; the region's inputs excluded). Losses at the initial weights (eval mode): "
        f"{m['loss_reference']:.6f} (reference) vs {m['loss_ours']:.6f} (PossibilityTrainer). Targets: throughput "
        f">= {THROUGHPUT_TARGET}x; unlikelihood term O(tokens).",
    ]
    return "\n".join(lines)


# ----- shared prefix vs per row (issue 20) ------------------------------------------------------------------------------
def contexts_of_length(records: list[dict], tokenizer, template, tokens: int, count: int) -> list[dict]:
    """`count` dialogue records whose prompt is `tokens` +- 15 tokens: a record's turns, extended with the
    following records' turns while too short (real dialogue text, longer than any single bundled context)."""

    def length(turns):
        record = {"context": turns, "candidates": []}
        return len(
            tokenizer(template.prompt_text(tokenizer, record, 1), add_special_tokens=False)["input_ids"]
        )

    out = []
    for i, record in enumerate(records):
        turns, j = list(record["context"]), i + 1
        while length(turns) < tokens - 15 and j < len(records):
            turns, j = turns + records[j]["context"], j + 1
        if abs(length(turns) - tokens) <= 15:
            out.append({**record, "id": f"{record['id']}+{j - i - 1}", "context": turns})
        if len(out) == count:
            return out
    raise SystemExit(f"not enough contexts of about {tokens} tokens in the bundled dialogue data")


def shared_prefix_cell(
    model_id: str, records: list[dict], negatives: int, steps: int, warmup: int, output_dir: str
) -> dict[str, Any]:
    """Per-row and shared-prefix steps interleaved on one LoRA model; then one step of each under memory tracking."""
    from peft import LoraConfig

    from peft_diversity.models.loading import load_model_and_tokenizer
    from peft_diversity.trainer.trainer import PossibilityCollator, PossibilityTrainer, build_train_dataset

    model, tokenizer = load_model_and_tokenizer(model_id, dtype=torch.float32)
    args = make_args(output_dir, warmup + steps, 2e-4, 1024)
    args.max_negatives = negatives
    dataset = build_train_dataset(records, tokenizer, args)
    lora = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    trainer = PossibilityTrainer(
        model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=lora
    )
    model = trainer.model
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.learning_rate)
    pad = tokenizer.pad_token_id
    collate = {"per_row": PossibilityCollator(pad), "shared": PossibilityCollator(pad, shared_prefix=True)}

    def step(path: str, item) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        trainer.training_step(model, collate[path]([item]))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - wall, time.process_time() - cpu

    times: dict[str, list[float]] = {"per_row": [], "shared": [], "per_row_cpu": [], "shared_cpu": []}
    for i in range(warmup + steps):
        order = ("per_row", "shared") if i % 2 == 0 else ("shared", "per_row")
        for path in order:
            wall, cpu = step(path, dataset[i])
            if i >= warmup:
                times[path].append(wall)
                times[f"{path}_cpu"].append(cpu)
    memory = {}
    for path in ("per_row", "shared"):
        batch = collate[path]([dataset[0]])
        memory[path] = peak_bytes(lambda batch=batch: trainer.training_step(model, batch))
        model.zero_grad(set_to_none=True)
    shared = collate["shared"]([dataset[0]])
    return {
        "times": times,
        "memory": memory,
        "rows": len(dataset[0]["input_ids"]),
        "row_tokens": sum(len(ids) for ids in dataset[0]["input_ids"]) / len(dataset[0]["input_ids"]),
        "prefix_tokens": int(shared["prefix_attention_mask"].sum()),
    }


def shared_prefix_markdown(cells: dict[tuple[int, int], dict], a: argparse.Namespace, load: float) -> str:
    lines = [
        f"### Shared-prefix training vs per-row training ({a.model}, LoRA r=16 all-linear)",
        "",
        f"Command: `OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/bench_training.py --shared-prefix "
        f"--model-name-or-path {a.model} --steps {a.steps} --warmup {a.warmup} --negatives {' '.join(map(str, a.negatives))} "
        f"--context-tokens {' '.join(map(str, a.context_tokens))}`  ",
        f"Machine: 2-core CPU, no GPU ({platform.processor() or platform.machine()}, shared with other agents: load "
        f"average {load:.1f} at the end), torch {torch.__version__}, {torch.get_num_threads()} thread, float32; date "
        f"{datetime.date.today().isoformat()}. One context per step; both paths interleaved step by step in one "
        f"process ({a.warmup} untimed warm-up step(s), {a.steps} timed steps per cell); a step = collation + "
        "forward + backward + AdamW step.",
        "",
        "| context | rows (pos + neg) | tokens per row (shared prefix) | per row: s/step (CPU s) | shared: s/step "
        "(CPU s) | **steps/s ratio**, wall (CPU time) | peak memory per row | shared | memory ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (tokens, negatives), c in sorted(cells.items()):
        t = c["times"]
        lines.append(
            f"| ~{tokens} tokens | {c['rows']} (4 + {negatives}) | {c['row_tokens']:.0f} ({c['prefix_tokens']}) | "
            f"{_mean(t['per_row']):.2f} ({_mean(t['per_row_cpu']):.2f}) | {_mean(t['shared']):.2f} "
            f"({_mean(t['shared_cpu']):.2f}) | **{_median_ratio(t['per_row'], t['shared']):.2f}x** "
            f"({_median_ratio(t['per_row_cpu'], t['shared_cpu']):.2f}x) | {_mib(c['memory']['per_row'])} | "
            f"{_mib(c['memory']['shared'])} | {c['memory']['per_row'] / c['memory']['shared']:.1f}x less |"
        )
    lines += [
        "",
        "Ratios: median over the steps of (per-row step time / shared step time), wall clock and process CPU time "
        "(CPU time is the steadier one on a shared machine).",
        "Memory: peak bytes of tensors allocated during one training step and still alive (forward + backward, "
        "LoRA gradients; the TorchDispatchMode accounting of the table above). Same loss and gradients both ways "
        f"(tests/test_shared_prefix.py). Target: >= {SHARED_PREFIX_TARGET:.0f}x at 4 + 12.",
    ]
    return "\n".join(lines)


def run_shared_prefix(a: argparse.Namespace) -> int:
    from peft_diversity.data import load_one_to_many
    from peft_diversity.models.loading import load_model_and_tokenizer
    from peft_diversity.templates import PossibilityTemplate

    _, tokenizer = load_model_and_tokenizer(
        a.model, dtype=torch.float32
    )  # materialises a built-in model once
    records = load_one_to_many("builtin:dialogue", split="train")
    cells = {}
    for tokens in a.context_tokens:
        chosen = contexts_of_length(records, tokenizer, PossibilityTemplate(), tokens, a.warmup + a.steps)
        for negatives in a.negatives:
            cell = shared_prefix_cell(a.model, chosen, negatives, a.steps, a.warmup, tempfile.mkdtemp())
            cells[tokens, negatives] = cell
            t = cell["times"]
            print(
                f"~{tokens} tokens, 4+{negatives}: per row {t['per_row']} s (CPU {t['per_row_cpu']}), shared "
                f"{t['shared']} s (CPU {t['shared_cpu']}), memory "
                f"{_mib(cell['memory']['per_row'])} vs {_mib(cell['memory']['shared'])}",
                file=sys.stderr,
            )
    snippet = shared_prefix_markdown(cells, a, os.getloadavg()[0])
    print(snippet)
    if a.markdown:
        a.markdown.write_text(snippet + "\n", encoding="utf-8")
    at_12 = [c["times"] for (_, negatives), c in cells.items() if negatives >= 12]
    worst = min(
        (_median_ratio(t["per_row_cpu"], t["shared_cpu"]) for t in at_12), default=SHARED_PREFIX_TARGET
    )
    return 0 if worst >= SHARED_PREFIX_TARGET else 1


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _median_ratio(per_row: list[float], shared: list[float]) -> float:
    ratios = sorted(r / s for r, s in zip(per_row, shared, strict=True))
    return ratios[len(ratios) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-name-or-path", dest="model", default="builtin:minilm-decoder")
    from peft_diversity.cli import reject_renamed

    reject_renamed(
        parser, {"--model": "--model-name-or-path"}
    )  # one flag name per concept (docs/architecture.md)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--memory-contexts", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument(
        "--shared-prefix",
        action="store_true",
        help="measure the shared-prefix path against the per-row path instead (issue 20)",
    )
    parser.add_argument("--negatives", type=int, nargs="+", default=[4, 12], help="with --shared-prefix")
    parser.add_argument(
        "--context-tokens", type=int, nargs="+", default=[100, 200], help="with --shared-prefix"
    )
    a = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.shared_prefix:
        return run_shared_prefix(a)

    from peft_diversity.data import load_one_to_many
    from peft_diversity.models.loading import load_model_and_tokenizer
    from peft_diversity.trainer.trainer import build_train_dataset

    start = time.perf_counter()
    _, tokenizer = load_model_and_tokenizer(
        a.model, dtype=torch.float32
    )  # materialises a built-in model once
    print(f"model ready in {time.perf_counter() - start:.1f}s", file=sys.stderr)
    total = a.warmup + a.steps
    args = make_args(tempfile.mkdtemp(prefix="bench_training-"), total, a.learning_rate, a.max_length)
    records = load_one_to_many("builtin:dialogue", split="train")[:total]
    dataset = build_train_dataset(records, tokenizer, args)
    groups = [dataset[i] for i in range(total)]
    stats = [context_stats(g) for g in groups[a.warmup :]]

    runs = []
    for rep in range(a.repeats):
        runs.append(run_interleaved(a.model, dataset, groups, args))
        t = summarize(runs[-1:], stats, a.warmup)
        print(
            f"run {rep + 1}: PossibilityTrainer {t['ours_tps']:.0f} tok/s, reference {t['reference_tps']:.0f} "
            f"tok/s ({t['speedup']:.2f}x; CPU time {t['speedup_cpu']:.2f}x)",
            file=sys.stderr,
        )
    throughput = summarize(runs, stats, a.warmup)
    memory = measure_memory(a.model, dataset, groups, args, tuple(a.memory_contexts))
    info = {
        "tokens_per_step": sum(s["tokens"] for s in stats) / a.steps,
        "labelled_per_step": sum(s["labelled"] for s in stats) / a.steps,
        "vocab": len(tokenizer),
        "load": os.getloadavg()[0],
    }
    ul_per_token = max(memory[f"ul_ours_{n}"] / memory[f"tokens_{n}"] for n in a.memory_contexts)
    agree = abs(memory["loss_ours"] - memory["loss_reference"]) <= 1e-4 * abs(memory["loss_reference"])
    print(f"losses per step (PossibilityTrainer): {[round(x, 4) for x in runs[-1]['ours_losses']]}")
    print(f"losses per step (reference):          {[round(x, 4) for x in runs[-1]['reference_losses']]}")
    print(
        f"throughput {throughput['speedup']:.2f}x (target >= {THROUGHPUT_TARGET}x); UL term {ul_per_token:.0f} "
        f"bytes/token (limit {UL_BYTES_PER_TOKEN_LIMIT}); losses agree at init: {agree}"
    )
    snippet = markdown(throughput, memory, info, a)
    print()
    print(snippet)
    if a.markdown:
        a.markdown.write_text(snippet + "\n", encoding="utf-8")
    ok = throughput["speedup"] >= THROUGHPUT_TARGET and ul_per_token < UL_BYTES_PER_TOKEN_LIMIT and agree
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
