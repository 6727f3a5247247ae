"""Generation: shared-prefix equivalence, one call for K, every baseline decoder, bad input, clean-up, CLI."""

from __future__ import annotations

import json
import logging
import math
from types import SimpleNamespace

import pytest
import torch

from peft_diversity import generation as gen
from peft_diversity.errors import GenerationError
from peft_diversity.generation.beam import diverse_beam_search
from peft_diversity.generation.cli import main as cli_main
from peft_diversity.generation.cli import parse_context
from peft_diversity.generation.decoders import DECODERS
from peft_diversity.generation.responses import Responses
from peft_diversity.generation.text import clean_response, parse_numbered_list
from peft_diversity.models.minilm import minilm_decoder_tokenizer
from peft_diversity.models.tiny import tiny_model_and_tokenizer
from peft_diversity.templates import PossibilityTemplate

DIALOGUE = [
    {"speaker": "Maya", "text": "I finally finished the painting I started last spring."},
    {"speaker": "Sam", "text": "Wow, what made you pick it up again?"},
]
STORY = {"prompt": "A lighthouse keeper finds a letter addressed to someone who died a century ago."}


@pytest.fixture(scope="module")
def tokenizer():
    return minilm_decoder_tokenizer()


def tiny(arch: str, tokenizer, seed: int = 0):
    """A tiny random model with larger weights, so greedy outputs depend on the prompt (not one repeated token)."""
    model, tok = tiny_model_and_tokenizer(arch, tokenizer=tokenizer, seed=seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 2:
                param.normal_(0.0, 0.3)
    return model, tok


@pytest.fixture(scope="module")
def llama(tokenizer):
    return tiny("llama", tokenizer)


def count_generate_calls(monkeypatch, model) -> list[dict]:
    calls: list[dict] = []
    original = model.generate

    def wrapper(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "generate", wrapper)
    return calls


# ----- possibilities: shared prefix ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("arch", "possibilities"),
    [("llama", [1, 2, 3]), ("llama", [5, 12345, 99999]), ("qwen2", [2, 7, 40])],
)
def test_shared_prefix_matches_plain_batched_path_under_greedy(tokenizer, arch, possibilities):
    # 12345 and 99999 tokenize into more pieces than 5: suffixes of different lengths (middle padding).
    model, tok = tiny(arch, tokenizer)
    template = PossibilityTemplate(max_possibility=99999)
    settings = dict(
        possibilities=possibilities, template=template, temperature=0, max_new_tokens=6, clean=False
    )
    contexts = [DIALOGUE, STORY]  # prefixes of different lengths (left padding) in one batch
    shared = gen.generate_possibilities(model, tok, contexts=contexts, **settings)
    plain = gen.generate_possibilities(model, tok, contexts=contexts, shared_prefix=False, **settings)
    assert [r.settings["path"] for r in shared] == ["shared_prefix"] * 2
    assert [r.settings["path"] for r in plain] == ["plain"] * 2
    assert [r.texts for r in shared] == [r.texts for r in plain]
    assert [r.num_tokens for r in shared] == [r.num_tokens for r in plain]
    assert len(set(shared[0].texts)) > 1  # the possibility number changes the greedy output


def test_k_possibilities_take_one_generate_call(monkeypatch, llama):
    model, tok = llama
    calls = count_generate_calls(monkeypatch, model)
    result = gen.generate_possibilities(
        model, tok, DIALOGUE, num_responses=5, template=PossibilityTemplate(), max_new_tokens=4
    )
    assert len(calls) == 1
    assert calls[0]["input_ids"].shape[0] == 5
    assert calls[0]["cache"].get_seq_length() > 0  # the prefix was prefilled once, outside generate
    assert isinstance(result, Responses)
    assert result.possibilities == [1, 2, 3, 4, 5]
    assert len(result.texts) == len(result.num_tokens) == 5
    assert result.decoder == "possibilities" and result.wall_time_s > 0


