"""Reference PoExFT training loop, following the paper's published procedure (arXiv 2412.03343, Sec. 3).

One context per optimizer step: its N positives (k_i, response_i) and N(N-1) negatives (k_i, response_j) are padded
together into one batch (4 + 12 rows for N = 4); the model returns full (rows x length x vocab) logits; the MLE term
is the cross-entropy of the positives' completion tokens; the unlikelihood term is computed the way Welleck et al.'s
reference code does it: a full softmax over the vocabulary, `1 - p` clamped at 1e-5 and its log for every vocabulary
entry, then the label entries picked out, on the negatives' labelled tokens (first sub-tokens of content words).

Written independently of `peft_diversity.trainer` / `peft_diversity.loss`: it takes already encoded rows (the
benchmark feeds both implementations the same token ids and labels) and uses plain torch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

IGNORE = -100
CLAMP = 1e-5


def pad_context(group: dict[str, Sequence], pad_token_id: int) -> dict[str, torch.Tensor]:
    """One context's rows, right-padded to its longest row."""
    rows = list(zip(group["input_ids"], group["labels"], group["negative"], strict=True))
    length = max(len(ids) for ids, _, _ in rows)
    input_ids = torch.full((len(rows), length), pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, (ids, lab, _) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.as_tensor(ids)
        labels[i, : len(lab)] = torch.as_tensor(lab)
        attention_mask[i, : len(ids)] = 1
    negative = torch.as_tensor([bool(n) for _, _, n in rows])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels, "negative": negative}


def unlikelihood_full_vocab(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean -log(1 - p(target)) over `mask`, via the full softmax (Welleck et al. 2020 style)."""
    lprobs = F.log_softmax(logits.float(), dim=-1)
    one_minus_probs = torch.clamp(1.0 - lprobs.exp(), min=CLAMP)
    ul_all = -torch.log(one_minus_probs)  # (rows, positions, vocab)
    picked = ul_all.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum() / mask.sum().clamp(min=1)


def reference_loss(
    model, batch: dict[str, torch.Tensor], ul_weight: float
) -> tuple[torch.Tensor, float, float]:
    """(loss, mle, ul) for one padded context."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logits, targets = logits[:, :-1], batch["labels"][:, 1:]
    labelled = targets != IGNORE
    negative = batch["negative"][:, None]
    pos, neg = labelled & ~negative, labelled & negative
    pos_targets = targets.masked_fill(~pos, IGNORE)
    mle = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), pos_targets.reshape(-1), ignore_index=IGNORE
    )
    ul = unlikelihood_full_vocab(logits, targets, neg) if neg.any() else logits.new_zeros(())
    return mle + ul_weight * ul, mle.item(), ul.item()


class ReferenceLoop:
    """One optimizer step per context with AdamW (constant lr, no weight decay, no clipping)."""

    def __init__(self, model, pad_token_id: int, *, learning_rate: float = 2e-5, ul_weight: float = 0.5):
        self.model = model.train()
        self.pad_token_id = pad_token_id
        self.ul_weight = ul_weight
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)

    def step(self, group: dict[str, Any]) -> dict[str, float]:
        """Pad, forward, backward, update; returns the losses and the step's wall and process CPU seconds."""
        wall, cpu = time.perf_counter(), time.process_time()
        batch = pad_context(group, self.pad_token_id)
        loss, mle, ul = reference_loss(self.model, batch, self.ul_weight)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        value = loss.item()
        return {
            "loss": value,
            "mle": mle,
            "ul": ul,
            "wall": time.perf_counter() - wall,
            "cpu": time.process_time() - cpu,
        }


def train(
    model, groups: Sequence[dict[str, Any]], pad_token_id: int, **kwargs: Any
) -> list[dict[str, float]]:
    """Train on `groups`, one context per step; one result dict per step (see `ReferenceLoop.step`)."""
    loop = ReferenceLoop(model, pad_token_id, **kwargs)
    return [loop.step(group) for group in groups]
