"""Likelihood coherence: how much a reference causal LM's belief in a reply rises when it reads the context.

For a (context, reply) pair, with the context rendered as the task prompts it (`templates.PossibilityTemplate`,
plain closing sentence, the reference model's chat template):

    pmi      = mean over reply tokens of  log p(token | context prompt) - log p(token | baseline prompt)
    fluency  = mean over reply tokens of  log p(token | baseline prompt)
    score    = pmi + fluency_weight * fluency

The baseline prompt is the same template with an empty input (`baseline="empty"`) or with another prompt's
context (`baseline="shuffled"`, a seeded derangement). A reply token inside an n-gram (`copy_ngram` tokens) that
also occurs in the context prompt counts as explained by copying, not by understanding: its PMI is set to 0, so
parroting the context earns nothing (`copy_ngram=0` turns this off). The reply is followed by the tokenizer's eos
token, but that token is scored only with `score_end=True`: after a copied turn the model expects the end too, so
scoring it gave parrots back part of what the copy discount takes (docs/results.md, likelihood coherence).

Only the reply positions go through the LM head (no batch x sequence x vocab logits); fp32, no sampling, so the
scores are deterministic and do not depend on the batch size beyond float rounding.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from peft_diversity.errors import ScoringInputError

from ._common import check_predictions, mean

DEFAULT_REFERENCE_MODEL = "builtin:smollm2-135m-instruct"
BASELINES = ("empty", "shuffled")
DEFAULT_FLUENCY_WEIGHT = 0.0
DEFAULT_COPY_NGRAM = 4
DEFAULT_BATCH_SIZE = 8


# ----- token log-probs ---------------------------------------------------------------------------------------
@dataclass
class ReplyLogProbs:
    """Per-token log-probs of one reply under a context prompt and under the baseline prompt, and which
    reply tokens are copied from the context (`copied`, bool per token); `ends`: the last token is eos.

    Each reading is a mean over the reply's tokens (eos only with `score_end`); None when there is none."""

    context: np.ndarray
    baseline: np.ndarray
    copied: np.ndarray
    ends: bool = False

    def _span(self, score_end: bool) -> slice:
        return slice(None) if score_end or not self.ends else slice(None, -1)

    def pmi(self, copy_discount: bool = True, score_end: bool = False) -> float | None:
        span = self._span(score_end)
        gain = self.context[span] - self.baseline[span]
        if copy_discount:
            gain = np.where(self.copied[span], 0.0, gain)
        return float(gain.mean()) if len(gain) else None

    def fluency(self, score_end: bool = False) -> float | None:
        values = self.baseline[self._span(score_end)]
        return float(values.mean()) if len(values) else None

    def conditional(self, score_end: bool = False) -> float | None:
        values = self.context[self._span(score_end)]
        return float(values.mean()) if len(values) else None

    def score(
        self,
        fluency_weight: float = DEFAULT_FLUENCY_WEIGHT,
        copy_discount: bool = True,
        score_end: bool = False,
    ) -> float | None:
        pmi = self.pmi(copy_discount, score_end)
        if pmi is None or not fluency_weight:
            return pmi
        return pmi + fluency_weight * self.fluency(score_end)


def load_reference(model: Any = None, tokenizer: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer): objects as given, or an id / path / `builtin:` name loaded in fp32 (default SmolLM2)."""
    if model is None or isinstance(model, str):
        model, tokenizer = _load_named(model or DEFAULT_REFERENCE_MODEL)
    if tokenizer is None:
        raise ScoringInputError("likelihood coherence: a reference model object needs its tokenizer")
    return model.eval(), tokenizer


@functools.lru_cache(maxsize=1)
def _load_named(name: str) -> tuple[Any, Any]:
    """One reference model per process: an experiment scores every run with it."""
    from peft_diversity.models.loading import load_model_and_tokenizer

    return load_model_and_tokenizer(name, dtype="float32")


def reply_ids(tokenizer: Any, reply: str) -> list[int]:
    """The reply's tokens as the model would write them, closed by eos when the tokenizer has one."""
    ids = tokenizer(reply, add_special_tokens=False)["input_ids"]
    return ids + ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])