def test_many_contexts_are_batched(monkeypatch, llama):
    model, tok = llama
    calls = count_generate_calls(monkeypatch, model)
    records = [
        {"id": f"r{i}", "context": f"Line number {i} of a short chat about the weather today."}
        for i in range(5)
    ]
    results = gen.generate_possibilities(
        model,
        tok,
        contexts=records,
        num_responses=2,
        template=PossibilityTemplate(),
        max_new_tokens=3,
        batch_size=2,
    )
    assert len(calls) == 3
    assert [r.id for r in results] == [f"r{i}" for i in range(5)]
    assert all(len(r.texts) == 2 for r in results)


def test_template_is_read_from_the_model_folder(tmp_path, tokenizer):
    model, tok = tiny("llama", tokenizer)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    PossibilityTemplate(max_possibility=3).save_pretrained(tmp_path)
    loaded = type(model).from_pretrained(tmp_path)
    result = gen.generate_possibilities(loaded, tok, DIALOGUE, num_responses=3, max_new_tokens=2)
    assert result.possibilities == [1, 2, 3]
    with pytest.raises(GenerationError, match="max_possibility=3"):
        gen.generate_possibilities(loaded, tok, DIALOGUE, num_responses=4, max_new_tokens=2)


def test_random_possibilities_are_distinct_and_seeded(llama):
    model, tok = llama
    template = PossibilityTemplate(max_possibility=9)
    runs = [
        gen.generate_possibilities(
            model,
            tok,
            DIALOGUE,
            num_responses=4,
            possibilities="random",
            template=template,
            max_new_tokens=2,
            seed=3,
        )
        for _ in range(2)
    ]
    numbers = runs[0].possibilities
    assert len(set(numbers)) == 4 and all(1 <= n <= 9 for n in numbers)
    assert runs[1].possibilities == numbers and runs[1].texts == runs[0].texts


# ----- sampling baselines ----------------------------------------------------------------------------------
def test_sampling_and_min_p(monkeypatch, llama):
    model, tok = llama
    calls = count_generate_calls(monkeypatch, model)
    first = gen.generate_sampling(model, tok, DIALOGUE, num_responses=4, max_new_tokens=5, seed=0)
    again = gen.generate_sampling(model, tok, DIALOGUE, num_responses=4, max_new_tokens=5, seed=0)
    assert len(calls) == 2 and first.texts == again.texts and len(first.texts) == 4
    assert first.settings["path"] == "shared_prefix" and first.settings["temperature"] == 1.0
    min_p = gen.generate_min_p(model, tok, DIALOGUE, num_responses=3, min_p=0.3, max_new_tokens=5, seed=0)
    assert calls[-1]["min_p"] == 0.3 and min_p.settings["min_p"] == 0.3 and len(min_p.texts) == 3
    with pytest.raises(GenerationError, match="min_p"):
        gen.generate_min_p(model, tok, DIALOGUE, min_p=1.5)
    with pytest.raises(GenerationError, match="temperature"):
        gen.generate_min_p(model, tok, DIALOGUE, temperature=0)


# ----- diverse beam search: hand-worked example --------------------------------------------------------------
EOS, A, B, C, START = range(5)
# Next-token probabilities given the last token (rows: eos, A, B, C, start); only the last token matters.
TABLE = {
    START: [0.05, 0.5, 0.3, 0.15, 0.0],
    A: [0.1, 0.1, 0.6, 0.2, 0.0],
    B: [0.1, 0.1, 0.1, 0.7, 0.0],
    C: [0.85, 0.05, 0.05, 0.05, 0.0],
    EOS: [1.0, 0.0, 0.0, 0.0, 0.0],
}


class TableLM(torch.nn.Module):
    """A fake causal LM with fixed next-token log-probs and no cache."""

    def __init__(self) -> None:
        super().__init__()
        rows = [TABLE[i] for i in range(5)]
        self.register_buffer("table", torch.tensor(rows).clamp(min=1e-12).log())
        self.config = SimpleNamespace(is_encoder_decoder=False)

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return SimpleNamespace(logits=self.table[input_ids])


