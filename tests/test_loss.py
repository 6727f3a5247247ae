"""PoExFT loss against hand-computed values, the label-position LM head against full logits, and the
content-word / first-sub-token selection the unlikelihood term trains on."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from peft_diversity.trainer.loss import (
    PROB_CLAMP,
    content_word_spans,
    first_subtoken_mask,
    poexft_loss,
    unlikelihood,
)
from peft_diversity.trainer.trainer import IGNORE, add_label_log_probs

# Two rows over a 5-token vocabulary, three label positions each. Row 0 is a positive (matched k_i, cand_i),
# row 1 a negative (k_i, cand_j): its labels exist only where a content word starts.
LOGITS = [
    [[2.0, 1.0, 0.1, -1.0, 0.5], [0.0, 0.0, 0.0, 0.0, 0.0], [1.0, -1.0, 0.3, 0.2, 4.0]],
    [[3.0, -2.0, 0.0, 1.0, 0.2], [1.0, 2.0, 3.0, 4.0, 5.0], [0.5, 0.5, 0.5, 0.5, 0.5]],
]
LABELS = [[0, 3, IGNORE], [0, IGNORE, 4]]
NEGATIVE = [False, True]


def _softmax_prob(logits: list[float], label: int) -> float:
    return math.exp(logits[label]) / sum(math.exp(z) for z in logits)


def _hand_probs() -> list[list[float | None]]:
    return [
        [_softmax_prob(z, y) if y != IGNORE else None for z, y in zip(row, labels, strict=True)]
        for row, labels in zip(LOGITS, LABELS, strict=True)
    ]


def _inputs(junk: float = -7.0):
    """(log_probs, label_mask, negative) as the trainer passes them; unlabelled positions hold junk."""
    probs = _hand_probs()
    log_probs = torch.tensor(
        [[math.log(p) if p is not None else junk for p in row] for row in probs], dtype=torch.float64
    )
    mask = torch.tensor([[y != IGNORE for y in row] for row in LABELS])
    return log_probs, mask, torch.tensor(NEGATIVE)


@pytest.mark.parametrize("ul_weight", [0.0, 0.5, 1.0, 3.0])
def test_poexft_loss_matches_hand_computation(ul_weight):
    p = _hand_probs()
    assert p[0][1] == pytest.approx(0.2)  # uniform logits
    assert p[1][0] == pytest.approx(0.7983, abs=1e-4)  # e^3 / (e^3 + e^-2 + 1 + e + e^0.2): confident, wrong
    mle = (-math.log(p[0][0]) - math.log(p[0][1])) / 2  # mean NLL over the positive's 2 label tokens
    ul = (-math.log(1 - p[1][0]) - math.log(1 - p[1][2])) / 2  # mean -log(1-p) over the negative's 2 tokens
    loss, mle_t, ul_t = poexft_loss(*_inputs(), ul_weight=ul_weight)
    assert mle_t.item() == pytest.approx(mle, abs=1e-6)
    assert ul_t.item() == pytest.approx(ul, abs=1e-6)
    assert loss.item() == pytest.approx(mle + ul_weight * ul, abs=1e-6)


def test_poexft_loss_from_log_softmax_of_the_logits():
    logits = torch.tensor(LOGITS, dtype=torch.float64)
    labels = torch.tensor(LABELS)
    mask = labels != IGNORE
    log_probs = logits.log_softmax(-1).gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)
    expected = poexft_loss(*_inputs(), ul_weight=0.7)
    got = poexft_loss(log_probs, mask, torch.tensor(NEGATIVE), ul_weight=0.7)
    for a, b in zip(got, expected, strict=True):
        assert a.item() == pytest.approx(b.item(), abs=1e-6)


def test_global_token_counts_replace_batch_counts():
    """Gradient accumulation / DDP pass the step's total counts: sums are divided by those instead."""
    p = _hand_probs()
    mle_sum = -math.log(p[0][0]) - math.log(p[0][1])
    ul_sum = -math.log(1 - p[1][0]) - math.log(1 - p[1][2])
    loss, mle, ul = poexft_loss(
        *_inputs(), ul_weight=0.5, num_positive_tokens=5, num_negative_tokens=torch.tensor(8)
    )
    assert mle.item() == pytest.approx(mle_sum / 5, abs=1e-6)
    assert ul.item() == pytest.approx(ul_sum / 8, abs=1e-6)
    assert loss.item() == pytest.approx(mle_sum / 5 + 0.5 * ul_sum / 8, abs=1e-6)


