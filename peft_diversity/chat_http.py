"""OpenAI-compatible `/chat/completions` requests (plain urllib) with one retry policy for every caller.

Used by the coherence judge (`scoring.judges.make_openai_judge`) and the data builder's HTTP teacher.

Policy:
- 429 (rate limited), 408/409/425, 5xx, timeouts and dropped connections are retried up to `max_retries`
  times, waiting `Retry-After` when the server sends it (seconds or an HTTP date; times a random factor in
  [1, 1.2] so clients told the same time do not return together), else an exponential backoff with jitter
  (`base_delay_s * 2**attempt`, capped at `max_delay_s`, times a random factor in [0.5, 1]).
- 401/403 (bad or missing key), 404 (unknown model or wrong URL), 429 with `insufficient_quota` (no credit
  left) and redirects (3xx: not followed, since urllib would send the Authorization header on to the new
  host) fail at once: retrying cannot help, and the message says what to check.
- Other 4xx (e.g. 400: prompt too long) fail at once for that request only (`ChatRequestError`).
- An optional client-side limit spaces request starts evenly (`requests_per_minute`), across threads.
The API key is sent in the Authorization header only; it never appears in a message (server messages that
echo it are redacted), and URLs in messages lose any user:password@ and query (`public_url`).
"""

from __future__ import annotations

import datetime
import email.utils
import http.client
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from peft_diversity.errors import PeftDiversityError

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class ChatRequestError(PeftDiversityError):
    """A chat request failed for good; the message names the endpoint and the cause (never the key)."""


class ChatAuthError(ChatRequestError):
    """401/403: the key is missing, wrong or not allowed to use the model."""


class ChatQuotaError(ChatRequestError):
    """429 insufficient_quota: the account has no credit left."""


class ChatModelNotFoundError(ChatRequestError):
    """404: the model does not exist at this endpoint (or the base URL is wrong)."""


class ChatRedirectError(ChatRequestError):
    """3xx: the endpoint moved; requests are not sent on (the key would go to the new host)."""


class ChatRetriesExhausted(ChatRequestError):
    """A transient failure (429, 5xx, timeout) persisted through every retry."""


FATAL_ERRORS = (ChatAuthError, ChatQuotaError, ChatModelNotFoundError, ChatRedirectError)
"""Errors that will repeat on every request: callers should stop instead of moving on to the next one."""