def run_table(penalty: float, beams: int, groups: int):
    return diverse_beam_search(
        TableLM(),
        [START],
        num_beams=beams,
        num_beam_groups=groups,
        diversity_penalty=penalty,
        max_new_tokens=2,
        eos_token_id=EOS,
    )


def test_diverse_beam_search_hand_worked_strong_penalty():
    # Step 1: g0 takes A (ln .5). g1: A costs ln .5 - 2 = -2.69 < ln .3 -> B. g2: A -2.69, B -3.20, C ln .15 -> C.
    # Step 2: g0 A->B (ln .6); g1 B->C (ln .7, C unused so far); g2 C->eos (ln .85): finished, length 2.
    hyps = run_table(penalty=2.0, beams=3, groups=3)
    assert [[h.tokens for h in group] for group in hyps] == [[[A, B]], [[B, C]], [[C]]]
    expected = [math.log(0.5 * 0.6) / 2, math.log(0.3 * 0.7) / 2, math.log(0.15 * 0.85) / 2]
    assert [group[0].score for group in hyps] == pytest.approx(expected, rel=1e-5)


def test_diverse_beam_search_hand_worked_weak_penalty_accumulates():
    # Step 1: g1's A costs ln .5 - .5 = -1.193 > ln .3 = -1.204 -> A again; g2's A costs ln .5 - 2 x .5 -> B.
    # Step 2: g0 A->B; g1 A->B costs ln .6 - .5 (B taken once) = -1.011 > ln .2 -> B; g2 B->C.
    hyps = run_table(penalty=0.5, beams=3, groups=3)
    assert [group[0].tokens for group in hyps] == [[A, B], [A, B], [B, C]]
    # g1's score carries both penalties it paid.
    assert hyps[1][0].score == pytest.approx((math.log(0.5) - 0.5 + math.log(0.6) - 0.5) / 2, rel=1e-5)


def test_diverse_beam_search_without_penalty_is_greedy_per_group_and_one_group_is_beam_search():
    assert [group[0].tokens for group in run_table(penalty=0.0, beams=3, groups=3)] == [[A, B]] * 3
    # One group of two beams: step 1 keeps A, B; step 2 ranks A->B (ln .3) and B->C (ln .21) highest.
    (group,) = run_table(penalty=1.0, beams=2, groups=1)
    assert [h.tokens for h in group] == [[A, B], [B, C]]
    assert gen.pick_diverse(
        [[gen.Hypothesis([1], -1.0), gen.Hypothesis([2], -2.0)], [gen.Hypothesis([3], -0.5)]], 3
    ) == [gen.Hypothesis([1], -1.0), gen.Hypothesis([3], -0.5), gen.Hypothesis([2], -2.0)]


def test_diverse_beam_search_cache_path_matches_full_recompute(llama, tokenizer):
    model, tok = llama
    prompt = gen.encode(tok, PossibilityTemplate().prompt_text(tok, {"context": DIALOGUE}, None))
    kwargs = dict(
        num_beams=4, num_beam_groups=2, diversity_penalty=0.7, max_new_tokens=5, eos_token_id=tok.eos_token_id
    )
    cached = diverse_beam_search(model, prompt, use_cache=True, **kwargs)
    full = diverse_beam_search(model, prompt, use_cache=False, **kwargs)
    assert [[h.tokens for h in g] for g in cached] == [[h.tokens for h in g] for g in full]
    result = gen.generate_diverse_beam(
        model, tok, DIALOGUE, num_responses=3, max_new_tokens=4, diversity_penalty=2.0
    )
    assert result.decoder == "diverse_beam" and len(result.texts) == 3
    assert result.settings["num_beam_groups"] == 3
    with pytest.raises(GenerationError, match="multiple"):
        gen.generate_diverse_beam(model, tok, DIALOGUE, num_responses=3, num_beams=4, num_beam_groups=3)
    with pytest.raises(GenerationError, match="temperature"):
        gen.generate_diverse_beam(model, tok, DIALOGUE, temperature=0.7)


