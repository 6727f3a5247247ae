"""Correctness of peft_diversity.scoring against independent references and hand-computed values."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from peft_diversity.chat import make_chat
from peft_diversity.errors import ExperimentConfigError
from peft_diversity.scoring import (
    attribute_entropies,
    attribute_entropy,
    build_judge_messages,
    coherence,
    distinct_k,
    distinct_n,
    expected_distinct,
    greedy_partition,
    load_embedder,
    make_judge,
    parse_rating,
    score_predictions,
    self_bleu,
    semantic_diversity,
    tokenize,
    vendi_from_kernel,
    vendi_score,
)
from peft_diversity.scoring import cli as score_cli
from peft_diversity.scoring.kernels import cosine_matrix
from peft_diversity.scoring.openings import drop_opening, openings_per_possibility
from peft_diversity.scoring.report import OPENING_WORDS

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ref = _load("reference_metrics")
bench = _load("bench_metrics")

EDGE = [
    ["The cat sat on the mat.", "The cat sat on the mat.", "A dog barked loudly at night."],
    ["Só um café, por favor — obrigado!", "我喜欢喝茶。", ""],
    ["only one response"],
    ["", ""],
    ["short", "also short", "a b c d e f g h", "a b c d e f g h"],
]


@pytest.fixture(scope="module")
def embedder():
    """The default all-MiniLM-L6-v2 embedder, loaded once (and cached by load_embedder)."""
    return load_embedder()


@pytest.fixture(scope="module")
def synthetic():
    return bench.synthetic_predictions(40, 6, seed=1) + EDGE


class FakeEmbedder:
    """Deterministic embedder from a text -> vector table; counts encode calls."""

    def __init__(self, table):
        self.table = table
        self.calls = []

    def encode(self, texts):
        self.calls.append(list(texts))
        return np.array([self.table[t] for t in texts], dtype=float)


# --- tokenisation -------------------------------------------------------------------------


def test_tokenize_words_punctuation_unicode():
    assert tokenize("Don't STOP!") == ["don", "'", "t", "stop", "!"]
    assert tokenize("Café über") == ["café", "über"]
    assert tokenize("我喜欢 tea") == ["我", "喜", "欢", "tea"]
    assert tokenize("") == [] and tokenize("   ") == []


# --- self-BLEU ---------------------------------------------------------------------------


@pytest.mark.parametrize("smoothing", ["none", "method1", "method2", "method3"])
@pytest.mark.parametrize("max_order", [2, 4])
def test_self_bleu_matches_nltk(synthetic, smoothing, max_order):
    ours = self_bleu(synthetic, max_order=max_order, smoothing=smoothing, return_per_prompt=True)
    nltk = ref.nltk_self_bleu(synthetic, tokenize, max_order, smoothing)
    for responses, fast, slow in zip(synthetic, ours["self_bleu_per_response"], nltk, strict=True):
        assert len(fast) == len(slow)
        if not slow:  # K < 2: no references
            continue
        toks = [tuple(tokenize(t)) for t in responses]
        for tok, a, b in zip(toks, fast, slow, strict=True):
            if not tok or toks.count(tok) > 1:  # the documented exception: empty or copied responses score 1
                assert a == 1.0
            else:
                assert abs(a - b) <= 1e-9


def test_self_bleu_hand_values():
    long = "the cat sat on the mat"
    assert self_bleu([[long, long]])["self_bleu"] == pytest.approx(1.0)
    assert self_bleu([["a b c d", "e f g h"]])["self_bleu"] == 0.0
    # "a b" twice: NLTK gives p1 = p2 = 1, p3 = p4 = 0.1 (method1) -> 0.1 ** 0.5; a copy adds no diversity: 1
    assert self_bleu([["a b", "a b"]])["self_bleu"] == 1.0
    # hyp "a b c" vs ref "a b d": p1 = p2 = 1/2... p1 = 2/3, p2 = 1/2, p3 = 0.1/1, bp = 1
    expected = math.exp((math.log(2 / 3) + math.log(1 / 2) + math.log(0.1)) / 3)
    assert self_bleu([["a b c", "a b d"]], max_order=3)["self_bleu"] == pytest.approx(expected, abs=1e-12)


def test_self_bleu_k1_pooled_and_tokenizers():
    res = self_bleu(
        [["x y z w"], ["a b c d", "a b c d"], ["a b c d", "e f g h", "a b c d"]], return_per_prompt=True
    )
    assert res["self_bleu_per_prompt"][0] == 1.0  # K = 1: defined as no diversity
    assert res["self_bleu_per_response"][0] == []
    assert res["self_bleu_per_prompt"][1:] == pytest.approx([1.0, 2 / 3])
    assert res["self_bleu"] == pytest.approx((1 + 1 + 2 / 3) / 3)
    assert res["self_bleu_pooled"] == pytest.approx(4 / 5)  # 5 responses with references
    assert res["self_bleu_diversity"] == pytest.approx(1 - res["self_bleu"])
    assert self_bleu([["A B", "a b"]], max_order=2, tokenizer="whitespace")["self_bleu"] == 1.0
    assert self_bleu([["A B", "a b"]], max_order=2, lowercase=False)["self_bleu"] == 0.0
    assert self_bleu([["ab", "ab"]], max_order=1, tokenizer=list)["self_bleu"] == 1.0
    with pytest.raises(ValueError):
        self_bleu([["a"]], smoothing="method9")


# --- semantic diversity ------------------------------------------------------------------


def test_semantic_diversity_matches_per_prompt_loop(embedder, synthetic):
    sample = synthetic[:4] + EDGE  # the reference loop encodes prompt by prompt: keep it small
    ours = semantic_diversity(sample, embedder, return_per_prompt=True)["semantic_diversity_per_prompt"]
    loop = ref.loop_semantic_diversity(sample, embedder)
    assert np.max(np.abs(np.array(ours) - np.array(loop))) <= 1e-6


def test_semantic_diversity_edge_cases(embedder):
    res = semantic_diversity(EDGE, embedder, return_per_prompt=True)
    per = res["semantic_diversity_per_prompt"]
    assert per[2] == 0.0 and per[3] == 0.0  # K = 1; two identical empty strings
    # exact by construction (docs promise 0.0): identical texts have identical rows, whose similarity is set to 1;
    # MiniLM's normalised "short" has a self dot product of 1 - 2.2e-16, which gave 2.2e-16 before
    same = semantic_diversity([["short", "short"], ["I love tea."] * 3], embedder, return_per_prompt=True)
    assert same["semantic_diversity_per_prompt"] == [0.0, 0.0] and same["semantic_diversity_pooled"] == 0.0
    assert 0.0 < per[0] < 1.0 and 0.0 < per[1]
    assert res["num_pairs"] == 3 + 3 + 0 + 1 + 6
    json.dumps(res, allow_nan=False)


def test_semantic_diversity_hand_values_and_one_encode():
    table = {"a": [1, 0], "b": [0, 1], "c": [1, 1], "d": [-1, 0]}
    fake = FakeEmbedder(table)
    res = semantic_diversity([["a", "b", "c"], ["a", "d"], ["a"]], fake, return_per_prompt=True)
    assert len(fake.calls) == 1 and fake.calls[0] == ["a", "b", "c", "d"]  # one call, duplicates once
    c = 1 / math.sqrt(2)
    assert res["semantic_diversity_per_prompt"] == pytest.approx([1 - (0 + c + c) / 3, 2.0, 0.0])
    assert res["semantic_diversity"] == pytest.approx((1 - 2 * c / 3 + 2.0 + 0.0) / 3)
    assert res["semantic_diversity_pooled"] == pytest.approx(1 - (2 * c - 1) / 4)  # 4 pairs pooled


def test_default_embedder_cached(embedder):
    assert load_embedder() is embedder


# --- distinct-n / EAD --------------------------------------------------------------------


def test_distinct_n_matches_counter(synthetic):
    res = distinct_n(synthetic, return_per_prompt=True)
    for n in (1, 2, 3, 4):
        assert res[f"distinct_{n}_per_prompt"] == pytest.approx(
            ref.counter_distinct(synthetic, n, tokenize), abs=1e-12
        )
    pooled = [[t for responses in synthetic for t in responses]]
    assert res["distinct_2_pooled"] == pytest.approx(ref.counter_distinct(pooled, 2, tokenize)[0])


def test_distinct_n_hand_values():
    res = distinct_n([["a b a b"], ["c", ""]], orders=(1, 2), vocab_size=10, return_per_prompt=True)
    assert res["distinct_1_per_prompt"] == [0.5, 1.0]
    assert res["distinct_2_per_prompt"] == [pytest.approx(2 / 3), 0.0]  # "c" has no bigram
    assert res["distinct_1_pooled"] == pytest.approx(3 / 5)
    assert res["ead_1_per_prompt"][0] == pytest.approx(2 / (10 * (1 - 0.9**4)))
    assert res["ead_2_per_prompt"][0] == pytest.approx(2 / (100 * (1 - 0.99**3)))
    assert expected_distinct(1e30, 200) == pytest.approx(200)  # stable for huge V
    assert expected_distinct(5, 0) == 0.0
    assert distinct_n([[""]])["distinct_1"] == 0.0


# --- Vendi / distinct_k -------------------------------------------------------------------


def test_vendi_values(embedder):
    assert vendi_score([["red apple", "blue sky", "green tea"]], kernel="ngram")[
        "vendi_score"
    ] == pytest.approx(3.0)
    assert vendi_score([["same words", "same words"]], kernel="ngram")["vendi_score"] == pytest.approx(1.0)
    assert vendi_score([["alone"]], embedder=embedder)["vendi_score"] == 1.0
    assert vendi_score([["", ""]], kernel="ngram")["vendi_score"] == pytest.approx(1.0)
    emb = np.random.default_rng(0).normal(size=(6, 5))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    kernel = cosine_matrix(emb)
    assert vendi_from_kernel(kernel) == pytest.approx(ref.eig_vendi(kernel), abs=1e-9)
    res = vendi_score(EDGE, embedder=embedder, return_per_prompt=True)
    assert all(
        1.0 - 1e-9 <= v <= len(r) + 1e-9 for v, r in zip(res["vendi_score_per_prompt"], EDGE, strict=True)
    )


def test_distinct_k(embedder):
    sim = np.array([[1, 0.9, 0.1], [0.9, 1, 0.95], [0.1, 0.95, 1]])
    assert greedy_partition(sim, 0.85) == [0, 0, 1]  # item 2 is compared with item 0 only
    res = distinct_k([["a cat", "a cat", "two dogs"], ["x"]], method="ngram", return_per_prompt=True)
    assert res["distinct_k_per_prompt"] == [2.0, 1.0] and res["distinct_k_classes"] == [[0, 0, 1], [0]]
    assert res["distinct_k_ratio"] == pytest.approx((2 / 3 + 1) / 2)
    res = distinct_k([["I love tea.", "I love tea.", "Quantum physics is hard."]], embedder=embedder)
    assert res["distinct_k"] == 2.0


# --- coherence ---------------------------------------------------------------------------


def test_coherence_embedding(embedder):
    preds = [["I am fine, thanks for asking.", "Bananas are yellow."], ["¡Hola!"]]
    res = coherence(
        preds, [["A: hi", "B: how are you?"], "Say hello"], embedder=embedder, return_per_prompt=True
    )
    assert -1.0 <= res["coherence_relevance"] <= 1.0
    assert len(res["coherence_relevance_per_prompt"]) == 2
    with pytest.raises(ValueError):
        coherence(preds, ["only one context"], embedder=embedder)


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("Rating: 7/10", 7.0),
        ("**8**", 8.0),
        ("seven", 7.0),
        ("Rating: Seven.", 7.0),
        ("I'd give it 6 out of 10.", 6.0),
        ("85/100", 8.5),
        ("**Rating:** 3", 3.0),
        ("score=9", 9.0),
        ("Rating: 0", 1.0),
        ("no idea", None),
        ("", None),
        (None, None),
        ("42", None),
    ],
)
def test_parse_rating(text, score):
    assert parse_rating(text) == score


def test_coherence_judge_with_test_double():
    seen = []

    def judge(conversations):
        seen.extend(conversations)
        return ["Rating: 9", "3/10", "gibberish", "**5**"]

    res = coherence(
        [["a", "b", "c"], ["d"]],
        ["ctx one", ["t1", "t2"]],
        method="judge",
        judge=judge,
        return_per_prompt=True,
    )
    assert (
        len(seen) == 4 and seen[0][-1]["content"].count("ctx one") == 1 and "t1\nt2" in seen[3][-1]["content"]
    )
    assert res["ratings"] == [[9.0, 3.0, None], [5.0]]
    assert res["coherence_rating"] == pytest.approx((6.0 + 5.0) / 2)
    assert res["coherence_rating_pooled"] == pytest.approx(17 / 3)
    assert res["incoherence_rate"] == pytest.approx((0.5 + 1.0) / 2)
    assert res["incoherence_rate_pooled"] == pytest.approx(2 / 3)
    assert res["num_unparsed"] == 1 and res["num_rated"] == 3
    none = coherence([["a"]], ["c"], method="judge", judge=lambda cs: ["?"] * len(cs))
    assert none["coherence_rating"] is None and none["incoherence_rate"] is None
    json.dumps(res, allow_nan=False)


def test_openai_compatible_judge_on_local_server(monkeypatch, chat_double):
    server, url = chat_double(lambda body: "Rating: 4")
    monkeypatch.setenv("TEST_JUDGE_KEY", "secret")
    judge = make_judge("judge-model", url, api_key_env="TEST_JUDGE_KEY")
    res = coherence([["x", "y"]], ["hello"], method="judge", judge=judge)
    assert res["coherence_rating"] == 4.0 and res["incoherence_rate"] == 1.0
    assert len(server.requests) == 2  # concurrent requests: any order
    for path, auth, body in server.requests:
        assert path == "/v1/chat/completions" and auth == "Bearer secret" and body["model"] == "judge-model"
    sent = [body["messages"] for _, _, body in server.requests]
    assert build_judge_messages("hello", "x") in sent and build_judge_messages("hello", "y") in sent


def test_hf_judge_runs_with_tiny_local_model():
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from peft_diversity.scoring import default_embedder_path

    tokenizer = AutoTokenizer.from_pretrained(default_embedder_path())  # any local tokenizer will do
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    model = LlamaForCausalLM(config)
    judge = make_chat(model, tokenizer=tokenizer, max_tokens=3, batch_size=2)
    replies = judge([build_judge_messages("c", r) for r in ("a", "b", "c")])
    assert len(replies) == 3 and all(isinstance(r, str) for r in replies)
    res = coherence([["a", "b"]], ["c"], method="judge", judge=model, judge_tokenizer=tokenizer)
    assert res["num_rated"] + res["num_unparsed"] == 2


# --- attribute entropy -------------------------------------------------------------------


def test_attribute_entropy_matches_scipy():
    values = ["male"] * 5 + ["female"] * 3 + ["non-binary"]
    h, kl = ref.scipy_entropy(values)
    res = attribute_entropy(values + ["unknown", None, "Unknown"])
    assert res["entropy"] == pytest.approx(h, abs=1e-12)
    assert res["kl_to_reference"] == pytest.approx(kl, abs=1e-12)
    assert res["normalized_entropy"] == pytest.approx(h / math.log2(3))
    assert res["num_unknown"] == 3 and res["num_known"] == 9 and res["unknown_rate"] == pytest.approx(0.25)
    reference = {"male": 0.49, "female": 0.49, "non-binary": 0.02}
    _, kl_ref = ref.scipy_entropy(values, reference)
    assert attribute_entropy(values, reference)["kl_to_reference"] == pytest.approx(kl_ref, abs=1e-12)


def test_attribute_entropy_edge_cases():
    one = attribute_entropy(["male", "male"], categories=["male", "female"])
    assert (
        one["entropy"] == 0.0
        and one["normalized_entropy"] == 0.0
        and one["kl_to_reference"] == pytest.approx(1.0)
    )
    assert one["counts"] == {"male": 2, "female": 0}
    empty = attribute_entropy(["unknown", None])
    assert empty["entropy"] == 0.0 and empty["kl_to_reference"] is None and empty["unknown_rate"] == 1.0
    assert attribute_entropy(["a", "b"])["entropy"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        attribute_entropy(["a", "c"], reference={"a": 1, "b": 1})
    multi = attribute_entropies([{"gender": "f", "age": "30s"}, {"gender": "m"}])
    assert multi["gender"]["entropy"] == pytest.approx(1.0) and multi["age"]["num_unknown"] == 1
    json.dumps(multi, allow_nan=False)


# --- validation, JSON, report and CLI --------------------------------------------------------


def test_input_validation():
    with pytest.raises(ValueError):
        self_bleu([])
    with pytest.raises(TypeError):
        distinct_n(["not a list of lists"])
    with pytest.raises(TypeError):
        distinct_n([[1, 2]])


def test_score_predictions_is_json_and_embeds_once(embedder):
    table = {t: np.random.default_rng(len(t)).normal(size=4) for r in EDGE for t in r}
    table.update({c: np.ones(4) for c in ("c1", "c2", "c3", "c4", "c5")})
    fake = FakeEmbedder(table)
    res = score_predictions(EDGE, ["c1", "c2", "c3", "c4", "c5"], embedder=fake)
    assert len(fake.calls) == 2  # responses once, then only the unseen contexts
    assert {
        "semantic_diversity",
        "self_bleu",
        "distinct_2",
        "vendi_score",
        "vendi_ngram",
        "distinct_k",
        "coherence_relevance",
    } <= set(res)
    json.dumps(res, allow_nan=False)


def test_score_predictions_per_prompt_lists_match_scoring_each_prompt_alone(embedder):
    """The study reads per-context values from the scoring pass itself: each list entry is what that prompt
    scored alone gives (one embedding pass for all, not one per prompt)."""
    texts = {t for group in EDGE for t in group} | {
        drop_opening(t, OPENING_WORDS) for group in EDGE for t in group
    }
    table = {t: np.random.default_rng(sum(map(ord, t))).normal(size=4) for t in texts}
    contexts = ["c1", "c2", "c3", "c4", "c5"]
    table.update({c: np.ones(4) for c in contexts})
    metrics = ["semantic_diversity", "semantic_diversity_no_opening", "self_bleu", "coherence"]
    together = score_predictions(
        EDGE, contexts, metrics=metrics, embedder=FakeEmbedder(table), return_per_prompt=True
    )
    lists = together.pop("per_prompt")
    assert json.dumps(together, allow_nan=False) and not any(isinstance(v, list) for v in together.values())
    for key in ("semantic_diversity", "semantic_diversity_no_opening", "self_bleu", "coherence_relevance"):
        assert len(lists[f"{key}_per_prompt"]) == len(EDGE)
        for i, group in enumerate(EDGE):
            alone = score_predictions([group], [contexts[i]], metrics=metrics, embedder=FakeEmbedder(table))
            # same arithmetic on the same vectors; only the summation order of a batched pass may differ
            assert lists[f"{key}_per_prompt"][i] == pytest.approx(alone[key], abs=1e-9), (key, i)
    assert "per_prompt" not in score_predictions(
        EDGE, contexts, metrics=metrics, embedder=FakeEmbedder(table)
    )


def test_cli_groups_by_model_and_decoder(tmp_path, capsys, embedder):
    rows = [
        {"context": "Hi", "responses": ["Hello there!", "Hey."], "model": "m", "decoder": "sampling"},
        {
            "context": ["A: hi", "B: yo"],
            "responses": ["Sure.", "Fine", "Ok."],
            "model": "m",
            "decoder": "possibilities",
        },
        {"context": "Hi again", "responses": ["Hello!", "Hello!"], "model": "m", "decoder": "sampling"},
    ]
    path = tmp_path / "responses.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    from peft_diversity.cli import parse_command

    out = tmp_path / "scores.json"
    (args,) = parse_command(
        score_cli.make_parser(),
        [str(path), "--output", str(out), "--metrics", "self_bleu", "semantic_diversity"],
    )
    assert score_cli.run(args) == 0
    table = capsys.readouterr().out
    assert "| model | decoder | semantic div. ↑ | self-BLEU ↓ |" in table
    assert "| m | sampling |" in table and "| m | possibilities |" in table
    data = json.loads(out.read_text())
    groups = {(g["model"], g["decoder"]): g["scores"] for g in data["groups"]}
    assert (
        groups[("m", "sampling")]["num_prompts"] == 2 and groups[("m", "possibilities")]["num_responses"] == 3
    )


# ----- `score` on bad files: one line naming file:line and field, exit 2 ---------------------------------------
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"context": "a", "responses": ["x"]}\n{"context": "b", "responses": [\n', r":2: not valid JSON"),
        (b'{"context": "a", "answers": ["x"]}\n', r":1: missing key 'responses'"),
        (b'{"context": "a", "responses": "x y"}\n', r":1: 'responses' must be a list of strings"),
        (b'{"context": "a", "responses": ["x", 3]}\n', r":1: responses\[1\] must be a string, got int"),
        (b'["a", "b"]\n', r":1: need a JSON object"),
        (b'{"context": "a", "responses": ["x"], "model": ["m"]}\n', r":1: 'model' must be a string"),
        (b"\n\n", r"no rows"),
        (b'{"context": "caf\xe9", "responses": ["x"]}\n', r":1: line is not valid UTF-8"),
    ],
)
def test_score_bad_file_is_one_line(tmp_path, capsys, content, message):
    import re

    from peft_diversity.cli import main

    path = tmp_path / "responses.jsonl"
    path.write_bytes(content)
    assert main(["score", str(path), "--metrics", "distinct_n"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        len(err.splitlines()) == 1 and err.startswith("peft-diversity score:") and re.search(message, err)
    ), err


def test_score_missing_file_is_one_line(tmp_path, capsys):
    from peft_diversity.cli import main

    assert main(["score", str(tmp_path / "nope.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_identical_or_empty_responses_never_score_as_diverse():
    for group in (["", ""], ["", "", ""], ["ok", "ok"], ["Yes.", "yes ."], ["a b c", ""]):
        result = self_bleu([group], return_per_prompt=True)
        assert result["self_bleu_diversity"] <= 0.5 and result["self_bleu_diversity_pooled"] <= 0.5, group
    assert self_bleu([["", ""]])["self_bleu"] == 1.0
    assert (
        self_bleu([["a b c d", "", "e f g h"]], return_per_prompt=True)["self_bleu_per_response"][0][1] == 1.0
    )
    assert self_bleu([["a b c d", "e f g h"]])["self_bleu"] == 0.0  # real diversity still scores 0


def test_long_embedding_shows_progress_only_on_a_terminal(monkeypatch):
    import sys

    from peft_diversity.scoring import embeddings

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert embeddings._show_progress(8 * 128, 128) and not embeddings._show_progress(100, 128)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert not embeddings._show_progress(10_000, 128)


def test_judge_agreement_tells_a_reading_judge_from_a_blind_one():
    from peft_diversity.scoring.coherence import judge_agreement

    contexts = ["A: I love tea.", "A: My bike broke.", "A: It is snowing.", "A: The exam went well."]
    replies = ["Tea is lovely.", "Fix the bike.", "Snow is cold.", "Good exam news."]
    keywords = ["tea", "bike", "snow", "exam"]

    def reading(conversations):  # rates 9 when the reply picks up the context's topic, else 2
        out = []
        for conversation in conversations:
            text = conversation[-1]["content"].lower()
            context, reply = text.split("context:")[-1].split("response:")[0], text.split("response:")[-1]
            out.append("Rating: 9" if any(k in context and k in reply for k in keywords) else "Rating: 2")
        return out

    good = judge_agreement(contexts, replies, reading, seed=1)
    assert good["prefers_own"] == 1.0 and good["own_rating"] > good["other_rating"] and good["num_pairs"] == 4
    blind = judge_agreement(contexts, replies, lambda c: ["Rating: 5"] * len(c), seed=1)
    assert blind["prefers_own"] == 0.5  # ties count half: chance


def test_openings_per_possibility_and_dropping_openings():
    from peft_diversity.scoring.openings import drop_opening, opening, openings_per_possibility

    assert (
        opening("Oh, wow! That is great.", 2) == "oh wow"
        and drop_opening("Oh, wow! That is great.", 2) == "That is great."
    )
    table = openings_per_possibility(
        [[1, 2], [1, 2]], [["Oh wow, tea!", "Sure thing."], ["Oh wow, snow.", "No way."]]
    )
    assert table[1] == {"responses": 2, "top": [("oh wow", 1.0)]}  # k=1 always opens alike: a style
    assert table[2]["top"] == [("sure thing", 0.5), ("no way", 0.5)]


def test_diversity_without_openings_sees_through_a_shared_opening(embedder):
    from peft_diversity.scoring.report import score_predictions

    same_idea = [
        ["Oh wow, I love tea so much.", "Oh wow, I love tea very much.", "Oh wow, I love tea a lot."]
    ]
    scores = score_predictions(
        same_idea, metrics=["semantic_diversity", "semantic_diversity_no_opening"], embedder=embedder
    )
    assert scores["semantic_diversity_no_opening"] < 0.2
    different = [["Oh wow, I love tea so much.", "Oh wow, the bus is late again.", "Oh wow, snow in May."]]
    assert (
        score_predictions(different, metrics=["semantic_diversity_no_opening"], embedder=embedder)[
            "semantic_diversity_no_opening"
        ]
        > 0.4
    )


def test_paired_bootstrap_interval_and_share():
    from peft_diversity.scoring.paired import paired_bootstrap

    first, second = [0.5, 0.6, 0.7, 0.8], [0.4, 0.6, 0.5, 0.9]  # differences +0.1, 0, +0.2, -0.1
    gap = paired_bootstrap(first, second, num_samples=2000)
    assert gap["mean_difference"] == pytest.approx(0.05)
    low, high = gap["interval"]
    assert -0.1 <= low < 0.05 < high <= 0.2  # percentiles of resampled means stay within the differences
    assert gap["share_higher"] == pytest.approx((2 + 0.5) / 4) and gap["num_prompts"] == 4
    assert paired_bootstrap(first, second, num_samples=2000) == gap  # seeded
    constant = paired_bootstrap([1.0] * 5, [0.25] * 5)
    assert constant["interval"] == pytest.approx([0.75, 0.75]) and constant["share_higher"] == 1.0
    from peft_diversity.errors import ScoringInputError

    with pytest.raises(ScoringInputError, match="same non-zero number of prompts, got 2 and 1"):
        paired_bootstrap([1.0, 2.0], [1.0])


# --- the empty-response rule (docs/metrics.md) on every metric -----------------------------------------------
FOUR = [
    "I love hiking in the mountains.",
    "The stock market fell today.",
    "Pasta needs salted water.",
    "My cat sleeps all day.",
]
DIVERSITY = {  # metric -> (function of one prompt's responses, True when higher means more diverse)
    "semantic": (lambda g, e: semantic_diversity([g], e)["semantic_diversity"], True),
    "semantic_pooled": (lambda g, e: semantic_diversity([g], e)["semantic_diversity_pooled"], True),
    "vendi": (lambda g, e: vendi_score([g], embedder=e)["vendi_score"], True),
    "vendi_normalized": (lambda g, e: vendi_score([g], embedder=e)["vendi_score_normalized"], True),
    "vendi_ngram": (lambda g, e: vendi_score([g], kernel="ngram")["vendi_score"], True),
    "distinct_k": (lambda g, e: distinct_k([g], embedder=e)["distinct_k"], True),
    "distinct_k_ngram": (lambda g, e: distinct_k([g], method="ngram")["distinct_k"], True),
    "distinct_k_ratio": (lambda g, e: distinct_k([g], embedder=e)["distinct_k_ratio"], True),
    "distinct_1": (lambda g, e: distinct_n([g])["distinct_1"], True),
    "distinct_1_chars": (
        lambda g, e: distinct_n([g], tokenizer=list)["distinct_1"],
        True,
    ),  # "\n": a new char
    "ead_1": (lambda g, e: distinct_n([g])["ead_1"], True),
    "self_bleu_diversity": (lambda g, e: self_bleu([g])["self_bleu_diversity"], True),
    "self_bleu_chars": (lambda g, e: self_bleu([g], tokenizer=list)["self_bleu_diversity"], True),
    "top_opening_share": (
        lambda g, e: openings_per_possibility([[1] * len(g)], [g], num_words=1)[1]["top"][0][1],
        False,
    ),
}


@pytest.mark.parametrize("metric", sorted(DIVERSITY))
@pytest.mark.parametrize("empty", ["", "   ", "\n"])
def test_adding_an_empty_response_never_raises_diversity(embedder, metric, empty):
    score, higher_is_diverse = DIVERSITY[metric]
    for group in (FOUR, FOUR[:2], ["Yes.", "Yes.", "No."], ["So it goes."] * 2):
        before, after = score(group, embedder), score([*group, empty], embedder)
        # a fresh float computation on the larger set may differ by rounding (~1e-15); 1e-12 is far below any
        # real gain (the bug gave +0.12 semantic, +1 Vendi, +1 class)
        assert (after <= before + 1e-12) if higher_is_diverse else (after >= before - 1e-12), (
            group,
            before,
            after,
        )


def test_empty_response_rule_values(embedder):
    with_empty = [*FOUR, ""]
    four = semantic_diversity([FOUR], embedder, return_per_prompt=True)["semantic_diversity_per_prompt"][0]
    # the empty response's 4 pairs count as cosine 1: diversity scales by 6 pairs / 10 pairs (up to rounding)
    assert semantic_diversity([with_empty], embedder)["semantic_diversity"] == pytest.approx(four * 6 / 10)
    assert (
        semantic_diversity([["a reply", ""]], embedder)["semantic_diversity"] == 0.0
    )  # exact: cosine set to 1
    res = distinct_k([with_empty, ["", " "]], embedder=embedder, return_per_prompt=True)
    assert res["distinct_k_per_prompt"] == [4.0, 1.0] and res["distinct_k_classes"] == [
        [0, 1, 2, 3, 0],
        [0, 0],
    ]
    vendi = vendi_score([with_empty, ["", ""]], embedder=embedder, return_per_prompt=True)
    assert vendi["vendi_score_per_prompt"][0] == pytest.approx(
        vendi_score([FOUR], embedder=embedder)["vendi_score"]
    )
    assert vendi["vendi_score_per_prompt"][1] == 1.0


def test_score_and_experiment_accept_exactly_the_metric_registry():
    """One registry (scoring.report.KNOWN_METRICS): the score command's --metrics, an experiment's `metrics:`
    and its `coherence_metric:` accept its names and nothing else."""

    from peft_diversity.experiment.checks import experiment_problems
    from peft_diversity.experiment.config import ExperimentConfig
    from peft_diversity.scoring.cli import make_parser
    from peft_diversity.scoring.report import KNOWN_METRICS, PER_CONTEXT_METRICS

    parser = make_parser()
    assert tuple(parser.parse_args(["--metrics", *KNOWN_METRICS]).metrics) == KNOWN_METRICS
    (metrics_flag,) = [a for a in parser._actions if a.dest == "metrics"]
    assert tuple(metrics_flag.choices) == KNOWN_METRICS

    base = {
        "name": "x",
        "base_model": "m",
        "dataset": "d",
        "runs": [{"model": "base", "decoder": "sampling"}],
    }
    assert experiment_problems({**base, "metrics": list(KNOWN_METRICS)}, ExperimentConfig) == []
    (problem,) = experiment_problems({**base, "metrics": ["vibes"]}, ExperimentConfig)
    assert problem == f"metrics: unknown metrics ['vibes']; choose from {list(KNOWN_METRICS)}"
    for name in PER_CONTEXT_METRICS:
        assert ExperimentConfig.from_dict({**base, "coherence_metric": name}).coherence_metric == name
    with pytest.raises(ExperimentConfigError, match="coherence_metric 'vibes' is not a metric"):
        ExperimentConfig.from_dict({**base, "coherence_metric": "vibes"})
    # refused before any work, not after generation when the per-context file finds no values
    for name in sorted(set(KNOWN_METRICS) - set(PER_CONTEXT_METRICS)):
        with pytest.raises(
            ExperimentConfigError, match=f"coherence_metric '{name}' has no value per context"
        ):
            ExperimentConfig.from_dict({**base, "coherence_metric": name})


def test_every_per_context_metric_gives_a_value_per_context(embedder):
    """PER_CONTEXT_METRICS (what `coherence_metric` accepts) is true of the metrics: each returns
    `<summary key>_per_prompt`, one value per context (likelihood_coherence's: tests/test_likelihood.py)."""
    from peft_diversity.scoring.report import PER_CONTEXT_METRICS, score_predictions, summary_key

    metrics = [m for m in PER_CONTEXT_METRICS if m != "likelihood_coherence"]
    predictions = [["a cat sat on the mat", "the dog ran far away"], ["one two three", "four five six seven"]]
    out = score_predictions(
        predictions,
        contexts=["Ann: hi", "Bo: yo"],
        metrics=metrics,
        embedder=embedder,
        return_per_prompt=True,
    )
    for metric in metrics:
        assert len(out["per_prompt"][f"{summary_key(metric)}_per_prompt"]) == 2, metric