@dataclass
class RetryPolicy:
    """How long to wait and how often to retry transient failures."""

    max_retries: int = 5
    """Retries after the first attempt (so at most max_retries + 1 requests)."""
    base_delay_s: float = 1.0
    """First backoff; doubles per retry."""
    max_delay_s: float = 60.0
    """Cap of one backoff wait."""
    max_retry_after_s: float = 300.0
    """Cap of a server's Retry-After (a server asking for hours is treated as asking for this)."""
    timeout_s: float = 60.0
    """Socket timeout of one request."""

    def delay(self, retry: int, retry_after: float | None, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `retry` (0-based)."""
        rng = rng or random
        if retry_after is not None:  # at least what the server asked for
            return min(max(retry_after, 0.0) * rng.uniform(1.0, 1.2), self.max_retry_after_s)
        backoff = min(self.max_delay_s, self.base_delay_s * 2**retry)
        return backoff * rng.uniform(0.5, 1.0)


class RateLimiter:
    """At most `per_minute` request starts per minute, evenly spaced; shared by all threads of a client."""

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if per_minute <= 0:
            raise ValueError(f"requests_per_minute must be > 0, got {per_minute}")
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
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Do not follow redirects: urllib would resend the Authorization header to whatever host they name."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx then surfaces as an HTTPError, classified as ChatRedirectError


_OPENER = urllib.request.build_opener(_NoRedirect)


class _Transient(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ChatClient:
    """Posts chat conversations to `<base_url>/chat/completions` and returns the reply text.

    `base_url` includes the version prefix (e.g. `http://127.0.0.1:8000/v1`; default `$OPENAI_BASE_URL`, else
    OpenAI's). The key is `api_key`, else `$<api_key_env>`; it may be empty for local servers.
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        policy: RetryPolicy | None = None,
        requests_per_minute: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self.shown_url = public_url(self.url)  # for messages: no credentials
        self.api_key_env = api_key_env
        self._key = api_key if api_key is not None else os.environ.get(api_key_env, "")
        self.policy = policy or RetryPolicy()
        self.limiter = RateLimiter(requests_per_minute, sleep=sleep) if requests_per_minute else None
        self._sleep = sleep

    def __repr__(self) -> str:  # never show the key
        return f"ChatClient(model={self.model!r}, url={self.shown_url!r})"

    def complete(self, messages: list[dict[str, str]], **params: Any) -> str:
        """The assistant reply to `messages`; extra `params` (temperature, max_tokens, ...) go in the body."""
        payload = {"model": self.model, "messages": messages, **params}
        attempts = self.policy.max_retries + 1
        for attempt in range(attempts):
            if self.limiter is not None:
                self.limiter.wait()
            try:
                return self._post(payload)
            except _Transient as err:
                if attempt + 1 == attempts:
                    raise ChatRetriesExhausted(
                        f"{self.shown_url}: gave up after {attempts} attempts; last error: {err}"
                    ) from None
                wait = self.policy.delay(attempt, err.retry_after)
                logger.warning("%s: %s; retry %d/%d in %.1f s", self.shown_url, err, attempt + 1, attempts - 1, wait)
                self._sleep(wait)
        raise AssertionError("unreachable")

    # ----- one request -------------------------------------------------------------------------------
    def _post(self, payload: dict[str, Any]) -> str:
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        data = json.dumps(payload).encode("utf-8")
        request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        try:
            with _OPENER.open(request, timeout=self.policy.timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as err:
            raise self._classify(err) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as err:
            reason = getattr(err, "reason", err)
            raise _Transient(f"connection failed ({reason})") from None
        return self._reply_text(body)

    def _reply_text(self, body: bytes) -> str:
        try:
            return json.loads(body.decode("utf-8"))["choices"][0]["message"]["content"] or ""
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, IndexError, TypeError) as err:
            raise ChatRequestError(
                f"{self.shown_url}: unexpected response (not an OpenAI chat completion: {err!r}): {self._redact(body[:200])}"
            ) from None

    def _classify(self, err: urllib.error.HTTPError) -> Exception:
        status = err.code
        detail, code = _error_detail(err)
        detail = self._redact(detail)
        where = f"HTTP {status} from {self.shown_url}"
        if status in (401, 403):
            sent = "the key" if self._key else "no key (it is empty)"
            return ChatAuthError(f"{where}: not authorised ({detail}); {sent} in ${self.api_key_env} was sent: "
                                 f"check {self.api_key_env} / --api-key-env and that the key may use {self.model!r}")
        if status == 404:
            return ChatModelNotFoundError(f"{where}: model {self.model!r} not found, or the base URL is wrong "
                                          f"(it must end with the version prefix, e.g. /v1) ({detail})")
        if 300 <= status < 400:
            moved = public_url(err.headers.get("Location") or "?")
            return ChatRedirectError(f"{where}: redirected to {moved}; redirects are not followed (the key would be "
                                     "sent on): use the final URL as the base URL")
        if status == 429 and code == "insufficient_quota":
            return ChatQuotaError(f"{where}: quota exhausted ({detail}); add credit or use another key/endpoint")
        if status in RETRY_STATUSES:
            return _Transient(f"HTTP {status} ({detail})", _retry_after(err.headers.get("Retry-After")))
        return ChatRequestError(f"{where}: request rejected ({detail})")

    def _redact(self, text: str | bytes) -> str:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        return text.replace(self._key, "***") if self._key else text


def _error_detail(err: urllib.error.HTTPError) -> tuple[str, str | None]:
    """(short message, error code) from an OpenAI-style error body, tolerating any body."""
    try:
        raw = err.read()[:2000].decode("utf-8", errors="replace")
    except (OSError, http.client.HTTPException):
        raw = ""
    try:
        error = json.loads(raw).get("error", {})
    except (json.JSONDecodeError, AttributeError):
        return (raw.strip()[:200] or err.reason or "no message"), None
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
    if when.tzinfo is None:  # "-0000" (UTC, per RFC 5322) parses to a naive time, which timestamp() takes as local
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - time.time())