# ----- listing ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "1. The first one.\n2. The second one.\n3. The third one.",
        "1) The first one.\n2) The second one.\n3) The third one.",
        "#1: The first one.\n#2: The second one.\n#3: The third one.",
        "Response 1: The first one.\nResponse 2: The second one.\nResponse 3: The third one.",
        "1 . the first one . 2 . the second one . 3 . the third one .",  # WordPiece-decoded, no newlines
        "# 1 : the first one # 2 : the second one # 3 : the third one",
        "- The first one.\n- The second one.\n* The third one.",
        "Here you go:\n1. The first one.\n2. The second one.\n3. The third one.\n4. An extra one.",
    ],
)
def test_listing_parse_formats(text):
    parsed = parse_numbered_list(text, 3)
    assert parsed.failures == []
    assert [item.lower().rstrip(" .") for item in parsed.items] == [
        "the first one",
        "the second one",
        "the third one",
    ]


def test_listing_parse_failures_and_stray_numbers():
    parsed = parse_numbered_list("1. I have 2 cats. 3. dogs\n2. Only two items here.", 4)
    assert parsed.items == ["I have 2 cats. 3. dogs", "Only two items here."] and parsed.failures == [3, 4]
    assert parse_numbered_list("1. \n2. something", 2).failures == [1]
    assert parse_numbered_list("just one unnumbered answer", 3).failures == [2, 3]
    assert parse_numbered_list("", 2).failures == [1, 2]


def test_listing_decoder_reports_parse_failures(monkeypatch, llama):
    model, tok = llama
    reply = gen.encode(tok, "1. a quiet walk by the river 2) a loud party") + [tok.eos_token_id]

    def fake_generate(input_ids, attention_mask, **kwargs):
        assert kwargs["max_new_tokens"] == 3 * 7  # per-response budget x k
        return torch.cat([input_ids, torch.tensor([reply] * input_ids.shape[0])], dim=1)

    monkeypatch.setattr(model, "generate", fake_generate)
    result = gen.generate_listing(model, tok, DIALOGUE, num_responses=3, max_new_tokens=7)
    assert result.texts == ["a quiet walk by the river", "a loud party"]
    assert result.parse_failures == [3]
    assert result.num_tokens == [len(gen.encode(tok, t)) for t in result.texts]
    assert json.loads(json.dumps(result.to_dict()))["parse_failures"] == [3]


# ----- iterative ----------------------------------------------------------------------------------------
def test_iterative_makes_k_calls_each_told_the_previous_responses(monkeypatch, llama):
    model, tok = llama
    replies = iter(["alpha", "beta", "gamma"])
    prompts: list[str] = []

    def fake_generate(input_ids, attention_mask, **kwargs):
        prompts.append(tok.decode(input_ids[0], skip_special_tokens=True))
        reply = gen.encode(tok, next(replies)) + [tok.eos_token_id]
        return torch.cat([input_ids, torch.tensor([reply] * input_ids.shape[0])], dim=1)

    monkeypatch.setattr(model, "generate", fake_generate)
    result = gen.generate_iterative(model, tok, DIALOGUE, num_responses=3, max_new_tokens=4)
    assert result.texts == ["alpha", "beta", "gamma"] and result.num_tokens == [1, 1, 1]
    assert len(prompts) == 3 and "already given" not in prompts[0]
    assert "1. alpha" in prompts[1] and "2." not in prompts[1].split("already given")[1]
    assert "1. alpha" in prompts[2] and "2. beta" in prompts[2]


