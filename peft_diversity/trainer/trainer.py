"""PossibilityTrainer: TRL's SFTTrainer with PoExFT rows and the MLE + unlikelihood loss.

Data flow: one-to-many records → `build_training_rows` (positives and negatives) → `encode_example`
(prompt tokens masked, completion tokens labelled; negatives label only the first sub-token of each content
word) → one dataset item per context (all its rows) → `PossibilityCollator` → `compute_loss`, which reads the
log-prob of each label token through `add_label_log_probs` (only labelled positions go through the LM head; no
(tokens x vocab) logits) and splits them into the two terms.
"""

from __future__ import annotations

import functools
import types
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from datasets import Dataset
from trl import SFTTrainer

from peft_diversity.data import load_one_to_many
from peft_diversity.models.heads import lm_head_logits
from peft_diversity.templates import PossibilityTemplate, TemplateError, ensure_chat_template
from peft_diversity.trainer.config import PossibilityConfig
from peft_diversity.trainer.loss import content_word_spans, first_subtoken_mask, poexft_loss
from peft_diversity.trainer.rows import build_training_rows

# peft looks for config.json under the adapter's base name to see whether the vocabulary grew; a builtin: name is
# no folder or Hub repo, so it warns and assumes it did not, which is right: builtins are never resized
warnings.filterwarnings("ignore", message="Could not find a config file in builtin:", module="peft")

IGNORE = -100