def token_log_probs(
    model: Any,
    prompts: Sequence[Sequence[int]],
    replies: Sequence[Sequence[int]],
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[np.ndarray]:
    """log p(reply token | prompt, earlier reply tokens) for each (prompt ids, reply ids) pair.

    Rows are sorted by length and right-padded in batches of `batch_size`; only reply positions are projected
    through the LM head.
    """
    import torch

    limit = getattr(model.config.get_text_config(), "max_position_embeddings", None)
    longest = max((len(p) + len(r) for p, r in zip(prompts, replies, strict=True)), default=0)
    if limit and longest > limit:
        raise ScoringInputError(
            f"likelihood coherence: a context prompt + reply of {longest} tokens exceeds the "
            f"reference model's {limit} positions; shorten it or use a longer-context model"
        )
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]) + len(replies[i]))
    out: list[np.ndarray] = [np.zeros(0)] * len(prompts)
    order = [i for i in order if replies[i]]  # an empty reply (no eos either) has nothing to score
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        for i, values in zip(
            rows,
            _batch_log_probs(model, [prompts[i] for i in rows], [replies[i] for i in rows], torch),
            strict=True,
        ):
            out[i] = values
    return out


def _batch_log_probs(model: Any, prompts: list, replies: list, torch: Any) -> list[np.ndarray]:
    from peft_diversity.models.heads import lm_head_logits

    lengths = [len(p) + len(r) for p, r in zip(prompts, replies, strict=True)]
    ids = torch.zeros((len(prompts), max(lengths)), dtype=torch.long)
    mask = torch.zeros_like(ids)
    target = torch.zeros_like(ids, dtype=torch.bool)  # positions whose NEXT token is a reply token
    for row, (prompt, reply) in enumerate(zip(prompts, replies, strict=True)):
        ids[row, : lengths[row]] = torch.tensor([*prompt, *reply], dtype=torch.long)
        mask[row, : lengths[row]] = 1
        target[row, len(prompt) - 1 : lengths[row] - 1] = True
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft model: its wrapped LM
    with torch.no_grad():
        hidden = lm.base_model(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        logits = lm_head_logits(lm, hidden[target]).float()
        chosen = ids[:, 1:][target[:, :-1]]
        values = -torch.nn.functional.cross_entropy(logits, chosen, reduction="none")
    counts = [len(r) for r in replies]
    return [v.numpy().astype(np.float64) for v in torch.split(values, counts)]


def copied_tokens(source: Sequence[int], reply: Sequence[int], n: int) -> np.ndarray:
    """True for reply tokens inside an n-gram of token ids that also occurs in `source` (all False if n < 1)."""
    flags = np.zeros(len(reply), dtype=bool)
    if n < 1 or len(reply) < n:
        return flags
    seen = {tuple(source[i : i + n]) for i in range(len(source) - n + 1)}
    for i in range(len(reply) - n + 1):
        if tuple(reply[i : i + n]) in seen:
            flags[i : i + n] = True
    return flags


# ----- prompts -----------------------------------------------------------------------------------------------
def resolve_template(template: Any = None) -> Any:
    """A `PossibilityTemplate`, a task name (`dialogue`, `story`) or None (dialogue)."""
    from peft_diversity.templates import PossibilityTemplate

    if isinstance(template, PossibilityTemplate):
        return template
    return PossibilityTemplate(task=template or "dialogue")


def context_prompt_ids(tokenizer: Any, template: Any, context: str | Sequence[Any] | None) -> list[int]:
    """The task's plain prompt for `context` (None or "" = no context), rendered by the chat template."""
    text = template.prompt_text(tokenizer, {"context": context if context is not None else ""}, None)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def score_pairs(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[Any, Any, str]],
    template: Any = None,
    copy_ngram: int = DEFAULT_COPY_NGRAM,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[ReplyLogProbs]:
    """ReplyLogProbs for (context, baseline context, reply) triples; a baseline context of None means no context.

    Each distinct (prompt, reply) is scored once, however many triples share it.
    """
    template = resolve_template(template)
    prompt_cache: dict[str, list[int]] = {}

    def prompt(context: Any) -> list[int]:
        key = repr(context)
        if key not in prompt_cache:
            prompt_cache[key] = context_prompt_ids(tokenizer, template, context)
        return prompt_cache[key]

    reply_cache = {reply: reply_ids(tokenizer, reply) for _, _, reply in pairs}
    jobs: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
    for context, base, reply in pairs:
        for ctx in (context, base):
            jobs.setdefault((repr(ctx), reply), (prompt(ctx), reply_cache[reply]))
    keys = list(jobs)
    values = token_log_probs(model, [jobs[k][0] for k in keys], [jobs[k][1] for k in keys], batch_size)
    by_key = dict(zip(keys, values, strict=True))
    ends = tokenizer.eos_token_id is not None
    return [
        ReplyLogProbs(
            by_key[(repr(c), r)],
            by_key[(repr(b), r)],
            copied_tokens(prompt(c), reply_cache[r], copy_ngram),
            ends,
        )
        for c, b, r in pairs
    ]


def derangement(size: int, seed: int) -> list[int]:
    """A seeded permutation of range(size) with no fixed point (size >= 2)."""
    order, rng = list(range(size)), random.Random(seed)
    while any(i == j for i, j in enumerate(order)):
        rng.shuffle(order)
    return order


# ----- the metric --------------------------------------------------------------------------------------------
def likelihood_coherence(
    predictions: Sequence[Sequence[str]],
    contexts: Sequence[str | Sequence[Any]],
    model: Any = None,
    tokenizer: Any = None,
    template: Any = None,
    baseline: str = "empty",
    fluency_weight: float = DEFAULT_FLUENCY_WEIGHT,
    copy_ngram: int = DEFAULT_COPY_NGRAM,
    score_end: bool = False,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    return_per_prompt: bool = False,
) -> dict[str, Any]:
    """Likelihood coherence of K responses per prompt with the prompt's context (see the module docstring).

    `model`: a causal LM object (+ `tokenizer`), an id / local path / `builtin:` name, or None for
    builtin:smollm2-135m-instruct (loaded in fp32). `template`: a `PossibilityTemplate` or task name wording the
    prompt (default dialogue). `score_end` also scores the eos token closing the reply. Returns
    `likelihood_coherence` (mean over prompts of the prompt's mean score), `likelihood_coherence_pooled` (mean over
    responses), the same for `likelihood_pmi` and `likelihood_fluency` (mean log-prob per token without context),
    `num_prompts` and `num_unscored` (responses with no token to score: empty ones, None, in no mean);
    `return_per_prompt` adds `*_per_prompt` lists and `likelihood_coherence_per_response`. A prompt with no
    scored response gets None and counts in no mean.
    """
    predictions = check_predictions(predictions)
    _check_options(contexts, len(predictions), baseline, fluency_weight, copy_ngram)
    model, tokenizer = load_reference(model, tokenizer)
    others = derangement(len(contexts), seed) if baseline == "shuffled" else None
    pairs = [
        (contexts[i], contexts[others[i]] if others else None, reply)
        for i, replies in enumerate(predictions)
        for reply in replies
    ]
    scored = iter(score_pairs(model, tokenizer, pairs, template, copy_ngram, batch_size))
    groups = [[next(scored) for _ in replies] for replies in predictions]
    values = {
        "likelihood_coherence": [
            [s.score(fluency_weight, copy_ngram > 0, score_end) for s in g] for g in groups
        ],
        "likelihood_pmi": [[s.pmi(copy_ngram > 0, score_end) for s in g] for g in groups],
        "likelihood_fluency": [[s.fluency(score_end) for s in g] for g in groups],
    }
    result: dict[str, Any] = {}
    for name, per_response in values.items():
        scored_values = [[v for v in vs if v is not None] for vs in per_response]
        per_prompt = [mean(v) if v else None for v in scored_values]
        known = [v for v in per_prompt if v is not None]
        flat = [v for vs in scored_values for v in vs]
        result[name] = mean(known) if known else None
        result[f"{name}_pooled"] = mean(flat) if flat else None
        if return_per_prompt:
            result[f"{name}_per_prompt"] = per_prompt
    result["num_prompts"] = len(predictions)
    result["num_unscored"] = sum(v is None for vs in values["likelihood_coherence"] for v in vs)
    if return_per_prompt:
        result["likelihood_coherence_per_response"] = values["likelihood_coherence"]
    return result


def _check_options(
    contexts: Any, num_prompts: int, baseline: str, fluency_weight: float, copy_ngram: int
) -> None:
    if contexts is None or isinstance(contexts, str) or len(contexts) != num_prompts:
        got = "none" if contexts is None else "a string" if isinstance(contexts, str) else len(contexts)
        raise ScoringInputError(
            f"likelihood coherence: contexts needs one context per prompt ({num_prompts}), got {got}"
        )
    if baseline not in BASELINES:
        raise ScoringInputError(
            f"likelihood coherence: unknown baseline {baseline!r}; choose from {BASELINES}"
        )
    if baseline == "shuffled" and num_prompts < 2:
        raise ScoringInputError("likelihood coherence: baseline='shuffled' needs at least two prompts")
    if isinstance(copy_ngram, bool) or not isinstance(copy_ngram, int) or copy_ngram < 0:
        raise ScoringInputError(
            f"likelihood coherence: copy_ngram must be an integer >= 0, got {copy_ngram!r}"
        )
    if not np.isfinite(fluency_weight) or fluency_weight < 0:
        raise ScoringInputError(f"likelihood coherence: fluency_weight must be >= 0, got {fluency_weight!r}")


# ----- validation: does the score read the context? ---------------------------------------------------------
# name -> (baseline, fluency_weight, copy discount, score the eos token); all read off the same token log-probs.
# The default of `likelihood_coherence` is "PMI + copy discount".
CHECK_VARIANTS: dict[str, tuple[str | None, float, bool, bool]] = {
    "log p(reply | context)": (None, 0.0, False, False),
    "fluency only: log p(reply | no context)": ("fluency", 0.0, False, False),
    "PMI (no-context baseline)": ("empty", 0.0, False, False),
    "PMI + copy discount": ("empty", 0.0, True, False),
    "PMI + copy discount, eos scored": ("empty", 0.0, True, True),
    "PMI + copy discount + 0.25 fluency": ("empty", 0.25, True, False),
    "PMI + copy discount + 0.5 fluency": ("empty", 0.5, True, False),
    "PMI + copy discount + 1.0 fluency": ("empty", 1.0, True, False),
    "PMI (shuffled-context baseline)": ("shuffled", 0.0, False, False),
    "PMI (shuffled-context baseline) + copy discount": ("shuffled", 0.0, True, False),
}


def parrot_reply(record: dict[str, Any]) -> str:
    """What a parrot says: the context's last turn (dialogue) or the whole prompt (story), copied verbatim."""
    from peft_diversity.templates import turn_body

    source = record.get("context", record.get("prompt"))
    return source if isinstance(source, str) else turn_body(source[-1])


def check_likelihood_coherence(
    records: Sequence[dict[str, Any]],
    model: Any = None,
    tokenizer: Any = None,
    template: Any = None,
    copy_ngram: int = DEFAULT_COPY_NGRAM,
    num_candidates: int | None = None,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_samples: int = 10_000,
) -> dict[str, Any]:
    """Validate the score as the judge is validated (`coherence.judge_agreement`), for every `CHECK_VARIANTS`.

    Per one-to-many record (context + human candidates): each of its first `num_candidates` candidates (None =
    all) is compared with a candidate of another context (a seeded derangement; same index, wrapping) and with a
    parrot reply (`parrot_reply`). `prefers_own`: share of comparisons won by the own reply (ties half), averaged
    per context then over contexts; `parrot_wins`: the same for the parrot beating the own reply (lower is
    better). Intervals: 95% percentile bootstrap over contexts. The shuffled baseline reads a third context,
    never the reply's own.
    """
    if len(records) < 3:
        raise ScoringInputError(f"the coherence check needs at least 3 contexts, got {len(records)}")
    model, tokenizer = load_reference(model, tokenizer)
    contexts = [r.get("context", r.get("prompt")) for r in records]
    other, third = derangement(len(records), seed), _third_context(len(records), seed)
    comparisons = []  # (context index, own reply, other reply, parrot)
    for i, record in enumerate(records):
        own = record["candidates"][:num_candidates] if num_candidates else record["candidates"]
        theirs = records[other[i]]["candidates"]
        comparisons += [
            (i, reply, theirs[j % len(theirs)], parrot_reply(record)) for j, reply in enumerate(own)
        ]
    pairs = [
        (contexts[i], base, reply)
        for i, *replies in comparisons
        for reply in replies
        for base in (None, contexts[third[i]])
    ]
    scored = score_pairs(model, tokenizer, pairs, template, copy_ngram, batch_size)
    logps = [{"empty": scored[k], "shuffled": scored[k + 1]} for k in range(0, len(scored), 2)]
    triples = [logps[3 * c : 3 * c + 3] for c in range(len(comparisons))]
    variants = {
        name: _variant_check([c[0] for c in comparisons], triples, spec, seed, num_samples)
        for name, spec in CHECK_VARIANTS.items()
    }
    return {
        "num_contexts": len(records),
        "num_comparisons": len(comparisons),
        "copy_ngram": copy_ngram,
        "seed": seed,
        "variants": variants,
    }


def _third_context(size: int, seed: int) -> list[int]:
    """For each context, another one that is neither itself nor its derangement partner (the shuffled baseline)."""
    other, rng = derangement(size, seed), random.Random(seed + 1)
    return [rng.choice([j for j in range(size) if j not in (i, other[i])]) for i in range(size)]


def _variant_value(logps: dict[str, ReplyLogProbs], spec: tuple[str | None, float, bool, bool]) -> float:
    """A variant's reading of one reply; a reply with no scored token counts as the lowest score."""
    baseline, weight, discount, end = spec
    if baseline is None:
        value = logps["empty"].conditional(end)
    elif baseline == "fluency":
        value = logps["empty"].fluency(end)
    else:
        pmi = logps[baseline].pmi(discount, end)
        value = None if pmi is None else pmi + weight * logps["empty"].fluency(end)
    return -np.inf if value is None else value


def _variant_check(
    context_of: list[int], triples: list, spec: tuple, seed: int, num_samples: int
) -> dict[str, Any]:
    from .paired import bootstrap_mean

    wins: dict[int, list[float]] = {}
    parrots: dict[int, list[float]] = {}
    for i, triple in zip(context_of, triples, strict=True):
        own, theirs, parrot = (_variant_value(t, spec) for t in triple)
        wins.setdefault(i, []).append(_win(own, theirs))
        parrots.setdefault(i, []).append(_win(parrot, own))
    prefers = bootstrap_mean([mean(v) for v in wins.values()], num_samples, seed)
    parrot = bootstrap_mean([mean(v) for v in parrots.values()], num_samples, seed)
    return {
        "prefers_own": prefers["mean"],
        "prefers_own_interval": prefers["interval"],
        "parrot_wins": parrot["mean"],
        "parrot_wins_interval": parrot["interval"],
    }


def _win(first: float, second: float) -> float:
    return 1.0 if first > second else 0.5 if first == second else 0.0


def format_check_table(result: dict[str, Any]) -> str:
    """The check as a markdown table: one row per variant."""
    lines = ["| variant | prefers own reply (95% CI) | parrot beats own reply (95% CI) |", "|---|---|---|"]
    for name, v in result["variants"].items():
        own, parrot = v["prefers_own_interval"], v["parrot_wins_interval"]
        lines.append(
            f"| {name} | {v['prefers_own']:.3f} [{own[0]:.3f}, {own[1]:.3f}] | "
            f"{v['parrot_wins']:.3f} [{parrot[0]:.3f}, {parrot[1]:.3f}] |"
        )
    return "\n".join(lines)
