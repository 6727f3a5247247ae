"""Maintainer script: rebuild the shipped warm-up delta of `builtin:minilm-decoder` (not part of the package).

all-MiniLM-L6-v2 was trained as a sentence encoder; as a causal decoder it babbles. The warm-up fine-tunes it on
the bundled dialogue TRAIN split (every (context, candidate) pair as a one-to-one example, plain prompt, no
possibility tag) and stores the change as a delta: by default full fine-tuning of every non-embedding weight
(`--rank 0`), with the word and position embeddings scaled by `--embedding-scale` (see docs/architecture.md);
`--rank N` stores LoRA factors instead. The package merges the delta in when it materialises the builtin.

    python scripts/build_minilm_warmup.py            # writes peft_diversity/resources/minilm_decoder_warmup.safetensors
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from peft_diversity.atomic import atomic_path

logger = logging.getLogger(__name__)

LORA_TARGETS = ["query", "key", "value", "dense"]


def extract_delta(peft_model) -> dict[str, torch.Tensor]:
    """LoRA factors (scaling folded into B) plus every other trainable tensor, keyed by base-model names."""
    delta: dict[str, torch.Tensor] = {}
    for module_name, module in peft_model.base_model.model.named_modules():
        if hasattr(module, "lora_A") and "default" in module.lora_A:
            scale = module.scaling["default"]
            delta[f"{module_name}.lora_A"] = module.lora_A["default"].weight.detach().clone().half()
            delta[f"{module_name}.lora_B"] = (module.lora_B["default"].weight.detach() * scale).half()
    for name, param in peft_model.base_model.model.named_parameters():
        if param.requires_grad and "lora_" not in name:
            delta[name.replace(".base_layer", "")] = param.detach().clone().half()
    return delta


def warmup_records(split: str = "train") -> list[dict]:
    """One record per (context, candidate) pair of the bundled dialogue split."""
    from peft_diversity.data import load_one_to_many

    records = load_one_to_many("builtin:dialogue", split=split)
    return [
        {"id": f"{r['id']}#{i}", "context": r["context"], "candidates": [c]}
        for r in records
        for i, c in enumerate(r["candidates"])
    ]


def build_warmup(
    output: Path,
    epochs: float = 3.0,
    rank: int = 64,
    learning_rate: float = 1e-3,
    batch_size: int = 32,
    seed: int = 0,
    max_minutes: float | None = None,
    embedding_scale: float = 1.0,
) -> Path:
    """Train the warm-up LoRA on the raw MiniLM decoder and write the delta file atomically.

    `max_minutes` stops training early (the schedule is constant after warm-up, so any stop point is a
    usable model); the delta records how many steps it got.
    """
    from peft import LoraConfig, get_peft_model

    from peft_diversity.models.minilm import build_minilm_decoder_raw
    from peft_diversity.trainer.config import PossibilityConfig
    from peft_diversity.trainer.trainer import PossibilityTrainer

    model, tokenizer = build_minilm_decoder_raw()
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(embedding_scale)
        model.bert.embeddings.position_embeddings.weight.mul_(embedding_scale)
    if rank > 0:
        lora = LoraConfig(
            r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=LORA_TARGETS, task_type="CAUSAL_LM"
        )
        model = get_peft_model(model, lora)
        for name, param in model.named_parameters():
            if "LayerNorm" in name or name.endswith("lm_head.bias") or "position_embeddings" in name:
                param.requires_grad = True
    else:  # full fine-tuning of everything but the (tied) word embeddings
        model.get_input_embeddings().weight.requires_grad = False
    with tempfile.TemporaryDirectory() as out:
        args = PossibilityConfig(
            output_dir=out,
            mode="oto",
            num_candidates=1,
            num_train_epochs=epochs,
            learning_rate=learning_rate,
            per_device_train_batch_size=batch_size,
            lr_scheduler_type="constant_with_warmup",
            warmup_steps=20,
            logging_steps=10,
            save_strategy="no",
            report_to=[],
            bf16=False,
            activation_checkpointing=False,
            seed=seed,
            max_length=160,
        )
        trainer = PossibilityTrainer(
            model, args=args, train_dataset=warmup_records(), processing_class=tokenizer
        )
        if max_minutes is not None:
            trainer.add_callback(_TimeLimit(max_minutes * 60))
        trainer.train()
        steps = trainer.state.global_step
    delta = (
        extract_delta(model)
        if rank > 0
        else {name: p.detach().clone().half() for name, p in model.named_parameters() if p.requires_grad}
    )
    with atomic_path(output) as tmp:
        save_file(
            delta,
            str(tmp),
            metadata={
                "rank": str(rank),
                "steps": str(steps),
                "batch_size": str(batch_size),
                "learning_rate": str(learning_rate),
                "embedding_scale": str(embedding_scale),
            },
        )
    return output


class _TimeLimit:
    """Trainer callback: stop after a wall-clock budget."""

    def __init__(self, seconds: float):
        import time

        self.deadline = time.monotonic() + seconds

    def on_step_end(self, args, state, control, **kwargs):
        import time

        if time.monotonic() > self.deadline:
            control.should_training_stop = True
        return control

    def __getattr__(self, name):  # every other TrainerCallback event is a no-op
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)


def main() -> None:
    from peft_diversity.models.minilm import WARMUP_FILE

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=WARMUP_FILE)
    parser.add_argument("--epochs", type=float, default=5.0)
    parser.add_argument("--rank", type=int, default=0, help="LoRA rank; 0 = full fine-tuning (no embeddings)")
    parser.add_argument("--embedding-scale", type=float, default=8.0)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-minutes", type=float, default=None, help="stop training after this long")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    path = build_warmup(
        args.output,
        args.epochs,
        args.rank,
        args.learning_rate,
        args.batch_size,
        max_minutes=args.max_minutes,
        embedding_scale=args.embedding_scale,
    )
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
