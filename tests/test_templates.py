"""PossibilityTemplate: rendering through real chat templates, shared-prefix property, persistence, errors,
and the trainer's `encode_example` (what a training row looks like in tokens) on four architectures."""

from __future__ import annotations

import json

import pytest
import torch

from peft_diversity.templates import (
    DEFAULT_PLAIN_SENTENCE,
    DEFAULT_POSSIBILITY_SENTENCE,
    TEMPLATE_FILENAME,
    PossibilityTemplate,
    TemplateError,
)
from peft_diversity.trainer.trainer import IGNORE, encode_example

ARCHS = ("llama", "qwen2", "mistral", "gemma")
# Everything the chat template puts after the user's text when asking for the assistant turn.
AFTER_USER_TURN = {
    "fallback": "\nassistant:",
    "llama": "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    "qwen2": "<|im_end|>\n<|im_start|>assistant\n",
    "mistral": "[/INST]",
    "gemma": "<end_of_turn>\n<start_of_turn>model\n",
}
TURN_MARKERS = ("<|", "[INST]", "[/INST]", "<start_of_turn>", "<end_of_turn>", "assistant:", "user:")
END_OF_TURN = {"llama": "<|eot_id|>", "qwen2": "<|im_end|>", "mistral": "</s>", "gemma": "<end_of_turn>"}
BOS = {"llama": "<|begin_of_text|>", "qwen2": None, "mistral": "<s>", "gemma": "<bos>"}

DIALOGUE = {
    "id": "d1",
    "context": [
        {"speaker": "Priya", "text": "I burned the rice again. Third time this week."},
        {"speaker": "Sam", "text": "Which pot were you using?"},
    ],
    "candidates": ["The thin one.", "The big one."],
}
STORY = {
    "id": "s1",
    "prompt": "A lighthouse keeper finds a letter.",
    "candidates": ["It was dry.", "It was wet."],
}
NEGATIVE_RESPONSE = "Sadly, the parrot refused to sing again."
NEGATIVE_CONTENT_WORDS = ["sadly", "parrot", "refused", "sing"]  # "the", "to", "again" are stopwords


@pytest.fixture
def chat_tokenizer(minilm_tokenizer, bpe_tokenizer, arch_tokenizer):
    """Factory: tokenizer for `name` in ("fallback", *ARCHS) over base "minilm" (WordPiece) or "bpe"."""

    def make(name: str, base: str = "bpe"):
        if name != "fallback":
            return arch_tokenizer(name, base)
        if base == "minilm":
            return minilm_tokenizer  # set up with the fallback template by minilm_decoder_tokenizer()
        assert not bpe_tokenizer.chat_template  # peft_diversity must supply the fallback itself
        return bpe_tokenizer

    return make


# ----- rendering -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("record", [DIALOGUE, STORY], ids=["dialogue", "story"])
@pytest.mark.parametrize("name", ["fallback", *ARCHS])
def test_possibility_sentence_is_the_last_thing_in_the_user_turn(chat_tokenizer, name, record):
    tokenizer = chat_tokenizer(name)
    template = PossibilityTemplate(task="dialogue" if "context" in record else "story")
    for k in (1, 5, 9):
        sentence = DEFAULT_POSSIBILITY_SENTENCE.replace("{k}", str(k))
        prompt = template.prompt_text(tokenizer, record, k)
        assert prompt.endswith(sentence + AFTER_USER_TURN[name]), prompt[-200:]
        assert prompt.count(sentence) == 1
        # the task input is rendered before it, inside the same user turn (no turn marker in between)
        source = record.get("prompt") or record["context"][-1]["text"]
        between = prompt[prompt.index(source) : prompt.index(sentence)]
        assert not any(marker in between for marker in TURN_MARKERS), between
    plain = template.prompt_text(tokenizer, record, None)
    assert plain.endswith(DEFAULT_PLAIN_SENTENCE + AFTER_USER_TURN[name])
    assert "possibility" not in plain


