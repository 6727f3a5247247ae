"""Coherence judges: the rating prompt, a tolerant score parser, and `make_judge`.

A judge is any callable ``judge(conversations) -> list[str]`` taking a batch of chat
conversations (lists of ``{"role", "content"}`` dicts) and returning one raw reply each, so
tests and users can inject their own; `chat.make_chat` builds one from a local model or an
OpenAI-compatible endpoint.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from peft_diversity.chat import ChatFn, Conversation

JudgeFn = ChatFn

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


JUDGE_KEYS = ("model", "base_url", "api_key_env", "max_new_tokens", "batch_size")


def make_judge(
    model: str | None = None,
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    max_new_tokens: int = 16,
    batch_size: int = 8,
) -> JudgeFn | None:
    """The judge an experiment's `judge:` or `score --judge-*` names: an OpenAI-compatible endpoint (with
    `base_url`) or a local causal LM by id-or-path, `builtin:<name>` included (greedy, float32); None when no
    model is named."""
    if not model:
        if base_url:
            from peft_diversity.chat import ChatError

            raise ChatError("a judge endpoint (base_url) needs the judge's model name")
        return None
    from peft_diversity.chat import make_chat

    return make_chat(
        model, base_url=base_url, api_key_env=api_key_env, max_tokens=max_new_tokens, batch_size=batch_size
    )