# ----- tokenization ---------------------------------------------------------------------------------------
def encode_example(
    tokenizer,
    template: PossibilityTemplate,
    record: dict[str, Any],
    k: int | None,
    response: str,
    negative: bool,
    max_length: int | None = None,
) -> dict[str, Any]:
    """Token ids and labels for one (record, k, response) row.

    The prompt is rendered with the generation prompt and the completion is the rest of the full chat
    rendering, so training sees exactly the prefix generation will use. Prompts are cut from the left when
    the row exceeds `max_length`.
    """
    prompt = template.prompt_text(tokenizer, record, k)
    full = tokenizer.apply_chat_template(template.messages(record, k, response), tokenize=False)
    if not full.startswith(prompt):
        raise TemplateError(
            "the tokenizer's chat template renders the prompt differently with and without the assistant turn; "
            "PoExFT needs the prompt to be a prefix of the full conversation"
        )
    completion = full[len(prompt):]
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    enc = tokenizer(completion, add_special_tokens=False, return_offsets_mapping=True)
    completion_ids = enc["input_ids"]
    if negative:
        start = completion.find(response)
        if start < 0:
            raise TemplateError("the chat template changed the response text; cannot locate its content words")
        spans = [(s + start, e + start) for s, e in content_word_spans(response)]
        mask = first_subtoken_mask(enc["offset_mapping"], spans)
        completion_labels = [t if m else IGNORE for t, m in zip(completion_ids, mask, strict=True)]
    else:
        completion_labels = list(completion_ids)
    if max_length is not None and len(prompt_ids) + len(completion_ids) > max_length:
        # The prompt keeps at least half the budget (its END, where the possibility number is); the
        # completion is cut if it still does not fit.
        keep = min(len(prompt_ids), max(max_length - len(completion_ids), max_length // 2))
        prompt_ids = prompt_ids[-keep:]
        completion_ids, completion_labels = completion_ids[: max_length - keep], completion_labels[: max_length - keep]
    return {
        "input_ids": prompt_ids + completion_ids,
        "labels": [IGNORE] * len(prompt_ids) + completion_labels,
        "negative": bool(negative),
    }


def build_train_dataset(records: list[dict[str, Any]], tokenizer, args: PossibilityConfig) -> Dataset:
    """Encode one-to-many records; one item per context holding all its rows (positives and negatives).

    Keeping a context's rows together means a batch of B contexts holds both terms of the loss for each of
    them, as in the paper's one-context-per-step procedure, instead of batches of only negatives.
    """
    ensure_chat_template(tokenizer, fallback=args.chat_template_fallback)
    template = args.template()
    rows = build_training_rows(
        records,
        mode=args.mode,
        num_candidates=args.num_candidates,
        max_possibility=args.max_possibility,
        max_negatives=args.max_negatives,
        seed=args.seed,
        max_response_words=args.max_response_words,
    )
    groups: dict[int, dict[str, list]] = {}
    for r in rows:
        enc = encode_example(tokenizer, template, records[r.record_index], r.k, r.response, r.negative, args.max_length)
        group = groups.setdefault(r.record_index, {"input_ids": [], "labels": [], "negative": []})
        for key in group:
            group[key].append(enc[key])
    return Dataset.from_list([groups[i] for i in sorted(groups)])


class PossibilityCollator:
    """Flattens context groups into rows; right-pads input_ids/labels; carries the per-row `negative` flag."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        rows = [(ids, lab, neg) for e in examples
                for ids, lab, neg in zip(e["input_ids"], e["labels"], e["negative"], strict=True)]
        length = max(len(ids) for ids, _, _ in rows)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), length), IGNORE, dtype=torch.long)
        attention = torch.zeros((len(rows), length), dtype=torch.long)
        for i, (ids, lab, _) in enumerate(rows):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            labels[i, : len(ids)] = torch.tensor(lab)
            attention[i, : len(ids)] = 1
        negative = torch.tensor([bool(neg) for _, _, neg in rows])
        return {"input_ids": input_ids, "attention_mask": attention, "labels": labels, "negative": negative}


# ----- selected-position LM head --------------------------------------------------------------------------
def add_label_log_probs(model) -> None:
    """Patch `model.forward` so `model(..., labels=l, label_log_probs=True)` returns (log_probs, label_mask).

    Only positions whose next-token label is set go through the LM head: prompt tokens and the non-content
    tokens of negatives cost nothing there, and no (batch x seq x vocab) logits exist. Patching `forward`
    (rather than calling submodules) keeps DDP/FSDP wrappers' hooks in the call path. Apply before peft wraps
    the model; the backbone and head are looked up per call, since peft replaces modules inside them.
    """
    previous = model.forward

    @functools.wraps(type(model).forward)
    def forward(self, *args, label_log_probs: bool = False, labels=None, **kwargs):
        if not label_log_probs:
            return previous(*args, labels=labels, **kwargs) if labels is not None else previous(*args, **kwargs)
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state[:, :-1]
        targets = labels[:, 1:].to(hidden.device)
        mask = targets != IGNORE
        logits = lm_head_logits(self, hidden[mask])
        selected = -F.cross_entropy(logits.float(), targets[mask], reduction="none")
        log_probs = selected.new_zeros(mask.shape).masked_scatter(mask, selected)
        return types.SimpleNamespace(log_probs=log_probs, label_mask=mask)

    model.forward = types.MethodType(forward, model)


# ----- trainer ------------------------------------------------------------------------------------------------
class PossibilityTrainer(SFTTrainer):
    """SFTTrainer for one-to-many data with the PoExFT loss (modes `poexft`, `otm`, `oto`).

    `train_dataset` may be one-to-many records (list of dicts, a path, `builtin:dialogue`, a `datasets.Dataset`
    with a `candidates` column) or an already encoded Dataset from `build_train_dataset`.
    """

    # compute_loss divides by the token counts of the whole accumulation step (see _get_num_items_in_batch)
    loss_is_scaled_for_ga = True

    def __init__(self, model, args: PossibilityConfig, train_dataset: Any = None, processing_class=None, **kwargs):
        if not isinstance(args, PossibilityConfig):
            raise TypeError(f"args must be a PossibilityConfig, got {type(args).__name__}")
        if processing_class is None:
            raise ValueError("PossibilityTrainer needs the tokenizer as `processing_class`")
        train_dataset = self._encode(train_dataset, processing_class, args)
        eval_dataset = kwargs.pop("eval_dataset", None)
        if eval_dataset is not None:
            eval_dataset = self._encode(eval_dataset, processing_class, args)
        kwargs.setdefault("data_collator", PossibilityCollator(processing_class.pad_token_id, args.pad_to_multiple_of))
        self.template = args.template()
        self._token_counts: torch.Tensor | None = None
        super().__init__(
            model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
            processing_class=processing_class, **kwargs,
        )
        from peft import PeftModel

        add_label_log_probs(self.model.get_base_model() if isinstance(self.model, PeftModel) else self.model)

    @staticmethod
    def _encode(dataset: Any, tokenizer, args: PossibilityConfig) -> Dataset:
        if isinstance(dataset, Dataset) and "input_ids" in dataset.column_names:
            return dataset
        records = dataset if isinstance(dataset, list) else load_one_to_many(dataset, split="train")
        return build_train_dataset(records, tokenizer, args)

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device):
        """Count positive and negative label tokens over the accumulation step (and all processes)."""
        if not batch_samples:
            return None
        counts = torch.zeros(2, dtype=torch.long)
        for batch in batch_samples:
            has_label = batch["labels"][:, 1:] != IGNORE
            neg = batch["negative"].bool()[:, None]
            counts += torch.stack([(has_label & ~neg).sum(), (has_label & neg).sum()]).cpu()
        counts = counts.to(device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            counts = self.accelerator.gather(counts[None]).sum(0)
        self._token_counts = counts
        return counts.sum()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        negative = inputs.pop("negative")
        outputs = model(**inputs, label_log_probs=True)
        global_counts = num_items_in_batch is not None and self._token_counts is not None
        n_pos, n_neg = self._token_counts if global_counts else (None, None)
        loss, _, _ = poexft_loss(outputs.log_probs, outputs.label_mask, negative, self.args.ul_weight, n_pos, n_neg)
        if global_counts and self.args.average_tokens_across_devices and self.args.world_size > 1:
            loss = loss * self.accelerator.num_processes  # DDP averages gradients; counts are already global
        with torch.no_grad():
            _, mle, ul = poexft_loss(outputs.log_probs, outputs.label_mask, negative, self.args.ul_weight)
        self._metrics[mode]["mle_loss"].append(self.accelerator.gather_for_metrics(mle.detach()).mean().item())
        if self.args.mode == "poexft":
            self._metrics[mode]["ul_loss"].append(self.accelerator.gather_for_metrics(ul.detach()).mean().item())
        if mode == "train":
            tokens = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            self._total_train_tokens += tokens
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return (loss, outputs) if return_outputs else loss

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save weights/adapter and tokenizer, plus the possibility template the model was trained with."""
        super().save_model(output_dir, _internal_call)
        if self.args.should_save:
            self.template.save_pretrained(output_dir or self.args.output_dir)