def test_rendered_input_and_messages():
    template = PossibilityTemplate()
    assert template.render_input(DIALOGUE) == (
        "Priya: I burned the rice again. Third time this week.\nSam: Which pot were you using?"
    )
    msgs = PossibilityTemplate(system_prompt="Be brief.").messages(DIALOGUE, 4, response="The thin one.")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant"]
    assert msgs[1]["content"].startswith("Here is a conversation:\nPriya: I burned")
    assert msgs[1]["content"].endswith("possibility number #4.")
    assert msgs[2]["content"] == "The thin one."
    custom = PossibilityTemplate(task="custom", instruction="Translate to French: {input}")
    assert custom.user_message({"prompt": "  good morning  "}, None) == (
        "Translate to French: good morning\n\n" + DEFAULT_PLAIN_SENTENCE
    )
    with pytest.raises(TemplateError, match="neither 'context' nor 'prompt'"):
        template.user_message({"id": "x", "candidates": ["a"]}, 1)


@pytest.mark.parametrize("name", ["fallback", "llama", "qwen2", "gemma"])
def test_system_prompt_comes_before_the_user_turn(chat_tokenizer, name):
    tokenizer = chat_tokenizer(name, "minilm")
    template = PossibilityTemplate(system_prompt="You answer in one sentence.")
    prompt = template.prompt_text(tokenizer, DIALOGUE, 2)
    assert prompt.index("You answer in one sentence.") < prompt.index("Here is a conversation:")
    assert prompt.endswith("#2." + AFTER_USER_TURN[name])


@pytest.mark.parametrize("name", ["fallback", *ARCHS])
@pytest.mark.parametrize("base", ["minilm", "bpe"])
def test_k_prompts_differ_only_in_the_possibility_token(chat_tokenizer, base, name):
    """All K prompts share every token before the number: generation computes that prefix once."""
    tokenizer = chat_tokenizer(name, base)
    template = PossibilityTemplate()
    ids = [
        tokenizer(template.prompt_text(tokenizer, DIALOGUE, k), add_special_tokens=False)["input_ids"]
        for k in range(1, 10)
    ]
    assert len({len(x) for x in ids}) == 1
    differing = [i for i in range(len(ids[0])) if len({x[i] for x in ids}) > 1]
    assert len(differing) == 1
    pos = differing[0]
    assert pos > len(ids[0]) // 2  # the shared prefix is most of the prompt
    assert [tokenizer.convert_ids_to_tokens(x[pos]) for x in ids] == [str(k) for k in range(1, 10)]
    if base == "bpe":  # byte-level BPE decodes losslessly: after the number comes only the turn's end
        assert tokenizer.decode(ids[0][pos + 1 :]) == "." + AFTER_USER_TURN[name]


# ----- persistence ------------------------------------------------------------------------------------
def test_save_and_load_round_trip(tmp_path):
    template = PossibilityTemplate(
        task="story",
        system_prompt="Be vivid.",
        max_possibility=5,
        plain_sentence="Write it.",
        possibility_sentence="Give version {k}, please.",
    )
    path = template.save_pretrained(tmp_path / "out" / "model")  # parents are created
    assert path == tmp_path / "out" / "model" / TEMPLATE_FILENAME
    assert sorted(p.name for p in path.parent.iterdir()) == [TEMPLATE_FILENAME]  # no temp file left behind
    reference = tmp_path / "plain.txt"
    reference.write_text("x")  # ordinary permissions (umask), not a private 0600 temp file's
    assert path.stat().st_mode & 0o777 == reference.stat().st_mode & 0o777
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data == {
        "task": "story",
        "instruction": "Write the opening of a short story for this prompt:\n{input}",
        "possibility_sentence": "Give version {k}, please.",
        "plain_sentence": "Write it.",
        "max_possibility": 5,
        "system_prompt": "Be vivid.",
    }
    loaded = PossibilityTemplate.from_pretrained(path.parent)
    assert loaded == template
    assert loaded.user_message(STORY, 5).endswith("Give version 5, please.")


