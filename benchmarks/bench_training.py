"""Benchmark PossibilityTrainer against the paper-procedure reference loop in ``reference_training.py``.

    python benchmarks/bench_training.py [--model builtin:minilm-decoder] [--steps 10] [--warmup 2] [--repeats 1]
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
    from peft_diversity.trainer.trainer import PossibilityTrainer

    ref = _reference_module()
    ours_model, tokenizer = load_model_and_tokenizer(model_id, dtype=torch.float32)
    ref_model, _ = load_model_and_tokenizer(model_id, dtype=torch.float32)
    trainer = PossibilityTrainer(ours_model, args=args, train_dataset=dataset, processing_class=tokenizer)
    collate = trainer.data_collator
    pad = tokenizer.pad_token_id
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
        batch = collate([dataset[i] for i in range(n)])
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
        f"Command: `python benchmarks/bench_training.py --model {a.model} --steps {a.steps} --warmup {a.warmup} "
        f"--repeats {a.repeats}{f' --threads {a.threads}' if a.threads else ''}`  ",
        f"Machine: 2-core CPU ({os.cpu_count()} logical CPUs visible, {platform.processor() or platform.machine()}, "
        f"shared with other work: load average {info['load']:.1f} at the end), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, float32; date {datetime.date.today().isoformat()}.  ",
        f"Data: contexts 1-{a.warmup + a.steps} of the bundled dialogue train split; one context per step (4 "
        f"positives + 12 negatives padded together; {info['tokens_per_step']:.0f} non-pad tokens per step on average, "
        f"{info['labelled_per_step']:.0f} of them labelled); AdamW, constant lr, no clipping. Both loops run in one "
        f"process, interleaved step by step ({a.warmup} untimed warm-up steps, {a.steps} timed steps, {a.repeats} "
        "run(s)).",
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="builtin:minilm-decoder")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--memory-contexts", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--markdown", type=Path, default=None)
    a = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if a.threads:
        torch.set_num_threads(a.threads)

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