def test_gradient_wrt_log_probs():
    """d/dlogp: -1/n_pos on positive tokens; w * p/(1-p) / n_neg on negative tokens; 0 where unlabelled."""
    log_probs, mask, negative = _inputs()
    log_probs.requires_grad_(True)
    poexft_loss(log_probs, mask, negative, ul_weight=2.0)[0].backward()
    p = _hand_probs()
    expected = [
        [-0.5, -0.5, 0.0],
        [2.0 * p[1][0] / (1 - p[1][0]) / 2, 0.0, 2.0 * p[1][2] / (1 - p[1][2]) / 2],
    ]
    assert log_probs.grad.tolist() == [[pytest.approx(g, abs=1e-6) for g in row] for row in expected]


def test_batches_with_only_one_kind_of_row():
    log_probs, mask, _ = _inputs()
    loss, mle, ul = poexft_loss(log_probs, mask, torch.tensor([False, False]), ul_weight=1.0)
    assert ul.item() == 0.0 and loss.item() == pytest.approx(mle.item())
    p = _hand_probs()
    expected_mle = -(math.log(p[0][0]) + math.log(p[0][1]) + math.log(p[1][0]) + math.log(p[1][2])) / 4
    assert mle.item() == pytest.approx(expected_mle, abs=1e-6)
    loss, mle, ul = poexft_loss(log_probs, mask, torch.tensor([True, True]), ul_weight=1.0)
    assert mle.item() == 0.0 and torch.isfinite(loss)


def test_unlikelihood_values_and_clamping():
    log_p = torch.tensor([math.log(0.3), math.log(0.999), -50.0, float("-inf")], dtype=torch.float64)
    assert unlikelihood(log_p).tolist() == [
        pytest.approx(-math.log(0.7), abs=1e-9),
        pytest.approx(-math.log(0.001), abs=1e-9),
        pytest.approx(math.exp(-50.0), rel=1e-6),
        0.0,
    ]
    # p -> 1: finite, capped at -log(clamp), with a finite gradient (float32 as in training)
    near_one = torch.tensor([0.0, -1e-12, -1e-7], requires_grad=True)
    values = unlikelihood(near_one)
    assert torch.isfinite(values).all()
    assert values.tolist() == [pytest.approx(-math.log(PROB_CLAMP), rel=1e-4)] * 3
    values.sum().backward()
    assert torch.isfinite(near_one.grad).all()
    loss, _, ul = poexft_loss(
        near_one.detach()[None], torch.ones(1, 3, dtype=torch.bool), torch.tensor([True]), 1.0
    )
    assert torch.isfinite(loss) and ul.item() == pytest.approx(-math.log(PROB_CLAMP), rel=1e-4)


# ----- label-position LM head --------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["llama", "qwen2", "mistral", "gemma"])
def test_label_log_probs_match_full_logits(tiny_models, bpe_tokenizer, arch):
    model, tokenizer = tiny_models(arch, tokenizer=bpe_tokenizer, seed=1)
    g = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, len(tokenizer), (3, 12), generator=g)
    attention_mask = torch.ones_like(input_ids)
    input_ids[2, 9:] = tokenizer.pad_token_id  # right padding, as PossibilityCollator pads
    attention_mask[2, 9:] = 0
    labels = input_ids.clone()
    labels[:, :5] = IGNORE  # prompt
    labels[2, 9:] = IGNORE  # padding
    labels[1, [6, 8, 10]] = IGNORE  # a negative row: only some content-word tokens are labelled
    negative = torch.tensor([False, True, False])

    # reference: full (batch x seq x vocab) logits, log_softmax, gather
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits.float()
    targets = labels[:, 1:]
    ref_mask = targets != IGNORE
    ref = logits[:, :-1].log_softmax(-1).gather(-1, targets.clamp(min=0)[..., None]).squeeze(-1)
    ref_loss = poexft_loss(ref, ref_mask, negative, ul_weight=0.5)[0]
    ref_loss.backward()
    ref_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    ref_ce = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE
    )

    add_label_log_probs(model)
    out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, label_log_probs=True)
    assert out.log_probs.shape == (3, 11) and out.log_probs.dtype == torch.float32
    assert torch.equal(out.label_mask, ref_mask)
    torch.testing.assert_close(out.log_probs[ref_mask], ref[ref_mask].detach(), atol=1e-5, rtol=0)
    assert (out.log_probs[~ref_mask] == 0).all()
    loss = poexft_loss(out.log_probs, out.label_mask, negative, ul_weight=0.5)[0]
    assert loss.item() == pytest.approx(ref_loss.item(), abs=1e-5)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert grads.keys() == ref_grads.keys() and grads
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], atol=1e-5, rtol=1e-4, msg=name)

    # the patched forward still behaves as before without the flag
    with torch.no_grad():
        plain = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        assert plain.loss.item() == pytest.approx(ref_ce.item(), abs=1e-5)
        torch.testing.assert_close(
            model(input_ids=input_ids, attention_mask=attention_mask).logits.float(), logits.detach()
        )


