"""chat.py: one chat backend, local or HTTP; every setting honoured on both HTTP clients (openai SDK,
huggingface_hub.InferenceClient) against the local server of conftest's `chat_double`."""

from __future__ import annotations

import time

import pytest

from peft_diversity.chat import ChatError, ChatRetriesExhausted, LocalChat, make_chat


@pytest.fixture(params=["huggingface_hub", "openai"])
def client(request):
    if request.param == "openai":
        pytest.importorskip("openai")  # the `judge` extra
    return request.param


def failing(times: int, status: int = 503):
    """respond() failing `times` times with `status` (asking for a 1 ms wait), then answering "ok"."""
    calls = []

    def respond(_body):
        calls.append(1)
        if len(calls) <= times:
            return status, {"Retry-After": "0", "retry-after-ms": "1"}, {"error": {"message": "busy"}}
        return "ok"

    return respond


def test_max_retries_is_honoured(chat_double, client):
    server, url = chat_double(failing(2))
    chat = make_chat("m", base_url=url, max_retries=2, client=client)
    assert chat([[{"role": "user", "content": "hi"}]]) == ["ok"] and len(server.requests) == 3
    server, url = chat_double(failing(2))
    with pytest.raises(ChatRetriesExhausted, match="gave up after 2 attempts"):
        make_chat("m", base_url=url, max_retries=1, client=client)([[{"role": "user", "content": "hi"}]])
    assert len(server.requests) == 2  # the first try and one retry, not the client's own default


def test_rate_limit_is_honoured(chat_double, client):
    server, url = chat_double(lambda body: "ok")
    chat = make_chat("m", base_url=url, requests_per_minute=600, concurrency=4, client=client)
    assert chat([[{"role": "user", "content": str(i)}] for i in range(4)]) == ["ok"] * 4
    gaps = [later - earlier for earlier, later in zip(server.times, server.times[1:], strict=False)]
    # 600 per minute = one start per 0.1 s; 0.02 s allows for when each request reaches the server
    assert len(gaps) == 3 and min(gaps) >= 0.08


def test_timeout_settings_and_params_are_sent(chat_double, client, monkeypatch):
    server, url = chat_double(lambda body: "late", delay=1.0)
    start = time.perf_counter()
    with pytest.raises(ChatRetriesExhausted, match="gave up after 1 attempts"):
        make_chat("m", base_url=url, timeout=0.2, max_retries=0, client=client)(
            [[{"role": "user", "content": "x"}]]
        )
    assert time.perf_counter() - start < 0.9  # the 0.2 s timeout, not the server's 1 s
    monkeypatch.setenv("HF_TOKEN", "hf_private")  # never sent to an endpoint
    server, url = chat_double(lambda body: "ok")
    chat = make_chat("m", base_url=url, api_key="", temperature=0.7, max_tokens=5, seed=4, client=client)
    shown = repr(make_chat("m", base_url="http://u:pw@example.test/v1?k=1", api_key="sk-1", client=client))
    assert "sk-1" not in shown and "pw" not in shown and "k=1" not in shown
    assert chat([[{"role": "user", "content": "x"}]]) == ["ok"]
    ((_, auth, body),) = server.requests
    assert (
        auth == "Bearer EMPTY"
        and body["temperature"] == 0.7
        and body["max_tokens"] == 5
        and body["model"] == "m"
    )
    assert body["seed"] == 4


def test_offline_huggingface_hub_client_and_local_network_settings_are_refused(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ChatError, match="HF_HUB_OFFLINE=1 .*use client='openai'"):
        make_chat("m", base_url="http://127.0.0.1:9/v1", client="huggingface_hub")
    # the default client (the openai SDK, a dependency) reaches a local server offline: no refusal
    assert make_chat("m", base_url="http://127.0.0.1:9/v1").client == "openai"
    with pytest.raises(ChatError, match="max_retries, requests_per_minute apply to an HTTP endpoint only"):
        make_chat("builtin:minilm-decoder", max_retries=3, requests_per_minute=10)
    with pytest.raises(ChatError, match="needs its tokenizer"):
        make_chat(object())


def test_local_chat_is_greedy_at_zero_and_samples_reproducibly_above(tiny_models):
    model, tokenizer = tiny_models("llama", seed=0)
    conversations = [
        [{"role": "user", "content": "hello there"}],
        [{"role": "user", "content": "a longer prompt"}],
    ]
    greedy = make_chat(model, tokenizer=tokenizer, max_tokens=4, batch_size=1)
    assert isinstance(greedy, LocalChat) and greedy(conversations) == greedy(conversations)
    first = make_chat(model, tokenizer=tokenizer, max_tokens=4, temperature=1.0, seed=3)(conversations)
    again = make_chat(model, tokenizer=tokenizer, max_tokens=4, temperature=1.0, seed=3)(conversations)
    assert first == again and len(first) == 2
