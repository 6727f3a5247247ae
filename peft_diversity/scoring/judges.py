"""Coherence judges: the rating prompt, a tolerant score parser, local-HF and OpenAI-compatible judges.

A judge is any callable ``judge(conversations) -> list[str]`` taking a batch of chat
conversations (lists of ``{"role", "content"}`` dicts) and returning one raw reply each, so
tests and users can inject their own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from peft_diversity.chat_http import ChatClient, RetryPolicy

Conversation = list[dict[str, str]]
JudgeFn = Callable[[Sequence[Conversation]], list[str]]

JUDGE_SYSTEM_PROMPT = "You are a careful evaluator of dialogue and story continuations."

JUDGE_PROMPT = """Rate how coherent the RESPONSE is as a continuation of the CONTEXT, on a scale from 1 to 10.
10 = fluent, consistent with the context, on topic and sensible.
1 = incoherent: contradicts the context, is off topic, nonsensical or not fluent.
Judge coherence only, not creativity, style or length.

CONTEXT:
{context}

RESPONSE:
{response}

Reply with one line of the form "Rating: N" where N is an integer from 1 to 10."""

_WORDS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten".split())}
_NUM = r"(\d+(?:\.\d+)?)"
_PATTERNS = (
    re.compile(rf"(?:rating|score)\s*(?:is|of|[:=\-])?\s*{_NUM}(?:\s*(?:/|out of)\s*(\d+))?"),
    re.compile(rf"{_NUM}\s*(?:/|out of)\s*(\d+)"),
    re.compile(rf"(?<![\w.]){_NUM}(?!\w|\.\d|\s*%)"),
)


def context_to_text(context: str | Sequence[str]) -> str:
    """A context given as a list of turns becomes one turn per line."""
    return context if isinstance(context, str) else "\n".join(str(turn) for turn in context)


def build_judge_messages(context: str | Sequence[str], response: str) -> Conversation:
    """The chat conversation sent to the judge for one (context, response) pair."""
    prompt = JUDGE_PROMPT.format(context=context_to_text(context), response=response)
    return [{"role": "system", "content": JUDGE_SYSTEM_PROMPT}, {"role": "user", "content": prompt}]


def _scaled(value: str, scale: str | None) -> float | None:
    score = float(value)
    if scale:
        if float(scale) <= 0:
            return None
        score = score * 10.0 / float(scale)
    return min(max(score, 1.0), 10.0) if 0.0 <= score <= 10.0 else None


def parse_rating(text: str | None) -> float | None:
    """Extract a 1-10 rating from a judge reply, tolerating messy formats; ``None`` if absent.

    Accepts "Rating: 7", "Rating: 7/10", "**8**", "I'd give it 6 out of 10", "score=9",
    "85/100" (scaled to 8.5), "seven", "Rating: Seven". A 0 is clamped to 1; numbers above
    10 without a scale are ignored.
    """
    if not text:
        return None
    clean = re.sub(r"[*_#`]", " ", text.lower())
    for pattern in _PATTERNS:
        for match in pattern.finditer(clean):
            groups = match.groups()
            score = _scaled(groups[0], groups[1] if len(groups) > 1 else None)
            if score is not None:
                return score
    words = re.findall(r"[a-z]+", clean)
    hits = [_WORDS[w] for w in words if w in _WORDS and w != "zero"]
    return float(hits[0]) if hits else None


def make_hf_judge(
    model: Any,
    tokenizer: Any = None,
    max_new_tokens: int = 16,
    batch_size: int = 8,
    device: str | None = None,
) -> JudgeFn:
    """A judge backed by a local transformers causal LM (objects, or a local path / id).

    Greedy decoding; the tokenizer's chat template is used when it has one, else a plain
    "role: content" transcript ending in "assistant:".
    """
    if isinstance(model, str | os.PathLike):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = tokenizer or AutoTokenizer.from_pretrained(os.fspath(model))
        model = AutoModelForCausalLM.from_pretrained(os.fspath(model))
    if tokenizer is None:
        raise ValueError("make_hf_judge needs the tokenizer when the model is an object")
    if device is not None:
        model = model.to(device)
    model.eval()

    def judge(conversations: Sequence[Conversation]) -> list[str]:
        replies: list[str] = []
        for start in range(0, len(conversations), batch_size):
            replies.extend(
                _hf_generate(model, tokenizer, conversations[start : start + batch_size], max_new_tokens)
            )
        return replies

    return judge


def _render(tokenizer: Any, conversation: Conversation) -> str:
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in conversation) + "\n\nassistant:"


def _hf_generate(
    model: Any, tokenizer: Any, conversations: Sequence[Conversation], max_new_tokens: int
) -> list[str]:
    import torch

    texts = [_render(tokenizer, c) for c in conversations]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    try:
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    ids, mask = batch["input_ids"].to(model.device), batch["attention_mask"].to(model.device)
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad_id,
        )
    return tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)


def make_openai_judge(
    model: str,
    base_url: str | None = None,
    api_key: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    temperature: float = 0.0,
    max_tokens: int = 16,
    timeout: float = 60.0,
    max_workers: int = 4,
    use_openai_package: bool | None = None,
    max_retries: int = 5,
    requests_per_minute: float | None = None,
) -> JudgeFn:
    """A judge calling an OpenAI-compatible ``/chat/completions`` endpoint.

    ``base_url`` includes the version prefix, e.g. ``"http://127.0.0.1:8000/v1"`` (default:
    ``$OPENAI_BASE_URL`` or OpenAI's). The key is ``api_key`` or ``$api_key_env`` (may be
    empty for local servers). Uses the ``openai`` package when installed (or when
    ``use_openai_package=True``), else ``chat_http.ChatClient`` (urllib, with its retry policy:
    backoff on 429/5xx/timeouts, clear errors on auth, quota and unknown-model failures;
    ``max_retries`` and ``requests_per_minute`` apply to this path).
    """
    base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
    key = api_key if api_key is not None else os.environ.get(api_key_env, "")
    params = {"model": model, "temperature": temperature, "max_tokens": max_tokens}
    if use_openai_package is None:
        try:
            import openai  # noqa: F401

            use_openai_package = True
        except ImportError:
            use_openai_package = False
    if use_openai_package:
        import openai

        client = openai.OpenAI(base_url=base_url, api_key=key or "EMPTY", timeout=timeout)

        def one(conversation: Conversation) -> str:
            reply = client.chat.completions.create(messages=conversation, **params)
            return reply.choices[0].message.content or ""
    else:
        client = ChatClient(
            model, base_url, api_key=key, api_key_env=api_key_env,
            policy=RetryPolicy(max_retries=max_retries, timeout_s=timeout), requests_per_minute=requests_per_minute,
        )
        chat_params = {k: v for k, v in params.items() if k != "model"}

        def one(conversation: Conversation) -> str:
            return client.complete(conversation, **chat_params)

    def judge(conversations: Sequence[Conversation]) -> list[str]:
        with ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
            return list(pool.map(one, conversations))

    return judge


JUDGE_KEYS = ("model", "base_url", "api_key_env", "max_new_tokens", "batch_size")


def make_judge(
    model: str | None = None,
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    max_new_tokens: int = 16,
    batch_size: int = 8,
) -> JudgeFn | None:
    """The judge an experiment's `judge:` or `score --judge-*` names: an OpenAI-compatible endpoint (with
    `base_url`) or a local causal LM by id-or-path, `builtin:<name>` included; None when no model is named."""
    if base_url:
        if not model:
            from peft_diversity.errors import PeftDiversityError

            raise PeftDiversityError("a judge endpoint (base_url) needs the judge's model name")
        return make_openai_judge(model, base_url, api_key_env=api_key_env, max_tokens=max_new_tokens)
    if not model:
        return None
    from peft_diversity.models.loading import load_model_and_tokenizer

    judge_model, tokenizer = load_model_and_tokenizer(model, dtype="float32")
    return make_hf_judge(judge_model, tokenizer, max_new_tokens=max_new_tokens, batch_size=batch_size)