# ----- content words and first sub-tokens ------------------------------------------------------------------------
TRICKY = [
    ("...well, I'd say 42 sub-tokenization isn't 'hard'!", ["say", "42", "sub-tokenization", "hard"]),
    (
        "\u201cDon\u2019t panic,\u201d she whispered\u2014twice\u2026 \u2018Soup\u2019?",
        ["panic", "whispered", "twice", "Soup"],
    ),
    (
        "(3-way) handshakes: it's well-known, y'know \u2014 1999's rainfall hit 800mm.",
        ["3-way", "handshakes", "well-known", "y'know", "1999's", "rainfall", "hit", "800mm"],
    ),
    (
        "Antidisestablishmentarianism outlasted photosynthesis; the caf\u00e9's cr\u00e8me br\u00fbl\u00e9e didn't.",
        [
            "Antidisestablishmentarianism",
            "outlasted",
            "photosynthesis",
            "caf\u00e9's",
            "cr\u00e8me",
            "br\u00fbl\u00e9e",
        ],
    ),
    ("  --Yes. No! Maybe?? OK: pizza_party.", ["pizza", "party"]),
    ("I'm not, but... it's just that. Don\u2019t!", []),
]
# MiniLM's WordPiece vocabulary is fixed, so its first sub-tokens can be written down exactly.
MINILM_MARKED = [
    ["say", "42", "sub", "hard"],
    ["panic", "whispered", "twice", "soup"],
    ["3", "hands", "well", "y", "1999", "rainfall", "hit", "800"],
    ["anti", "out", "photos", "cafe", "cr", "br"],
    ["pizza", "party"],
    [],
]


@pytest.mark.parametrize(("text", "words"), TRICKY)
def test_content_word_spans(text, words):
    assert [text[s:e] for s, e in content_word_spans(text)] == words


@pytest.mark.parametrize("family", ["minilm", "bpe"])
@pytest.mark.parametrize("case", range(len(TRICKY)))
def test_first_subtoken_mask_marks_exactly_the_first_token_of_each_content_word(
    minilm_tokenizer, bpe_tokenizer, family, case
):
    tokenizer = minilm_tokenizer if family == "minilm" else bpe_tokenizer
    text, words = TRICKY[case]
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    spans = content_word_spans(text)
    mask = first_subtoken_mask(offsets, spans)
    assert len(mask) == len(offsets)
    marked = [i for i, m in enumerate(mask) if m]
    assert len(marked) == len(
        words
    )  # with the spans checked above: no stopword or punctuation token is marked
    for i, (start, _end) in zip(marked, spans, strict=True):
        tok_start, tok_end = offsets[i]
        assert tok_start <= start < tok_end  # it holds the word's first character ...
        assert i == 0 or offsets[i - 1][1] <= start  # ... and no earlier token does: the FIRST sub-token
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    if family == "minilm":
        assert [tokens[i] for i in marked] == MINILM_MARKED[case]


def test_words_split_into_several_subtokens_get_one_mark(minilm_tokenizer, bpe_tokenizer):
    text = "Antidisestablishmentarianism"
    for tokenizer in (minilm_tokenizer, bpe_tokenizer):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        assert len(enc["input_ids"]) >= 4
        assert first_subtoken_mask(enc["offset_mapping"], content_word_spans(text)) == [True] + [False] * (
            len(enc["input_ids"]) - 1
        )


def test_first_subtoken_mask_with_leading_space_tokens():
    """Byte-level BPE offsets include the leading space ('Ġword' starts at the space)."""
    text = "the big dog"
    offsets = [(0, 3), (3, 7), (7, 11)]  # 'the', 'Ġbig', 'Ġdog'
    assert first_subtoken_mask(offsets, content_word_spans(text)) == [False, True, True]
    # a lone 'Ġ' token before a number does not take the number's mark
    text = "say 42"
    offsets = [(0, 3), (3, 4), (4, 5), (5, 6)]  # 'say', 'Ġ', '4', '2'
    assert first_subtoken_mask(offsets, content_word_spans(text)) == [True, False, True, False]
