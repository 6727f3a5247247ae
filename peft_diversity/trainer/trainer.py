"""PossibilityTrainer: TRL's SFTTrainer with PoExFT rows and the MLE + unlikelihood loss.

Data flow: one-to-many records → `build_training_rows` (positives and negatives) → `encode_example`
(prompt tokens masked, completion tokens labelled; negatives label only the first sub-token of each content
word) → one dataset item per context (all its rows) → `PossibilityCollator` → `compute_loss`, which reads the
log-prob of each label token through `add_label_log_probs` (only labelled positions go through the LM head; no
(tokens x vocab) logits) and splits them into the two terms.

Shared prefix (`PossibilityConfig.shared_prefix`, on by default): a context's rows are identical up to the
possibility number, so the collator splits each context at its rows' longest common, unlabelled token prefix;
the patched forward runs each context's prefix once with a KV cache, gathers it to the rows and runs only the
rows' tails on top (`shared_prefix.expand_cache`). Same loss and gradients as running every row in full.
"""

from __future__ import annotations

import functools
import logging
import types
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers.utils import ModelOutput
from trl import SFTTrainer

from peft_diversity import PAPER
from peft_diversity.data import load_one_to_many
from peft_diversity.errors import TrainConfigError
from peft_diversity.models.heads import lm_head_logits
from peft_diversity.shared_prefix import (
    MIN_SHARED_PREFIX,
    cache_argument,
    common_prefix_length,
    expand_cache,
    pad_left,
)
from peft_diversity.templates import PossibilityTemplate, TemplateError, ensure_chat_template
from peft_diversity.trainer.config import PossibilityConfig
from peft_diversity.trainer.loss import content_word_spans, first_subtoken_mask, poexft_loss
from peft_diversity.trainer.rows import MODE_CARDS, build_training_rows

# peft looks for config.json under the adapter's base name to see whether the vocabulary grew; a builtin: name is
# no folder or Hub repo, so it warns and assumes it did not, which is right: builtins are never resized
warnings.filterwarnings("ignore", message="Could not find a config file in builtin:", module="peft")

IGNORE = -100
logger = logging.getLogger(__name__)


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
    completion = full[len(prompt) :]
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    enc = tokenizer(completion, add_special_tokens=False, return_offsets_mapping=True)
    completion_ids = enc["input_ids"]
    if negative:
        start = completion.find(response)
        if start < 0:
            raise TemplateError(
                "the chat template changed the response text; cannot locate its content words"
            )
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
        completion_ids, completion_labels = (
            completion_ids[: max_length - keep],
            completion_labels[: max_length - keep],
        )
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
    if args.eos_token is not None and records:
        apply_eos_token(tokenizer, template, records[0], args)
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
        enc = encode_example(
            tokenizer, template, records[r.record_index], r.k, r.response, r.negative, args.max_length
        )
        group = groups.setdefault(r.record_index, {"input_ids": [], "labels": [], "negative": []})
        for key in group:
            group[key].append(enc[key])
    return Dataset.from_list([groups[i] for i in sorted(groups)])


def apply_eos_token(
    tokenizer, template: PossibilityTemplate, record: dict[str, Any], args: PossibilityConfig
) -> None:
    """Set `args.eos_token` on the tokenizer BEFORE rows are encoded, so rows end with the token the saved tokenizer
    names (SFTTrainer sets it only after, on the tokenizer it saves and the model's configs). A chat template that
    ends the assistant turn with a fixed token instead of `{{ eos_token }}` cannot honour it: an error, not a
    model trained to stop at one token while its tokenizer names another."""
    if args.eos_token not in tokenizer.get_vocab():
        raise TrainConfigError(f"eos_token={args.eos_token!r} is not in the tokenizer's vocabulary")
    # as a special token, so the rendered "...<eos>" is one token, not split into pieces ("[unused1]" -> "[", ...)
    tokenizer.add_special_tokens({"eos_token": args.eos_token})
    probe = encode_example(
        tokenizer, template, record, 1 if args.mode == "poexft" else None, "ok", negative=False
    )
    if tokenizer.eos_token_id not in probe["labels"]:
        raise TrainConfigError(
            f"eos_token={args.eos_token!r}: the tokenizer's chat template ends the assistant turn without it (no "
            "{{ eos_token }} there), so training would never teach the model to emit it; leave eos_token unset or "
            "use a chat template that ends the turn with {{ eos_token }}"
        )