# ----- the registry, results ------------------------------------------------------------------------------
def test_registry_names_and_common_shape(llama):
    assert list(DECODERS) == ["possibilities", "sampling", "min_p", "diverse_beam", "listing", "iterative"]
    model, tok = llama
    for name in DECODERS:
        extra = {"template": PossibilityTemplate()} if name == "possibilities" else {}
        results = gen.generate_responses(
            name, model, tok, contexts=[DIALOGUE, STORY], num_responses=2, max_new_tokens=2, **extra
        )
        assert [r.decoder for r in results] == [name, name]
        assert json.loads(json.dumps([r.to_dict() for r in results]))[1]["context"] == STORY["prompt"]
        assert all(isinstance(r.wall_time_s, float) for r in results)
    with pytest.raises(GenerationError, match="unknown decoder"):
        gen.get_decoder("top_k")


def test_responses_jsonl_round_trip(tmp_path):
    result = Responses(
        texts=["a", "b"],
        num_tokens=[1, 1],
        wall_time_s=0.5,
        decoder="possibilities",
        context=DIALOGUE,
        possibilities=[1, 2],
        model="m",
        settings={"temperature": 1.0},
    )
    line = result.to_dict()
    assert list(line)[:8] == [
        "context",
        "responses",
        "decoder",
        "model",
        "possibilities",
        "wall_time_s",
        "num_tokens",
        "settings",
    ]
    path = gen.write_responses_jsonl([result, result], tmp_path / "responses.jsonl")
    assert gen.read_responses_jsonl(path) == [result, result]


# ----- bad input ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_responses": 0}, "num_responses must be an integer >= 1"),
        ({"num_responses": 10}, "max_possibility=9"),
        ({"possibilities": [1, 0]}, "possibility must be"),
        ({"possibilities": [3, 12]}, "possibility=12"),
        ({"possibilities": "sometimes"}, "'random'"),
        ({"num_responses": 2, "possibilities": [1, 2, 3]}, "disagrees"),
        ({"max_new_tokens": 5000}, "window"),
        ({"max_new_tokens": 0}, "max_new_tokens must be"),
        ({"max_new_tokens": 4, "min_new_tokens": 5}, "min_new_tokens must be"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_possibility_settings(llama, kwargs, message):
    model, tok = llama
    with pytest.raises(GenerationError, match=message):
        gen.generate_possibilities(model, tok, DIALOGUE, template=PossibilityTemplate(), **kwargs)


@pytest.mark.parametrize("context", ["", "   ", [], [{"speaker": "Maya", "text": " "}], {"prompt": ""}])
def test_empty_context_is_an_error(llama, context):
    model, tok = llama
    with pytest.raises(GenerationError, match="empty"):
        gen.generate_sampling(model, tok, context)


def test_context_and_contexts_are_exclusive(llama):
    model, tok = llama
    with pytest.raises(GenerationError, match="exactly one"):
        gen.generate_sampling(model, tok)
    with pytest.raises(GenerationError, match="exactly one"):
        gen.generate_sampling(model, tok, DIALOGUE, contexts=[DIALOGUE])
    with pytest.raises(GenerationError, match="empty"):
        gen.generate_sampling(model, tok, contexts=[])


def test_missing_template_suggests_template_option(llama):
    model, tok = llama
    with pytest.raises(GenerationError, match="--template"):
        gen.generate_possibilities(model, tok, DIALOGUE)
    assert (
        gen.generate_sampling(model, tok, STORY, num_responses=1, max_new_tokens=1).settings["template_task"]
        == "story"
    )


def test_long_context_is_truncated_from_the_left(monkeypatch, caplog, tokenizer):
    model, tok = tiny("llama", tokenizer)
    model.config.max_position_embeddings = 96
    calls = count_generate_calls(monkeypatch, model)
    turns = [
        {"speaker": "Maya" if i % 2 else "Sam", "text": f"message {i} " + "blah " * 12} for i in range(30)
    ]
    turns[-1]["text"] = "the very last message"
    with caplog.at_level(logging.WARNING, logger="peft_diversity.generation"):
        result = gen.generate_possibilities(
            model, tok, turns, num_responses=2, template=PossibilityTemplate(), max_new_tokens=6
        )
    assert "truncating" in caplog.text
    assert len(result.texts) == 2
    assert calls[0]["input_ids"].shape[1] <= 96 - 6
    prompt = tok.decode(calls[0]["input_ids"][0], skip_special_tokens=True)
    assert "the very last message" in prompt and "message 0 " not in prompt
    # One huge string context: cut from its start, its end kept.
    long_text = " ".join(f"word{i}" for i in range(400)) + " final words"
    story = gen.generate_sampling(model, tok, long_text, num_responses=1, max_new_tokens=6)
    assert len(story.texts) == 1
    assert "final words" in tok.decode(calls[-1]["input_ids"][0], skip_special_tokens=True)


# ----- clean-up -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  Maya:   sounds   good to me  ", "sounds good to me"),
        ("assistant: Sam: sure thing", "sure thing"),
        ("Response 2: maybe tomorrow", "maybe tomorrow"),
        ("possibility # 3 : a red kite", "a red kite"),
        ("sure . user : write the next reply", "sure ."),
        ("I'd love to.\nMaya: great, see you then", "I'd love to."),
        ("I'd love to. maya : great", "I'd love to."),
        ("corresponds to possibility number # 4 . a walk in the park", ". a walk in the park"),
        ("first line\n\n\n  second   line ", "first line\nsecond line"),
        ("I told Maya: no", "I told Maya: no"),
    ],
)
def test_clean_response(raw, clean):
    template = PossibilityTemplate()
    echoes = [template.possibility_sentence, "corresponds to possibility number #{k}"]
    assert clean_response(raw, speakers=["Maya", "Sam"], echoes=echoes) == clean


