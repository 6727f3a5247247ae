"""A chat model behind one call, `chat(conversations) -> replies`: a local transformers model or an
OpenAI-compatible endpoint. `make_chat` is the one factory; the coherence judge, the bias interviewer and
extractor, and the data builder's HTTP teacher all use it.

HTTP goes through a maintained client: the `openai` SDK (a dependency: it reaches a local server whatever
HF_HUB_OFFLINE says), or `huggingface_hub.InferenceClient` when asked for (`client="huggingface_hub"`, or where
openai is not importable); both post OpenAI-style chat completions to any base URL.
Every setting is honoured on both:
- `max_retries`, `timeout`: the SDK's own (it backs off and reads Retry-After); InferenceClient has no retry of its
  own, so `RetryPolicy` here retries it (Retry-After, else exponential backoff with jitter).
- `requests_per_minute`: `RateLimiter` here, before every request this module sends, on both paths.
- 401/403, 404 and 429 `insufficient_quota` fail at once (`FATAL_ERRORS`: retrying cannot help); another 4xx fails
  that request only (`ChatRequestError`); 408/409/425/429/5xx, timeouts and dropped connections are retried, then
  raise `ChatRetriesExhausted`.
- The key is `api_key`, else `$<api_key_env>`; with none, the placeholder `EMPTY` is sent (what keyless local
  servers such as vLLM accept), never the Hugging Face token that InferenceClient would otherwise send to any URL.
  Messages never show the key; URLs lose user:password@ and query (`public_url`).
- HF_HUB_OFFLINE=1 makes huggingface_hub refuse every request, a local server's included; `make_chat` says so in one
  line when the InferenceClient path is asked for offline.
A local model decodes greedily at temperature 0 and samples above it; the HTTP-only settings are refused for it.
"""

from __future__ import annotations

import datetime
import email.utils
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from peft_diversity.errors import PeftDiversityError

logger = logging.getLogger(__name__)