def test_failed_save_keeps_the_previous_file_and_leaves_no_temp_file(tmp_path):
    PossibilityTemplate(max_possibility=7).save_pretrained(tmp_path)
    before = (tmp_path / TEMPLATE_FILENAME).read_bytes()
    broken = PossibilityTemplate()
    broken.system_prompt = object()  # not JSON-serialisable: fails half-way through the dump
    with pytest.raises(TypeError):
        broken.save_pretrained(tmp_path)
    assert (tmp_path / TEMPLATE_FILENAME).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [TEMPLATE_FILENAME]
    assert PossibilityTemplate.from_pretrained(tmp_path).max_possibility == 7


def test_load_errors(tmp_path):
    (tmp_path / TEMPLATE_FILENAME).write_text(json.dumps({"task": "dialogue", "temperature": 0.7}))
    with pytest.raises(TemplateError, match=r"unknown template fields \['temperature'\]"):
        PossibilityTemplate.from_pretrained(tmp_path)
    (tmp_path / TEMPLATE_FILENAME).write_text('{"task": "dialogue",')
    with pytest.raises(TemplateError, match="not valid JSON"):
        PossibilityTemplate.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match=TEMPLATE_FILENAME):
        PossibilityTemplate.from_pretrained(tmp_path / "not-a-model")


# ----- errors ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"possibility_sentence": "Give response number #k."}, r"possibility_sentence must contain '\{k\}'"),
        ({"instruction": "Reply to this conversation."}, r"instruction must contain '\{input\}'"),
        ({"task": "poetry"}, r"task 'poetry' has no default instruction"),
        ({"max_possibility": 0}, "max_possibility must be >= 1"),
    ],
)
def test_invalid_templates(kwargs, message):
    with pytest.raises(TemplateError, match=message):
        PossibilityTemplate(**kwargs)


def test_from_dict_validates_too():
    with pytest.raises(TemplateError, match=r"possibility_sentence must contain"):
        PossibilityTemplate.from_dict({"possibility_sentence": "no number here"})


@pytest.mark.parametrize(("k", "max_possibility"), [(0, 9), (10, 9), (-1, 9), (4, 3)])
def test_k_outside_range(k, max_possibility):
    template = PossibilityTemplate(max_possibility=max_possibility)
    with pytest.raises(TemplateError, match=rf"k={k} is outside 1\.\.{max_possibility}"):
        template.user_message(DIALOGUE, k)


# ----- tiny models generate from rendered prompts -------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_model_generates_from_rendered_prompts(arch_model, arch):
    model, tokenizer = arch_model(arch)
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    assert tokenizer.eos_token == END_OF_TURN[arch]
    assert model.generation_config.eos_token_id == tokenizer.convert_tokens_to_ids(END_OF_TURN[arch])
    template = PossibilityTemplate()
    prompts = [template.prompt_text(tokenizer, DIALOGUE, k) for k in (1, 2, 3)]
    batch = tokenizer(prompts, add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=2, min_new_tokens=2, do_sample=False)
    assert out.shape == (3, batch["input_ids"].shape[1] + 2)
    assert torch.equal(out[:, :-2], batch["input_ids"])
    assert int(out.max()) < len(tokenizer)


# ----- encode_example ------------------------------------------------------------------------------------------
def _encode_case(name, arch_tokenizer, minilm_tokenizer):
    if name == "fallback":
        return minilm_tokenizer, minilm_tokenizer.eos_token, None
    return arch_tokenizer(name), END_OF_TURN[name], BOS[name]


