"""Coherence of responses to their context: an offline embedding proxy and a pluggable LLM judge."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._common import check_predictions, flatten, mean
from .embeddings import DEFAULT_BATCH_SIZE, EmbedderSpec, encode_texts
from .judges import JudgeFn, build_judge_messages, context_to_text, parse_rating

METHODS = ("embedding", "judge")


def _check_contexts(contexts: Sequence[Any], num_prompts: int) -> list[str]:
    if contexts is None or len(contexts) != num_prompts:
        raise ValueError("coherence needs one context (string or list of turns) per prompt")
    return [context_to_text(c) for c in contexts]


def _relevance(
    predictions: list[list[str]], contexts: list[str], embedder: EmbedderSpec, batch_size: int
) -> list[list[float]]:
    texts, offsets = flatten(predictions)
    emb = encode_texts(contexts + texts, embedder, batch_size)
    ctx, resp = emb[: len(contexts)], emb[len(contexts) :]
    return [
        [float(v) for v in np.clip(resp[a:b] @ ctx[i], -1.0, 1.0)]
        for i, (a, b) in enumerate(zip(offsets[:-1], offsets[1:], strict=True))
    ]


def _resolve_judge(judge: Any, judge_tokenizer: Any) -> JudgeFn:
    if judge is None:
        raise ValueError(
            "method='judge' needs `judge`: a callable, a transformers model (+ judge_tokenizer) or a path"
        )
    if hasattr(judge, "generate") or not callable(judge):
        from peft_diversity.chat import make_chat

        return make_chat(judge, tokenizer=judge_tokenizer)
    return judge


def _ratings(
    predictions: list[list[str]], contexts: list[str], judge: JudgeFn
) -> tuple[list[list[float | None]], list[list[str]]]:
    conversations = [
        build_judge_messages(c, r) for c, rs in zip(contexts, predictions, strict=True) for r in rs
    ]
    replies = list(judge(conversations)) if conversations else []
    if len(replies) != len(conversations):
        raise ValueError(f"judge returned {len(replies)} replies for {len(conversations)} conversations")
    _, offsets = flatten(predictions)
    scores = [parse_rating(r) for r in replies]
    bounds = list(zip(offsets[:-1], offsets[1:], strict=True))
    return [scores[a:b] for a, b in bounds], [replies[a:b] for a, b in bounds]


def _judge_summary(ratings: list[list[float | None]], threshold: float) -> tuple[dict[str, Any], list, list]:
    rated = [[r for r in rs if r is not None] for rs in ratings]
    flat = [r for rs in rated for r in rs]
    per_prompt = [mean(rs) if rs else None for rs in rated]
    per_prompt_bad = [mean([float(r <= threshold) for r in rs]) if rs else None for rs in rated]
    known = [v for v in per_prompt if v is not None]
    known_bad = [v for v in per_prompt_bad if v is not None]
    summary = {
        "coherence_rating": mean(known) if known else None,
        "coherence_rating_pooled": mean(flat) if flat else None,
        "incoherence_rate": mean(known_bad) if known_bad else None,
        "incoherence_rate_pooled": mean([float(r <= threshold) for r in flat]) if flat else None,
        "num_rated": len(flat),
        "num_unparsed": sum(len(rs) for rs in ratings) - len(flat),
    }
    return summary, per_prompt, per_prompt_bad


def coherence(
    predictions: Sequence[Sequence[str]],
    contexts: Sequence[str | Sequence[str]],
    method: str = "embedding",
    embedder: EmbedderSpec = None,
    judge: Any = None,
    judge_tokenizer: Any = None,
    threshold: float = 5.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    return_per_prompt: bool = False,
) -> dict[str, Any]:
    """Coherence of each response with its prompt's context (string or list of turns).

    ``method="embedding"`` (offline proxy): cosine between the context embedding and each
    response embedding (one batched encode). Returns ``coherence_relevance`` (mean over
    prompts of the prompt's mean) and ``coherence_relevance_pooled`` (mean over all responses).
    It measures topical relevance, not logic or fluency.

    ``method="judge"``: each (context, response) is rated 1-10 with ``JUDGE_PROMPT`` by
    ``judge``: a callable ``conversations -> replies`` (e.g. ``chat.make_chat(model, base_url=...)`` or a
    test double), a transformers causal LM object (pass ``judge_tokenizer``) or a local path.
    Replies are read by ``parse_rating``. Returns ``coherence_rating`` / ``_pooled`` (1-10),
    ``incoherence_rate`` / ``_pooled`` (share rated <= ``threshold``, default 5 of 10),
    ``num_rated`` and ``num_unparsed``; unparsable replies are excluded, and a value with no
    rating behind it is ``None``.

    ``return_per_prompt`` adds ``*_per_prompt`` lists (and, for the judge, the raw
    ``judge_replies`` and ``ratings``). Edge cases: empty strings and Unicode are scored like
    any text; K = 1 is fine; a prompt with K = 0 gets 0.0 relevance / ``None`` rating.
    """
    predictions = check_predictions(predictions)
    ctx = _check_contexts(contexts, len(predictions))
    if method == "embedding":
        rel = _relevance(predictions, ctx, embedder, batch_size)
        per_prompt = [mean(r) for r in rel]
        result: dict[str, Any] = {
            "coherence_relevance": mean(per_prompt),
            "coherence_relevance_pooled": mean([v for r in rel for v in r]),
            "num_prompts": len(predictions),
        }
        if return_per_prompt:
            result["coherence_relevance_per_prompt"] = per_prompt
        return result
    if method != "judge":
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    ratings, replies = _ratings(predictions, ctx, _resolve_judge(judge, judge_tokenizer))
    result, per_prompt, per_prompt_bad = _judge_summary(ratings, threshold)
    result["num_prompts"] = len(predictions)
    if return_per_prompt:
        result.update(
            coherence_rating_per_prompt=per_prompt,
            incoherence_rate_per_prompt=per_prompt_bad,
            ratings=ratings,
            judge_replies=replies,
        )
    return result


def judge_agreement(
    contexts: Sequence[str | Sequence[str]], responses: Sequence[str], judge: Any, seed: int = 0
) -> dict[str, Any]:
    """What a judge is worth: its ratings of each context's own (human) response vs a response taken from
    another context (a derangement, so never its own). A judge that reads the dialogue rates the own response
    higher; `prefers_own` is the share of contexts where it does (ties count half), 0.5 = chance."""
    from .likelihood import derangement

    if len(responses) != len(contexts) or len(responses) < 2:
        raise ValueError("judge_agreement needs one response per context and at least two contexts")
    order = derangement(len(responses), seed)
    own = coherence([[r] for r in responses], contexts, "judge", judge=judge, return_per_prompt=True)
    other = coherence([[responses[j]] for j in order], contexts, "judge", judge=judge, return_per_prompt=True)
    pairs = [
        (a, b)
        for a, b in zip(own["coherence_rating_per_prompt"], other["coherence_rating_per_prompt"], strict=True)
        if a is not None and b is not None
    ]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs)
    return {
        "own_rating": own["coherence_rating"],
        "other_rating": other["coherence_rating"],
        "prefers_own": wins / len(pairs) if pairs else None,
        "num_pairs": len(pairs),
        "num_unparsed": own["num_unparsed"] + other["num_unparsed"],
    }