def test_clean_response_removes_a_full_template_echo():
    template = PossibilityTemplate()
    raw = template.possibility_sentence.replace("{k}", "2").lower().replace(".", " .") + " let us go"
    assert clean_response(raw, echoes=[template.possibility_sentence]) == "let us go"


# ----- CLI ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_folder(tmp_path_factory, tokenizer):
    folder = tmp_path_factory.mktemp("tiny-poexft")
    model, tok = tiny("llama", tokenizer)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    PossibilityTemplate().save_pretrained(folder)
    return folder


def test_cli_prints_k_numbered_responses(model_folder, tmp_path, capsys):
    out = tmp_path / "responses.jsonl"
    code = cli_main(
        [
            "--model-name-or-path",
            str(model_folder),
            "--context",
            "Maya: hi there\\nSam: hello",
            "--num-responses",
            "3",
            "--max-new-tokens",
            "4",
            "--seed",
            "1",
            "--output",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    lines = captured.out.strip().splitlines()
    assert [line.split(" ")[0] for line in lines] == ["1.", "2.", "3."]
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (
        row["decoder"] == "possibilities" and row["possibilities"] == [1, 2, 3] and len(row["responses"]) == 3
    )
    assert row["context"] == [{"speaker": "Maya", "text": "hi there"}, {"speaker": "Sam", "text": "hello"}]


def test_cli_baseline_and_errors(model_folder, tmp_path, tokenizer, capsys):
    assert (
        cli_main(
            [
                "--model-name-or-path",
                str(model_folder),
                "--prompt",
                "a dragon",
                "--decoder",
                "listing",
                "--num-responses",
                "2",
                "--max-new-tokens",
                "2",
            ]
        )
        == 0
    )
    bare = tmp_path / "bare"
    model, tok = tiny_model_and_tokenizer("llama", tokenizer=tokenizer)
    model.save_pretrained(bare)
    tok.save_pretrained(bare)
    capsys.readouterr()
    assert cli_main(["--model-name-or-path", str(bare), "--context", "hi", "--num-responses", "2"]) == 2
    assert "--template" in capsys.readouterr().err
    template = tmp_path / "template.json"
    template.write_text(json.dumps(PossibilityTemplate(max_possibility=4).to_dict()))
    assert (
        cli_main(
            [
                "--model-name-or-path",
                str(bare),
                "--context",
                "hi",
                "--num-responses",
                "2",
                "--template",
                str(template),
                "--max-new-tokens",
                "2",
            ]
        )
        == 0
    )
    assert (
        cli_main(
            [
                "--model-name-or-path",
                str(bare),
                "--context",
                "hi",
                "--num-responses",
                "5",
                "--template",
                str(template),
            ]
        )
        == 2
    )
    assert (
        cli_main(
            [
                "--model-name-or-path",
                str(model_folder),
                "--context",
                "hi",
                "--decoder",
                "sampling",
                "--possibilities",
                "1,2",
            ]
        )
        == 2
    )
    assert "--possibilities applies to the possibilities decoder" in capsys.readouterr().err


def test_parse_context():
    assert parse_context("Maya: hi\nSam: hello there") == [
        {"speaker": "Maya", "text": "hi"},
        {"speaker": "Sam", "text": "hello there"},
    ]
    assert parse_context("just a plain sentence") == "just a plain sentence"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"context": "hi"}\n{"context": "caf\xe9"}\n', r"records\.jsonl:2: line is not valid UTF-8"),
        (b'{"context": "hi"}\n{"text": "no key"}\n', r"records\.jsonl:2: no 'context' or 'prompt' key"),
        (b'{"context": "hi"}\n[1, 2]\n', r"records\.jsonl:2: a record must be a JSON object"),
        (b"\n", r"no records"),
    ],
)
def test_cli_bad_input_file_is_one_line(model_folder, tmp_path, capsys, content, message, monkeypatch):
    import re

    monkeypatch.setattr(
        "peft_diversity.models.loading.load_model_and_tokenizer",
        lambda *a, **k: pytest.fail("the model loaded before the input was checked"),
    )
    path = tmp_path / "records.jsonl"
    path.write_bytes(content)
    assert (
        cli_main(["--model-name-or-path", str(model_folder), "--input", str(path), "--decoder", "sampling"])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--temperature", "-1"], r"temperature must be in \[0"),
        (["--temperature", "nan"], "temperature must be a number"),
        (["--top-p", "1.5"], r"top_p must be in \(0"),
        (["--top-p", "0"], r"top_p must be in \(0"),
    ],
)
def test_cli_out_of_range_sampling_settings(model_folder, capsys, flags, message, monkeypatch):
    import re

    monkeypatch.setattr(
        "peft_diversity.models.loading.load_model_and_tokenizer",
        lambda *a, **k: pytest.fail("the model loaded before the settings were checked"),
    )
    assert (
        cli_main(
            ["--model-name-or-path", str(model_folder), "--context", "hi", "--decoder", "sampling", *flags]
        )
        == 2
    )
    assert re.search(message, capsys.readouterr().err)


def test_sampling_ranges_hold_in_the_library(llama):
    model, tok = llama
    with pytest.raises(GenerationError, match="temperature must be in"):
        gen.generate_sampling(model, tok, DIALOGUE, num_responses=2, temperature=-0.5, max_new_tokens=2)
    with pytest.raises(GenerationError, match="top_k must be"):
        gen.generate_sampling(model, tok, DIALOGUE, num_responses=2, top_k=-1, max_new_tokens=2)


def test_cli_folder_that_is_not_a_model(tmp_path, capsys):
    killed = tmp_path / "killed-run"
    (killed / "checkpoint-1").mkdir(parents=True)
    assert cli_main(["--model-name-or-path", str(killed), "--context", "hi"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a model folder" in err and "checkpoint-1" in err
    a_file = tmp_path / "weights.txt"
    a_file.write_text("x")
    assert cli_main(["--model-name-or-path", str(a_file), "--context", "hi"]) == 2
    assert "is a file" in capsys.readouterr().err