@pytest.mark.parametrize("name", ["fallback", *ARCHS])
def test_encode_positive_row(arch_tokenizer, minilm_tokenizer, name):
    tokenizer, eot, bos = _encode_case(name, arch_tokenizer, minilm_tokenizer)
    template = PossibilityTemplate()
    response = "Were you using the pot with the thin bottom? That one scorches everything."
    row = encode_example(tokenizer, template, DIALOGUE, 6, response, negative=False)
    prompt_ids = tokenizer(template.prompt_text(tokenizer, DIALOGUE, 6), add_special_tokens=False)[
        "input_ids"
    ]
    n = len(prompt_ids)
    ids, labels = row["input_ids"], row["labels"]
    assert row["negative"] is False and len(ids) == len(labels) > n
    assert ids[:n] == prompt_ids  # training sees exactly the prefix generation will use
    assert labels[:n] == [IGNORE] * n
    assert labels[n:] == ids[n:]  # every completion token is learned
    completion = labels[n:]
    while tokenizer.decode([completion[-1]]).strip() == "":  # e.g. the "\n" after <|im_end|>
        completion.pop()
    assert completion[-1] == tokenizer.convert_tokens_to_ids(eot)
    text = tokenizer.decode(completion[:-1]).strip()
    assert text.lower() == response.lower() if name == "fallback" else text == response
    if bos is not None:
        assert ids[0] == tokenizer.convert_tokens_to_ids(bos) and ids.count(ids[0]) == 1  # no double BOS


@pytest.mark.parametrize("name", ["fallback", *ARCHS])
def test_encode_negative_row_labels_first_subtokens_of_content_words(arch_tokenizer, minilm_tokenizer, name):
    tokenizer, eot, _ = _encode_case(name, arch_tokenizer, minilm_tokenizer)
    template = PossibilityTemplate()
    row = encode_example(tokenizer, template, DIALOGUE, 2, NEGATIVE_RESPONSE, negative=True)
    n = len(tokenizer(template.prompt_text(tokenizer, DIALOGUE, 2), add_special_tokens=False)["input_ids"])
    ids, labels = row["input_ids"], row["labels"]
    assert row["negative"] is True
    assert labels[:n] == [IGNORE] * n
    marked = [i for i, lab in enumerate(labels) if lab != IGNORE]
    assert all(labels[i] == ids[i] for i in marked)
    pieces = [tokenizer.decode([ids[i]]).strip().lower() for i in marked]
    assert len(pieces) == len(NEGATIVE_CONTENT_WORDS), pieces
    for piece, word in zip(pieces, NEGATIVE_CONTENT_WORDS, strict=True):
        assert piece and word.startswith(piece), (piece, word)
    assert tokenizer.convert_tokens_to_ids(eot) not in [labels[i] for i in marked]
    # the same row as a positive has the identical token ids
    positive = encode_example(tokenizer, template, DIALOGUE, 2, NEGATIVE_RESPONSE, negative=False)
    assert positive["input_ids"] == ids


def test_mistral_system_prompt_is_rejected_clearly(arch_tokenizer):
    """Mistral v0.3 moves the system message into the LAST user turn only, so the generation prompt is not a
    prefix of the training conversation; encode_example must refuse rather than train on a mismatch."""
    tokenizer = arch_tokenizer("mistral")
    template = PossibilityTemplate(system_prompt="Be brief.")
    with pytest.raises(TemplateError, match="prefix of the full conversation"):
        encode_example(tokenizer, template, DIALOGUE, 1, "Sure.", negative=False)


def test_encode_truncates_the_prompt_from_the_left(arch_tokenizer):
    tokenizer = arch_tokenizer("qwen2")
    template = PossibilityTemplate()
    full = encode_example(tokenizer, template, DIALOGUE, 3, NEGATIVE_RESPONSE, negative=False)
    completion_len = sum(lab != IGNORE for lab in full["labels"])
    cut = encode_example(tokenizer, template, DIALOGUE, 3, NEGATIVE_RESPONSE, negative=False, max_length=40)
    assert len(cut["input_ids"]) == 40
    assert cut["input_ids"] == full["input_ids"][-40:]  # the possibility number and completion survive
    assert sum(lab != IGNORE for lab in cut["labels"]) == completion_len