class PossibilityCollator:
    """Flattens context groups into rows; right-pads input_ids/labels; carries the per-row `negative` flag.

    With `shared_prefix=True` each context is split at `prefix_length`: the batch then holds the contexts'
    prefixes (`prefix_input_ids`, `prefix_attention_mask`: contexts x prefix, LEFT-padded so prefix and tail are
    contiguous), `row_to_group` (each row's context) and the rows' tails as `input_ids` / `attention_mask` /
    `labels` (all labels lie in the tails, so label counts are those of the full rows). A context whose rows share
    fewer than `MIN_SHARED_PREFIX` tokens gets an empty prefix (its rows are tails in full), a batch of only such
    contexts is collated per row; either is logged once.
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None, shared_prefix: bool = False):
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of
        self.shared_prefix = shared_prefix
        self._warned = False

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if self.shared_prefix:
            lengths = [prefix_length(e["input_ids"], e["labels"]) for e in examples]
            if min(lengths) < MIN_SHARED_PREFIX and not self._warned:
                # e.g. rows whose prompts were cut from the left to fit max_length no longer start alike
                logger.warning(
                    "shared_prefix: a context's rows share only %d unlabelled prompt tokens (< %d, e.g. "
                    "prompts cut to fit max_length); such contexts run their rows in full",
                    min(lengths),
                    MIN_SHARED_PREFIX,
                )
                self._warned = True
            if max(lengths) >= MIN_SHARED_PREFIX:
                return self._collate_shared(examples, [n if n >= MIN_SHARED_PREFIX else 0 for n in lengths])
        rows = [
            (ids, lab, neg)
            for e in examples
            for ids, lab, neg in zip(e["input_ids"], e["labels"], e["negative"], strict=True)
        ]
        return self._pad_rows(rows)

    def _pad_rows(self, rows: list[tuple[list[int], list[int], bool]]) -> dict[str, torch.Tensor]:
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

    def _collate_shared(self, examples: list[dict[str, Any]], lengths: list[int]) -> dict[str, torch.Tensor]:
        tails = [
            (ids[n:], lab[n:], neg)
            for e, n in zip(examples, lengths, strict=True)
            for ids, lab, neg in zip(e["input_ids"], e["labels"], e["negative"], strict=True)
        ]
        batch = self._pad_rows(tails)
        prefixes = [e["input_ids"][0][:n] for e, n in zip(examples, lengths, strict=True)]
        batch["prefix_input_ids"], batch["prefix_attention_mask"] = pad_left(prefixes, self.pad_token_id)
        batch["row_to_group"] = torch.tensor([g for g, e in enumerate(examples) for _ in e["input_ids"]])
        return batch


def prefix_length(rows: list[list[int]], labels: list[list[int]]) -> int:
    """Tokens a context's rows can share: their common prefix, ending before the last token that predicts a label.

    The prefix's hidden states predict nothing, so every label is scored from a tail position; each tail keeps at
    least one token.
    """
    first_label = min(next((i for i, t in enumerate(lab) if t != IGNORE), len(lab)) for lab in labels)
    return max(0, min(common_prefix_length(rows), first_label - 1))


@dataclass
class LabelLogProbs(ModelOutput):
    """What `model(..., label_log_probs=True)` returns. A ModelOutput (a dict), so DDP's unused-parameter search
    finds the tensors (it does not look inside other objects, and would mark every parameter unused)."""

    log_probs: torch.Tensor | None = None
    label_mask: torch.Tensor | None = None


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
    def forward(
        self,
        *args,
        label_log_probs: bool = False,
        labels=None,
        prefix_input_ids=None,
        prefix_attention_mask=None,
        row_to_group=None,
        **kwargs,
    ):
        if not label_log_probs:
            return (
                previous(*args, labels=labels, **kwargs) if labels is not None else previous(*args, **kwargs)
            )
        if prefix_input_ids is not None:
            hidden = shared_prefix_hidden(
                self, prefix_input_ids, prefix_attention_mask, row_to_group, **kwargs
            )
        else:
            kwargs["use_cache"] = False
            hidden = self.base_model(*args, **kwargs).last_hidden_state
        hidden = hidden[:, :-1]
        targets = labels[:, 1:].to(hidden.device)
        mask = targets != IGNORE
        logits = lm_head_logits(self, hidden[mask])
        selected = -F.cross_entropy(logits.float(), targets[mask], reduction="none")
        log_probs = selected.new_zeros(mask.shape).masked_scatter(mask, selected)
        return LabelLogProbs(log_probs=log_probs, label_mask=mask)

    model.forward = types.MethodType(forward, model)


def shared_prefix_hidden(
    model,
    prefix_input_ids: torch.Tensor,
    prefix_attention_mask: torch.Tensor,
    row_to_group: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    **kwargs,
) -> torch.Tensor:
    """Last hidden states of the rows' tails: each context's prefix runs once, its KV cache is gathered to the rows.

    Grad stays on through both passes, so the rows' gradients sum into the shared prefix. Positions follow the
    masks, so a row's tokens get the positions they have when the row runs in full.
    """
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    kwargs.pop("use_cache", None)
    kwargs[cache_argument(type(model.base_model))] = cache
    prefix_positions = (prefix_attention_mask.cumsum(-1) - 1).clamp(min=0)
    model.base_model(
        input_ids=prefix_input_ids,
        attention_mask=prefix_attention_mask,
        position_ids=prefix_positions,
        use_cache=True,
        **kwargs,
    )
    if not expand_cache(cache, row_to_group):
        raise RuntimeError(
            f"{type(model).__name__} returned no cache that can be expanded to rows; "
            "train with shared_prefix=False"
        )
    row_prefix_mask = prefix_attention_mask[row_to_group]
    positions = row_prefix_mask.sum(-1, keepdim=True) + torch.arange(
        input_ids.shape[1], device=input_ids.device
    )
    mask = torch.cat([row_prefix_mask, attention_mask], dim=1)
    out = model.base_model(
        input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True, **kwargs
    )
    return out.last_hidden_state


def shared_prefix_blocker(model, args: PossibilityConfig) -> str | None:
    """Why a context's rows cannot share one prefix pass with this model and these settings; None when they can."""
    if args.activation_checkpointing or getattr(model, "is_activation_checkpointing", False):
        return "activation (gradient) checkpointing recomputes layers without a KV cache"
    if args.packing:
        return "packing mixes contexts within a row"
    if args.mode == "oto":
        return "mode oto has one row per context, nothing to share"
    dynamic_cache = getattr(model, "_supports_default_dynamic_cache", None)  # transformers' GenerationMixin
    if getattr(model.config, "is_encoder_decoder", False) or dynamic_cache is None or not dynamic_cache():
        return f"{type(model).__name__} has no decoder KV cache (DynamicCache) to share"
    return None