Conversation = list[dict[str, str]]
ChatFn = Callable[[Sequence[Conversation]], list[str]]
Client = Literal["auto", "openai", "huggingface_hub"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
NO_KEY = "EMPTY"


class ChatError(PeftDiversityError):
    """A chat model could not be set up or asked; the message names the endpoint or setting (never the key)."""


class ChatRequestError(ChatError):
    """A chat request failed for good (e.g. HTTP 400: prompt too long)."""


class ChatAuthError(ChatRequestError):
    """401/403: the key is missing, wrong or not allowed to use the model."""


class ChatQuotaError(ChatRequestError):
    """429 insufficient_quota: the account has no credit left."""


class ChatModelNotFoundError(ChatRequestError):
    """404: the model does not exist at this endpoint (or the base URL is wrong)."""


class ChatRetriesExhausted(ChatRequestError):
    """A transient failure (429, 5xx, timeout) persisted through every retry."""


FATAL_ERRORS = (ChatAuthError, ChatQuotaError, ChatModelNotFoundError)
"""Errors that will repeat on every request: callers stop instead of moving on to the next one."""


@dataclass
class RetryPolicy:
    """How often to retry transient failures and how long to wait (the backoff is used by the InferenceClient
    path; the openai SDK has its own)."""

    max_retries: int = 5
    """Retries after the first attempt (so at most max_retries + 1 requests)."""
    timeout_s: float = 60.0
    """Timeout of one request."""
    base_delay_s: float = 1.0
    """First backoff; doubles per retry."""
    max_delay_s: float = 60.0
    """Cap of one backoff wait."""
    max_retry_after_s: float = 300.0
    """Cap of a server's Retry-After (a server asking for hours is treated as asking for this)."""

    def delay(self, retry: int, retry_after: float | None, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `retry` (0-based)."""
        rng = rng or random
        if retry_after is not None:  # at least what the server asked for; the jitter keeps clients apart
            return min(max(retry_after, 0.0) * rng.uniform(1.0, 1.2), self.max_retry_after_s)
        return min(self.max_delay_s, self.base_delay_s * 2**retry) * rng.uniform(0.5, 1.0)


class RateLimiter:
    """At most `per_minute` request starts per minute, evenly spaced; shared by all threads of a client."""

    def __init__(
        self,
        per_minute: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute <= 0:
            raise ChatError(f"requests_per_minute must be > 0, got {per_minute}")
        self.interval = 60.0 / per_minute
        self._clock, self._sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:  # reserve a slot under the lock, sleep outside it
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            self._sleep(slot - now)


def public_url(url: str) -> str:
    """`url` without user:password@, query and fragment: what may be shown or stored (they can hold secrets)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def default_base_url() -> str:
    """`$OPENAI_BASE_URL`, else OpenAI's: the endpoint of an `openai:<model>` given without a base URL."""
    return os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL


class _Transient(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# ----- an OpenAI-compatible endpoint ---------------------------------------------------------------------------
class HttpChat:
    """An OpenAI-compatible `/chat/completions` endpoint; `base_url` includes the version prefix
    (e.g. `http://127.0.0.1:8000/v1`; default `$OPENAI_BASE_URL`, else OpenAI's)."""

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.0,
        max_tokens: int = 16,
        policy: RetryPolicy | None = None,
        requests_per_minute: float | None = None,
        concurrency: int = 4,
        seed: int | None = None,
        client: Client = "auto",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.model, self.api_key_env = model, api_key_env
        self.base_url = (base_url or default_base_url()).rstrip("/")
        self.shown_url = public_url(f"{self.base_url}/chat/completions")  # for messages: no credentials
        self._key = api_key if api_key is not None else os.environ.get(api_key_env, "")
        self.params = {"temperature": temperature, "max_tokens": max_tokens}
        if seed is not None:  # OpenAI's best-effort reproducible sampling; servers that lack it ignore it
            self.params["seed"] = seed
        self.policy = policy or RetryPolicy()
        if self.policy.max_retries < 0 or self.policy.timeout_s <= 0:
            raise ChatError(
                f"max_retries must be >= 0 and timeout > 0, got {self.policy.max_retries} and "
                f"{self.policy.timeout_s}"
            )
        self.limiter = RateLimiter(requests_per_minute, sleep=sleep) if requests_per_minute else None
        self.concurrency, self._sleep = max(1, concurrency), sleep
        self.client = _pick_client(client, self.shown_url)
        self._client = self._openai() if self.client == "openai" else self._inference_client()

    def __repr__(self) -> str:  # never show the key
        return f"HttpChat(model={self.model!r}, url={self.shown_url!r}, client={self.client!r})"

    def __call__(self, conversations: Sequence[Conversation]) -> list[str]:
        """One reply per conversation, `concurrency` requests at a time; after a fatal error, requests not yet
        started are not sent."""
        pool = ThreadPoolExecutor(max_workers=max(1, min(self.concurrency, len(conversations))))
        try:
            futures = [pool.submit(self.complete, conversation) for conversation in conversations]
            return [future.result() for future in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def complete(self, messages: Conversation, **params: Any) -> str:
        """The reply to one conversation; `params` (temperature, max_tokens) override this chat's settings."""
        params = {**self.params, **params}
        if self.client == "openai":
            return self._send(messages, params, attempts=self.policy.max_retries + 1)  # the SDK retries
        attempts = self.policy.max_retries + 1
        for attempt in range(attempts):
            try:
                return self._send(messages, params, attempts=attempts)
            except _Transient as err:
                if attempt + 1 == attempts:
                    raise ChatRetriesExhausted(
                        f"{self.shown_url}: gave up after {attempts} attempts; last error: {err}"
                    ) from None
                wait = self.policy.delay(attempt, err.retry_after)
                logger.warning(
                    "%s: %s; retry %d/%d in %.1f s", self.shown_url, err, attempt + 1, attempts - 1, wait
                )
                self._sleep(wait)
        raise AssertionError("unreachable")

    # ----- one request, either client --------------------------------------------------------------------------
    def _openai(self) -> Any:
        import openai

        return openai.OpenAI(
            base_url=self.base_url,
            api_key=self._key or NO_KEY,
            timeout=self.policy.timeout_s,
            max_retries=self.policy.max_retries,
        )

    def _inference_client(self) -> Any:
        from huggingface_hub import InferenceClient

        return InferenceClient(
            base_url=self.base_url, api_key=self._key or NO_KEY, timeout=self.policy.timeout_s
        )

    def _send(self, messages: Conversation, params: dict[str, Any], attempts: int) -> str:
        if self.limiter is not None:
            self.limiter.wait()
        try:
            if self.client == "openai":
                reply = self._client.chat.completions.create(model=self.model, messages=messages, **params)
            else:
                reply = self._client.chat_completion(messages, model=self.model, **params)
        except Exception as err:  # noqa: BLE001 - each client's errors are sorted into ours below
            raise self._sorted(err, attempts) from None
        try:
            return reply.choices[0].message.content or ""
        except (AttributeError, IndexError, TypeError) as err:
            raise ChatRequestError(
                f"{self.shown_url}: unexpected response (not a chat completion: {err!r})"
            ) from None

    def _sorted(self, err: Exception, attempts: int) -> Exception:
        """One of our errors (or `_Transient`, for the InferenceClient path to retry) for a client's exception."""
        response = getattr(err, "response", None)
        status = getattr(response, "status_code", None)
        if status is None:  # no HTTP answer: a timeout or a dropped connection, or a body that is not JSON
            if isinstance(err, ValueError):
                return ChatRequestError(
                    f"{self.shown_url}: unexpected response ({self._redact(str(err))[:200]})"
                )
            reason = self._redact(f"{type(err).__name__}: {err}")[:200]
            if self.client == "openai":  # the SDK has retried already
                return ChatRetriesExhausted(
                    f"{self.shown_url}: gave up after {attempts} attempts; last error: "
                    f"connection failed ({reason})"
                )
            return _Transient(f"connection failed ({reason})")
        sorted_err = self._classify(status, response)
        if isinstance(sorted_err, _Transient) and self.client == "openai":
            return ChatRetriesExhausted(
                f"{self.shown_url}: gave up after {attempts} attempts; last error: {sorted_err}"
            )
        return sorted_err

    def _classify(self, status: int, response: Any) -> Exception:
        detail, code = _error_detail(_text(response))
        detail = self._redact(detail)
        where = f"HTTP {status} from {self.shown_url}"
        if status in (401, 403):
            sent = "the key" if self._key else "no key (it is empty)"
            return ChatAuthError(
                f"{where}: not authorised ({detail}); {sent} in ${self.api_key_env} was sent: "
                f"check {self.api_key_env} / --api-key-env and that the key may use {self.model!r}"
            )
        if status == 404:
            return ChatModelNotFoundError(
                f"{where}: model {self.model!r} not found, or the base URL is wrong "
                f"(it must end with the version prefix, e.g. /v1) ({detail})"
            )
        if status == 429 and code == "insufficient_quota":
            return ChatQuotaError(
                f"{where}: quota exhausted ({detail}); add credit or use another key/endpoint"
            )
        if status in RETRY_STATUSES:
            return _Transient(f"HTTP {status} ({detail})", _retry_after(response.headers.get("Retry-After")))
        return ChatRequestError(f"{where}: request rejected ({detail})")

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text


def _pick_client(client: Client, shown_url: str) -> str:
    if client == "auto":
        try:
            import openai  # noqa: F401

            client = "openai"
        except ImportError:
            client = "huggingface_hub"
    if client == "huggingface_hub":
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:  # huggingface_hub's session refuses every URL then, a local server's too
            raise ChatError(
                f"{shown_url}: HF_HUB_OFFLINE=1 stops huggingface_hub's InferenceClient from reaching "
                "any endpoint; use client='openai' (installed with peft-diversity) or "
                "unset HF_HUB_OFFLINE"
            )
    elif client != "openai":
        raise ChatError(f"unknown chat client {client!r}; choose auto, openai or huggingface_hub")
    return client


def _text(response: Any) -> str:
    try:
        return response.text[:2000]
    except Exception:  # noqa: BLE001 - a body that cannot be read only costs the message its detail
        return ""


def _error_detail(raw: str) -> tuple[str, str | None]:
    """(short message, error code) from an OpenAI-style error body, tolerating any body."""
    import json

    try:
        error = json.loads(raw).get("error", {})
    except (json.JSONDecodeError, AttributeError):
        return raw.strip()[:200] or "no message", None
    if isinstance(error, str):
        return error[:200], None
    if not isinstance(error, dict):
        return str(error)[:200], None
    code = error.get("code") or error.get("type")
    return str(error.get("message") or code or "no message")[:200], str(code) if code else None


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if (
        when.tzinfo is None
    ):  # "-0000" (UTC, per RFC 5322) parses to a naive time, which timestamp() takes as local
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - time.time())


# ----- a local transformers model ------------------------------------------------------------------------------
class LocalChat:
    """A local causal LM answering batches of conversations: greedy at temperature 0, else sampling (seeded per
    call when `seed` is given). The tokenizer's chat template is used when it has one, else a plain
    "role: content" transcript ending in "assistant:"."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        temperature: float = 0.0,
        max_tokens: int = 16,
        batch_size: int = 8,
        seed: int | None = None,
    ) -> None:
        if temperature < 0 or max_tokens < 1 or batch_size < 1:
            raise ChatError(
                f"temperature must be >= 0, max_tokens and batch_size >= 1, got {temperature}, "
                f"{max_tokens}, {batch_size}"
            )
        self.model, self.tokenizer = model.eval(), tokenizer
        self.temperature, self.max_tokens, self.batch_size, self.seed = (
            temperature,
            max_tokens,
            batch_size,
            seed,
        )
        self._calls = 0

    def __call__(self, conversations: Sequence[Conversation]) -> list[str]:
        import torch

        if self.seed is not None and self.temperature > 0:
            torch.manual_seed(self.seed + self._calls)
        self._calls += 1
        replies: list[str] = []
        for start in range(0, len(conversations), self.batch_size):
            replies += self._generate(conversations[start : start + self.batch_size])
        return replies

    def _render(self, conversation: Conversation) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                conversation, tokenize=False, add_generation_prompt=True
            )
        return "\n\n".join(f"{m['role']}: {m['content']}" for m in conversation) + "\n\nassistant:"

    def _generate(self, conversations: Sequence[Conversation]) -> list[str]:
        import torch

        tokenizer = self.tokenizer
        side, tokenizer.padding_side = tokenizer.padding_side, "left"
        try:
            batch = tokenizer(
                [self._render(c) for c in conversations],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            )
        finally:
            tokenizer.padding_side = side
        ids, mask = batch["input_ids"].to(self.model.device), batch["attention_mask"].to(self.model.device)
        sampling = (
            {"do_sample": True, "temperature": self.temperature}
            if self.temperature > 0
            else {"do_sample": False}
        )
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        with torch.no_grad():
            out = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=self.max_tokens,
                pad_token_id=pad_id,
                **sampling,
            )
        return tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)


# ----- the one factory -----------------------------------------------------------------------------------------
def make_chat(
    model: Any,
    *,
    base_url: str | None = None,
    tokenizer: Any = None,
    api_key: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    temperature: float = 0.0,
    max_tokens: int = 16,
    max_retries: int | None = None,
    timeout: float | None = None,
    requests_per_minute: float | None = None,
    concurrency: int = 4,
    batch_size: int = 8,
    dtype: str = "float32",
    seed: int | None = None,
    client: Client = "auto",
) -> HttpChat | LocalChat:
    """A chat model: with `base_url`, the endpoint's model `model` (`max_retries` default 5, `timeout` 60 s,
    `requests_per_minute` unlimited, `concurrency` parallel requests); else a local causal LM, given as a
    Hub id, folder or `builtin:<name>` (loaded in `dtype`), or as an object with its `tokenizer`."""
    if base_url:
        if not isinstance(model, str) or not model:
            raise ChatError("an endpoint (base URL) needs the name of its model")
        policy = RetryPolicy(
            max_retries=5 if max_retries is None else max_retries,
            timeout_s=60.0 if timeout is None else timeout,
        )
        return HttpChat(
            model,
            base_url,
            api_key=api_key,
            api_key_env=api_key_env,
            temperature=temperature,
            max_tokens=max_tokens,
            policy=policy,
            requests_per_minute=requests_per_minute,
            concurrency=concurrency,
            seed=seed,
            client=client,
        )
    given = [
        name
        for name, value in (
            ("max_retries", max_retries),
            ("timeout", timeout),
            ("requests_per_minute", requests_per_minute),
        )
        if value is not None
    ]
    if given:
        raise ChatError(
            f"{', '.join(given)} apply to an HTTP endpoint only; give its base URL, or drop them for "
            "a local model"
        )
    if isinstance(model, str | os.PathLike):
        from peft_diversity.models.loading import load_model_and_tokenizer

        model, tokenizer = load_model_and_tokenizer(os.fspath(model), dtype=dtype)
    elif tokenizer is None:
        raise ChatError("a local model given as an object needs its tokenizer")
    return LocalChat(
        model, tokenizer, temperature=temperature, max_tokens=max_tokens, batch_size=batch_size, seed=seed
    )