# ----- trainer ------------------------------------------------------------------------------------------------
class PossibilityTrainer(SFTTrainer):
    """SFTTrainer for one-to-many data with the PoExFT loss (modes `poexft`, `otm`, `oto`).

    `train_dataset` may be one-to-many records (list of dicts, a path, `builtin:dialogue`, a `datasets.Dataset`
    with a `candidates` column) or an already encoded Dataset from `build_train_dataset`.
    """

    # compute_loss divides by the token counts of the whole accumulation step (see _get_num_items_in_batch)
    loss_is_scaled_for_ga = True
    # what TRL writes into the Hub card (create_model_card) and the model's tags (add_model_tags): the method
    # and its paper, not plain SFT
    _tag_names = ["trl", "sft", "peft-diversity", "poexft"]
    _name = "PoExFT"
    _paper = PAPER

    def __init__(
        self, model, args: PossibilityConfig, train_dataset: Any = None, processing_class=None, **kwargs
    ):
        if not isinstance(args, PossibilityConfig):
            raise TypeError(f"args must be a PossibilityConfig, got {type(args).__name__}")
        if processing_class is None:
            raise ValueError("PossibilityTrainer needs the tokenizer as `processing_class`")
        train_dataset = self._encode(train_dataset, processing_class, args)
        eval_dataset = kwargs.pop("eval_dataset", None)
        if eval_dataset is not None:
            eval_dataset = self._encode(eval_dataset, processing_class, args)
        collator = PossibilityCollator(processing_class.pad_token_id, args.pad_to_multiple_of)
        kwargs.setdefault("data_collator", collator)
        self.template = args.template()
        self._token_counts: torch.Tensor | None = None
        self._name, mode_tag = MODE_CARDS[args.mode]  # a baseline's card says which baseline
        self._tag_names = [*self._tag_names[:-1], mode_tag]
        super().__init__(
            model,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            **kwargs,
        )
        from peft import PeftModel

        base = self.model.get_base_model() if isinstance(self.model, PeftModel) else self.model
        add_label_log_probs(base)
        if args.shared_prefix:
            reason = shared_prefix_blocker(base, args)
            if reason:
                logger.warning("shared_prefix does not apply (%s): every row runs in full", reason)
            collator.shared_prefix = reason is None

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
        loss, _, _ = poexft_loss(
            outputs.log_probs, outputs.label_mask, negative, self.args.ul_weight, n_pos, n_neg
        )
        if global_counts and self.args.average_tokens_across_devices and self.args.world_size > 1:
            loss = loss * self.accelerator.num_processes  # DDP averages gradients; counts are already global
        with torch.no_grad():
            _, mle, ul = poexft_loss(outputs.log_probs, outputs.label_mask, negative, self.args.ul_weight)
        self._metrics[mode]["mle_loss"].append(
            self.accelerator.gather_for_metrics(mle.detach()).mean().item()
        )
        if self.args.mode == "poexft":
            self._metrics[mode]["ul_loss"].append(
                self.accelerator.gather_for_metrics(ul.detach()).mean().item()
            )
        if mode == "train":
            tokens = inputs["attention_mask"].sum()
            if "prefix_attention_mask" in inputs:  # count each row's shared prefix, as the per-row path does
                tokens = tokens + inputs["prefix_attention_mask"].sum(-1)[inputs["row_to_group"]].sum()
            tokens = self.accelerator.gather_for_metrics(tokens).sum().item()
            self._total_train_tokens += tokens
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return (loss, outputs) if return_outputs else loss

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save weights/adapter and tokenizer, plus the possibility template the model was trained with."""
        super().save_model(output_dir, _internal_call)
        if self.args.should_save:
            self.template.save_pretrained(output_dir or self.args.output_dir, mode=self.args.mode)
