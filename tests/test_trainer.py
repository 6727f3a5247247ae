"""PossibilityTrainer end to end on a tiny random llama, through the recipe's own code path.

`train_from_config` does exactly what `recipes/sft_peft.py` does (`make_parser().parse_args_and_config()` +
`run_training`), from a YAML written to tmp_path that points at a tiny model folder and a tmp JSONL dataset.
Everything runs on CPU in float32 (PossibilityConfig inherits TRL's `bf16=True` default, so it is turned off).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from peft_diversity.data import load_one_to_many
from peft_diversity.errors import DataValidationError, ModelLoadError
from peft_diversity.hub.metadata import trained_mode
from peft_diversity.models.loading import load_model_and_tokenizer
from peft_diversity.models.tiny import tiny_model_and_tokenizer
from peft_diversity.templates import (
    TEMPLATE_FILENAME,
    TRAINED_KEY,
    PossibilityTemplate,
    TemplateError,
    default_decoder,
)
from peft_diversity.trainer.cli import make_parser, run_training
from peft_diversity.trainer.config import PossibilityConfig
from peft_diversity.trainer.loss import PROB_CLAMP
from peft_diversity.trainer.trainer import IGNORE, PossibilityTrainer

NUM_RECORDS = 4
NUM_CANDIDATES = 3
LLAMA_LINEAR = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


# ----- fixtures --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def records():
    return load_one_to_many("builtin:dialogue")[:NUM_RECORDS]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory, records) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_config(tmp_path: Path, model_dir: Path, data: Path, **overrides) -> Path:
    config = {
        "model_name_or_path": str(model_dir),
        "dataset_name": str(data),
        "dataset_train_split": "train",
        "mode": "poexft",
        "num_candidates": NUM_CANDIDATES,
        "max_possibility": 9,
        "ul_weight": 0.5,
        "output_dir": str(tmp_path / "out"),
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "learning_rate": 1.0e-3,
        "max_length": 128,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "bf16": False,
        "use_cpu": True,
        "disable_tqdm": True,
        "seed": 0,
        **overrides,
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def train_from_config(config: Path, *extra: str) -> PossibilityTrainer:
    """recipes/sft_peft.py's main(), returning the trainer."""
    script_args, training_args, model_args = make_parser().parse_args_and_config(
        args=["--config", str(config), *extra]
    )
    return run_training(script_args, training_args, model_args)


def step_logs(trainer) -> list[dict]:
    return [h for h in trainer.state.log_history if "loss" in h and "step" in h]


def assert_nothing_written(out: Path) -> None:
    assert not out.exists() or not any(out.iterdir()), f"{out} was written to: {sorted(os.listdir(out))}"


def generate_once(
    model, tokenizer, template: PossibilityTemplate, record: dict, k: int | None
) -> torch.Tensor:
    prompt = template.prompt_text(tokenizer, record, k)
    enc = tokenizer(prompt, add_special_tokens=False, return_tensors="pt", return_token_type_ids=False)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    return out[:, enc["input_ids"].shape[1] :]


# ----- the three modes, same recipe path -------------------------------------------------------------------
ROWS_PER_CONTEXT = {"poexft": NUM_CANDIDATES * NUM_CANDIDATES, "otm": NUM_CANDIDATES, "oto": 1}


@pytest.mark.parametrize("mode", ["poexft", "otm", "oto"])
def test_modes_train_log_save_and_reload(mode, tmp_path, tiny_dir, data_file, records):
    trainer = train_from_config(write_config(tmp_path, tiny_dir, data_file, mode=mode))
    out = tmp_path / "out"

    # rows per context: N positives + N(N-1) negatives / N positives / one positive
    assert [len(item["input_ids"]) for item in trainer.train_dataset] == [
        ROWS_PER_CONTEXT[mode]
    ] * NUM_RECORDS
    n_negative = sum(sum(item["negative"]) for item in trainer.train_dataset)
    assert n_negative == (NUM_RECORDS * NUM_CANDIDATES * (NUM_CANDIDATES - 1) if mode == "poexft" else 0)

    logs = step_logs(trainer)
    assert [h["step"] for h in logs] == [1, 2]
    for h in logs:
        assert math.isfinite(h["mle_loss"]) and h["mle_loss"] > 0
        assert ("ul_loss" in h) == (mode == "poexft")
        ul = h.get("ul_loss", 0.0)
        if mode == "poexft":
            assert math.isfinite(ul) and ul > 0
        assert h["loss"] == pytest.approx(h["mle_loss"] + 0.5 * ul, rel=1e-5)

    # the template travels with the weights
    assert (out / TEMPLATE_FILENAME).is_file()
    assert PossibilityTemplate.from_pretrained(out) == trainer.args.template()
    assert trained_mode(out) == mode  # what picks the default decoder (bias test) and fills the model card

    # weights moved, and what was saved is what was trained
    before = load_file(str(tiny_dir / "model.safetensors"))
    after = load_file(str(out / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)
    model, tokenizer = load_model_and_tokenizer(str(out))
    trained = trainer.model.state_dict()
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, trained[name].cpu(), rtol=0, atol=0)

    template = PossibilityTemplate.from_pretrained(out)
    new = generate_once(model.eval(), tokenizer, template, records[0], 3 if mode == "poexft" else None)
    assert new.shape == (1, 4)

    # the template file records the mode it was trained in: the default decoder needs no pickled training args
    assert json.loads((out / TEMPLATE_FILENAME).read_text())[TRAINED_KEY] == {"mode": mode}
    for name in ("training_args.bin", "training_config.json", "train_summary.json"):
        (out / name).unlink(missing_ok=True)
    assert default_decoder(out) == ("possibilities" if mode == "poexft" else "sampling")


def test_lora_all_linear_trains_and_saves_loadable_adapter(tmp_path, tiny_dir, data_file, records):
    trainer = train_from_config(
        write_config(tmp_path, tiny_dir, data_file, use_peft=True, lora_r=4, lora_alpha=8)
    )
    out = tmp_path / "out"

    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert not (out / "model.safetensors").exists()
    assert PossibilityTemplate.from_pretrained(out) == trainer.args.template()
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert adapter_config["r"] == 4
    targets = adapter_config["target_modules"]
    targets = {t.rsplit(".", 1)[-1] for t in (targets if isinstance(targets, list) else [targets])}
    assert targets == LLAMA_LINEAR  # all-linear: every projection, never lm_head

    from peft import PeftModel

    model, tokenizer = load_model_and_tokenizer(str(out))
    assert isinstance(model, PeftModel)
    lora_b = {n: p for n, p in model.named_parameters() if "lora_B" in n}
    assert len(lora_b) == 2 * len(LLAMA_LINEAR)  # two layers
    assert all(p.abs().sum() > 0 for p in lora_b.values())  # B starts at zero: these were trained
    # the base weights stay those of the base folder
    base = load_file(str(tiny_dir / "model.safetensors"))
    loaded_base = model.get_base_model().state_dict()
    key = "model.layers.0.self_attn.q_proj.weight"
    lora_key = "model.layers.0.self_attn.q_proj.base_layer.weight"
    torch.testing.assert_close(loaded_base[lora_key], base[key], rtol=0, atol=0)

    template = PossibilityTemplate.from_pretrained(out)
    assert generate_once(model.eval(), tokenizer, template, records[0], 2).shape == (1, 4)


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the no-CUDA error")
def test_load_in_4bit_without_cuda_fails_before_training(tmp_path, tiny_dir, data_file):
    config = write_config(tmp_path, tiny_dir, data_file, load_in_4bit=True, use_peft=True)
    with pytest.raises(ModelLoadError, match="CUDA"):
        train_from_config(config)
    assert_nothing_written(tmp_path / "out")


# ----- bad input: a clear error before training, nothing written ---------------------------------------------
def _too_many_candidates(records) -> dict:
    most = max(len(r["candidates"]) for r in records)
    return {"num_candidates": most + 1, "max_possibility": most + 5}


BAD_INPUTS = {
    "unknown-mode": (lambda r: {"mode": "dpo"}, ValueError, "unknown mode 'dpo'"),
    "too-many-candidates": (_too_many_candidates, DataValidationError, "fewer than num_candidates"),
    "max-possibility-below-candidates": (
        lambda r: {"num_candidates": 3, "max_possibility": 2},
        ValueError,
        r"max_possibility \(2\) must be >= num",
    ),
    "negative-ul-weight": (lambda r: {"ul_weight": -0.5}, ValueError, "ul_weight must be >= 0"),
    "sentence-without-k": (
        lambda r: {"possibility_sentence": "Give the response for this possibility."},
        TemplateError,
        r"\{k\}",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_before_training_and_writes_nothing(case, tmp_path, tiny_dir, data_file, records):
    overrides, error, message = BAD_INPUTS[case]
    config = write_config(tmp_path, tiny_dir, data_file, **overrides(records))
    with pytest.raises(error, match=message):
        train_from_config(config)
    assert_nothing_written(tmp_path / "out")


def _no_chat_template_copy(tiny_dir: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(tiny_dir, target)
    (target / "chat_template.jinja").unlink(missing_ok=True)
    config_path = target / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("chat_template", None)
    config_path.write_text(json.dumps(config))
    return target


HAS_FALLBACK_FIELD = "chat_template_fallback" in {f.name for f in dataclasses.fields(PossibilityConfig)}


@pytest.mark.skipif(not HAS_FALLBACK_FIELD, reason="proposed field PossibilityConfig.chat_template_fallback")
def test_no_chat_template_and_no_fallback_fails_before_training(tmp_path, tiny_dir, data_file):
    model_dir = _no_chat_template_copy(tiny_dir, tmp_path / "no-template")
    config = write_config(tmp_path, model_dir, data_file, chat_template_fallback=False)
    with pytest.raises(TemplateError, match="chat template"):
        train_from_config(config)
    assert_nothing_written(tmp_path / "out")


# ----- the loss value, computed independently from full logits -----------------------------------------------
# Tolerances. Both paths run the same float32 forward; they differ only in how label-position log-probs are
# reduced (trainer: float32 projection of label positions + float32 log-sum-exp; reference: float64 log-softmax of
# the full float32 logits). With u = 2**-24 ~ 6e-8, a float32 log-sum-exp over V = 30522 logits of size up to 16
# (the bias below) has a worst-case error ~ log2(V) * 16 * u ~ 1.5e-5 nats per token, and summation order (SIMD
# width, blocking) differs between CPUs and releases: seen 1e-7 relative on one machine, 1.06e-5 on another. The
# MLE mean (~14 nats) thus meets 1e-4 relative with margin. The UL term -log(1-p) amplifies a log-prob error by
# p / ((1-p) * -log(1-p)) <= 1.3 for the p <= 0.4 this set-up makes, but is ~0.04 nats, so the same absolute
# error is ~4e-4 relative to it: checked on its own at 1e-3. A wrong UL term (e.g. a missed token) is off by >1%.
LOSS_RTOL = 1e-4
UL_RTOL = 1e-3


def independent_loss(model, batch, ul_weight):
    """MLE over positives' label tokens + ul_weight * mean -log(1 - p) over negatives', from a full softmax."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
    targets = batch["labels"][:, 1:]
    labelled = targets != IGNORE
    token_logp = logp.gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    negative = batch["negative"][:, None]
    pos, neg = labelled & ~negative, labelled & negative
    mle = -token_logp[pos].mean()
    p = token_logp[neg].exp().clamp(max=1 - PROB_CLAMP)
    ul = -torch.log1p(-p).mean()
    return mle + ul_weight * ul, mle, ul, p


def test_compute_loss_equals_independent_mle_plus_unlikelihood(tmp_path, records):
    model, tokenizer = tiny_model_and_tokenizer("llama", seed=1)
    ul_weight = 2.0
    args = PossibilityConfig(
        output_dir=str(tmp_path / "out"),
        num_candidates=NUM_CANDIDATES,
        ul_weight=ul_weight,
        max_length=128,
        bf16=False,
        use_cpu=True,
        report_to=[],
        seed=0,
        shared_prefix=False,  # full rows: independent_loss runs them as they are (test_shared_prefix.py: both paths)
    )
    trainer = PossibilityTrainer(model, args=args, train_dataset=records[:2], processing_class=tokenizer)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    assert batch["negative"].sum() == 2 * NUM_CANDIDATES * (NUM_CANDIDATES - 1)

    # A random model gives every token p ~ 1/vocab, where -log(1-p) ~ p. Give the LM head a bias that favours
    # the negatives' label tokens so their p spreads over (0, 1) and the unlikelihood term is non-trivial.
    neg_targets = batch["labels"][batch["negative"]]
    neg_ids = neg_targets[neg_targets != IGNORE].unique()
    head = model.get_output_embeddings()
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    biased.weight = head.weight  # stays tied to the input embedding
    with torch.no_grad():
        biased.bias.zero_()
        biased.bias[neg_ids] = torch.linspace(6.0, 16.0, len(neg_ids))
    model.set_output_embeddings(biased)
    model.train()

    expected, mle, ul, p = independent_loss(model, batch, ul_weight)
    assert ((p > 0.05) & (p < 0.95)).sum() >= 5, "test set-up: unlikelihood term should see mid-range p"
    # the UL term is small next to the MLE term, so it is checked on its own (ul_loss below) at UL_RTOL
    assert ul > 0.01, "test set-up: unlikelihood term should be non-trivial"

    expected.backward()
    expected_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()

    loss = trainer.compute_loss(model, dict(batch))
    torch.testing.assert_close(loss.double(), expected, rtol=LOSS_RTOL, atol=0)
    metrics = trainer._metrics["train"]
    assert metrics["mle_loss"][-1] == pytest.approx(mle.item(), rel=LOSS_RTOL)
    assert metrics["ul_loss"][-1] == pytest.approx(ul.item(), rel=UL_RTOL)

    loss.backward()
    for name, param in model.named_parameters():
        scale = expected_grads[name].abs().max().item()
        torch.testing.assert_close(param.grad, expected_grads[name], rtol=1e-4, atol=1e-5 * scale, msg=name)


# ----- gradient accumulation is exact ------------------------------------------------------------------------
def test_gradient_accumulation_gives_the_same_update(tmp_path, tiny_dir, data_file):
    """One SGD step (lr=1, no clipping): update = -gradient, so any normalisation error shows."""
    common = dict(
        max_steps=1, optim="sgd", learning_rate=1.0, lr_scheduler_type="constant", max_grad_norm=0.0
    )
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = train_from_config(
        write_config(tmp_path / "a", tiny_dir, data_file, per_device_train_batch_size=4, **common)
    )
    two = train_from_config(
        write_config(
            tmp_path / "b",
            tiny_dir,
            data_file,
            per_device_train_batch_size=2,
            gradient_accumulation_steps=2,
            **common,
        )
    )
    before = load_file(str(tiny_dir / "model.safetensors"))
    w1 = load_file(str(tmp_path / "a" / "out" / "model.safetensors"))
    w2 = load_file(str(tmp_path / "b" / "out" / "model.safetensors"))
    largest = max((before[k] - w1[k]).abs().max().item() for k in before)
    assert largest > 1e-2  # a factor-of-two normalisation error would be far above the tolerance
    for k in before:
        torch.testing.assert_close(w2[k], w1[k], rtol=0, atol=1e-5, msg=k)
    # both see the 4 contexts in the step; the logged loss is the same whole-step loss
    assert step_logs(one)[0]["num_tokens"] == step_logs(two)[0]["num_tokens"]
    assert step_logs(two)[0]["loss"] == pytest.approx(step_logs(one)[0]["loss"], rel=1e-5)


# ----- push_to_hub goes through peft_diversity.hub ------------------------------------------------------------
class RecordingApi:
    def __init__(self, *args, **kwargs):
        self.calls = []
        RecordingApi.last = self

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs["repo_id"], sorted(os.listdir(kwargs["folder_path"]))))
        return "https://example.invalid/commit"


def test_push_to_hub_uses_the_hub_module_after_training(tmp_path, tiny_dir, data_file, monkeypatch):
    import huggingface_hub

    monkeypatch.setenv("HF_TOKEN", "hf_test_token_not_real")
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    config = write_config(tmp_path, tiny_dir, data_file, push_to_hub=True, hub_model_id="someone/tiny-poexft")
    train_from_config(config)
    calls = RecordingApi.last.calls
    assert calls[0][0] == "create_repo" and calls[0][1] == "someone/tiny-poexft" and calls[0][2]["private"]
    assert calls[1][0] == "upload_folder" and {"README.md", "possibility_config.json"} <= set(calls[1][2])


def test_trl_card_of_a_checkpoint_names_poexft_and_its_paper(tmp_path, tiny_dir, data_file):
    """SFTTrainer writes a Hub card beside each checkpoint (create_model_card): it must say PoExFT trained the
    model, tag it, and cite the paper, not describe plain SFT."""
    from huggingface_hub import ModelCard

    config = write_config(tmp_path, tiny_dir, data_file, max_steps=1, save_strategy="steps", save_steps=1)
    trainer = train_from_config(config)
    card = ModelCard.load(tmp_path / "out" / "README.md")
    assert {"poexft", "peft-diversity", "trl"} <= set(card.data.tags)
    assert (
        "trained with PoExFT, a method introduced in [Improving Linguistic Diversity of Large Language Models "
        "with Possibility Exploration Fine-Tuning](https://huggingface.co/papers/2412.03343)"
    ) in card.text
    assert "Cite PoExFT as:" in card.text and "Long Mai and Julie Carson-Berndsen" in card.text
    assert "poexft" in trainer.model.model_tags  # what model.push_to_hub puts in the card's tags


def test_trl_card_of_a_baseline_says_which_baseline(tmp_path, tiny_dir, data_file):
    """An OTM model is trained by the same recipe but is not PoExFT: its card and tags must not claim it is."""
    from huggingface_hub import ModelCard

    config = write_config(
        tmp_path, tiny_dir, data_file, max_steps=1, save_strategy="steps", save_steps=1, mode="otm"
    )
    trainer = train_from_config(config)
    card = ModelCard.load(tmp_path / "out" / "README.md")
    assert "otmft" in card.data.tags and "poexft" not in card.data.tags
    assert "trained with OTMFT (PoExFT's one-to-many baseline)" in card.text
    assert "poexft" not in trainer.model.model_tags


@pytest.mark.parametrize("repo_id", ["not a repo id", ""])
def test_push_to_hub_with_a_bad_repo_id_fails_before_training(
    tmp_path, tiny_dir, data_file, monkeypatch, repo_id
):
    monkeypatch.setenv("HF_TOKEN", "hf_test_token_not_real")
    config = write_config(tmp_path, tiny_dir, data_file, push_to_hub=True, hub_model_id=repo_id)
    with pytest.raises(ValueError):
        train_from_config(config)
    assert_nothing_written(tmp_path / "out")


# ----- resume ----------------------------------------------------------------------------------------------
def _checkpoint(folder: Path, complete: bool = True) -> Path:
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    save_file({"w": torch.zeros(4)}, folder / "model.safetensors")
    if complete:
        (folder / "trainer_state.json").write_text("{}")
    return folder


def test_resume_last_picks_the_newest_complete_checkpoint(tmp_path, caplog):
    import logging

    from peft_diversity.trainer.cli import _resume_path

    out = tmp_path / "out"
    _checkpoint(out / "checkpoint-2")
    _checkpoint(out / "checkpoint-10")
    _checkpoint(out / "checkpoint-12", complete=False)  # killed during its save
    (out / "checkpoint-11").mkdir()
    (out / "checkpoint-11" / "trainer_state.json").write_text('{"truncat')
    for value in ("last", "true", "True"):
        args = PossibilityConfig(output_dir=str(out), resume_from_checkpoint=value, report_to=[])
        with caplog.at_level(logging.WARNING):
            assert _resume_path(args) == str(out / "checkpoint-10")
    assert "skipping" in caplog.text and "checkpoint-12" in caplog.text and "resuming from" in caplog.text


def test_resume_last_skips_a_checkpoint_whose_adapter_is_cut_short(
    tmp_path, tiny_dir, data_file, caplog, monkeypatch
):
    """A checkpoint with its trainer_state.json but a truncated adapter_model.safetensors (a damaged copy, a full
    disk) is skipped with one line saying why; training resumes from the newest one that loads."""
    import logging

    config = write_config(
        tmp_path,
        tiny_dir,
        data_file,
        use_peft=True,
        lora_r=4,
        lora_alpha=8,
        max_steps=4,
        save_strategy="steps",
        save_steps=2,
        save_total_limit=3,
    )
    train_from_config(config)
    out = tmp_path / "out"
    weights = out / "checkpoint-4" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    steps_run, original = [], PossibilityTrainer.training_step

    def counted(self, *args, **kwargs):
        steps_run.append(self.state.global_step)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PossibilityTrainer, "training_step", counted)
    with caplog.at_level(logging.WARNING):
        trainer = train_from_config(config, "--resume_from_checkpoint", "last")
    skipped = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(skipped) == 1 and "checkpoint-4: adapter_model.safetensors is cut short" in skipped[0], skipped
    assert f"resuming from {out / 'checkpoint-2'}" in caplog.text
    assert steps_run == [2, 3]  # only the steps after checkpoint-2 ran again
    assert [h["step"] for h in step_logs(trainer)] == [1, 2, 3, 4]
    load_file(out / "adapter_model.safetensors")  # the finished model's adapter is whole


def test_resume_from_nothing_or_a_half_checkpoint_fails_before_the_model_loads(
    tmp_path, tiny_dir, data_file, monkeypatch
):
    from peft_diversity.errors import TrainConfigError

    monkeypatch.setattr(
        "peft_diversity.trainer.cli.load_model_and_tokenizer",
        lambda *a, **k: pytest.fail("model loaded before the resume check"),
    )
    _checkpoint(tmp_path / "out" / "checkpoint-3", complete=False)
    config = write_config(tmp_path, tiny_dir, data_file)
    with pytest.raises(TrainConfigError, match="no complete checkpoint"):
        train_from_config(config, "--resume_from_checkpoint", "last")
    with pytest.raises(TrainConfigError, match="no trainer_state.json"):
        train_from_config(config, "--resume_from_checkpoint", str(tmp_path / "out" / "checkpoint-3"))


def test_train_help_documents_resume_shortcuts(capsys):
    from peft_diversity.cli import main

    assert main(["train", "--help"]) == 0
    assert "`last` / `true`" in " ".join(capsys.readouterr().out.split())


# ----- bad settings: one line, exit 2, before the model loads or the output folder is made -----------------------
def _cli_train(config: Path, *extra: str) -> tuple[int, str]:
    import contextlib
    import io

    from peft_diversity.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["train", "--config", str(config), *extra])
    return code, err.getvalue()


def _no_model_load(monkeypatch):
    monkeypatch.setattr(
        "peft_diversity.trainer.cli.load_model_and_tokenizer",
        lambda *a, **k: pytest.fail("the model loaded before the settings were checked"),
    )


@pytest.mark.parametrize(
    ("overrides", "extra", "message"),
    [
        ({"ul_weight": -1}, (), "ul_weight must be >= 0"),
        ({"num_candidates": 3, "max_possibility": 2}, (), r"max_possibility \(2\) must be >= num_candidates"),
        ({"mode": "dpo"}, (), "unknown mode 'dpo'"),
        ({"ul_wieght": 0.3}, (), r"unknown key\(s\) ul_wieght \(misspelled"),
        ({"max_length": 100_000}, (), "beyond .* window of 2048 tokens"),
        ({}, ("--resume_from_checkpoint", "last"), "no complete checkpoint"),
        ({"packing": True}, (), "packing=True is not supported"),
        ({}, ("--dataset_config", "en"), "dataset_config='en' is not supported"),
        ({"dataset_test_split": "validation"}, (), "dataset_test_split='validation' is not supported"),
        ({}, ("--completion_only_loss", "false"), "completion_only_loss=False is not supported"),
        ({"dataset_streaming": True}, (), "dataset_streaming=True is not supported"),
        ({"loss_type": "dft"}, (), "loss_type='dft' is not supported .*MLE \\+ unlikelihood"),
        ({}, ("--truncation_mode", "keep_end"), "truncation_mode='keep_end' is not supported .*max_length"),
        ({"use_liger_kernel": True}, (), "use_liger_kernel=True is not supported"),
        ({"chat_template_path": "other.jinja"}, (), "chat_template_path='other.jinja' is not supported"),
        ({"model_init_kwargs": {"revision": "v1"}}, (), "model_init_kwargs=.* is not supported"),
        ({"bnb_4bit_quant_type": "fp4"}, (), "bnb_4bit_quant_type='fp4' is not supported"),
        ({"gradient_checkpointing": True, "activation_checkpointing": False}, (), "disagree"),
    ],
)
def test_bad_settings_are_one_line_before_the_model_loads(
    overrides, extra, message, tmp_path, tiny_dir, data_file, monkeypatch
):
    import re

    _no_model_load(monkeypatch)
    code, err = _cli_train(write_config(tmp_path, tiny_dir, data_file, **overrides), *extra)
    line = [line for line in err.splitlines() if line.startswith("peft-diversity train:")]
    assert code == 2 and "Traceback" not in err and len(line) == 1 and re.search(message, line[0]), err
    assert_nothing_written(tmp_path / "out")


def test_empty_data_or_recipe_is_one_line(tmp_path, tiny_dir, monkeypatch):
    _no_model_load(monkeypatch)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, err = _cli_train(write_config(tmp_path, tiny_dir, empty))
    assert code == 2 and "Traceback" not in err and "no records" in err
    broken = tmp_path / "broken.yaml"
    broken.write_text("mode: [poexft\nul_weight: 1\n")
    code, err = _cli_train(broken)
    assert code == 2 and "not valid YAML" in err and "Traceback" not in err
    code, err = _cli_train(tmp_path / "missing.yaml")
    assert code == 2 and "not found" in err
    assert_nothing_written(tmp_path / "out")


def test_hub_token_is_never_written_to_disk(tmp_path, tiny_dir, data_file):
    secret = "hf_doNotWriteMe1234567890"
    config = write_config(
        tmp_path, tiny_dir, data_file, save_strategy="steps", save_steps=1, hub_token=secret
    )
    train_from_config(config)
    out = tmp_path / "out"
    assert (out / "training_args.bin").is_file() and (out / "checkpoint-1" / "training_args.bin").is_file()
    leaks = [p for p in out.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert leaks == []


# ----- TRL's settings: each one honoured, or refused in one line (never accepted and silently ignored) ----------
def test_every_unsupported_setting_is_a_field_with_an_accepted_default():
    from trl import ModelConfig, ScriptArguments

    from peft_diversity.trainer.config import UNSUPPORTED_SETTINGS

    owners = {"script": ScriptArguments, "train": PossibilityConfig, "model": ModelConfig}
    for setting in UNSUPPORTED_SETTINGS:
        fields = {f.name: f for f in dataclasses.fields(owners[setting.owner])}
        assert setting.name in fields, setting  # a field TRL renamed would never be checked again
        assert fields[setting.name].default == setting.accepted[0], setting


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("loss_type", "dft"),
        ("truncation_mode", "keep_end"),
        ("packing", True),
        ("packing_strategy", "wrapped"),
        ("eval_packing", True),
        ("padding_free", True),
        ("assistant_only_loss", True),
        ("completion_only_loss", False),
        ("dataset_text_field", "prompt"),
        ("dataset_num_proc", 2),
        ("shuffle_dataset", True),
        ("label_smoothing_factor", 0.1),
        ("router_aux_loss_coef", 0.01),
        ("use_liger_kernel", True),
        ("chat_template_path", "t.jinja"),
        ("pad_token", "<pad>"),
    ],
)
def test_python_api_refuses_settings_the_trainer_would_ignore(name, value, tmp_path, recwarn):
    from peft_diversity.errors import TrainConfigError

    with pytest.raises(TrainConfigError, match=f"^{name}=.* is not supported by PoExFT training"):
        PossibilityConfig(output_dir=str(tmp_path), **{name: value})
    # refused before TRL's own deprecation warning for the same setting (keep_end, pad_token)
    assert not [w for w in recwarn if issubclass(w.category, FutureWarning)]


def test_settings_only_the_train_command_ignores_stay_open_to_the_python_api(tmp_path):
    args = PossibilityConfig(
        output_dir=str(tmp_path),
        eval_strategy="steps",
        eval_steps=1,
        model_init_kwargs={"revision": "main"},
        completion_only_loss=True,
    )
    assert args.eval_strategy.value == "steps" and args.model_init_kwargs == {"revision": "main"}


def _train_cli(*argv: str, env: dict | None = None, cwd: Path | None = None):
    """`python -m peft_diversity.cli train ...` as a user runs it (warnings left on)."""
    import subprocess
    import sys

    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "PYTHONPATH": str(Path(__file__).parents[1]),
        **(env or {}),
    }
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run(
        [sys.executable, "-m", "peft_diversity.cli", "train", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        pytest.param(
            ("--load_in_8bit", "true"),
            "8-bit loading needs a CUDA GPU",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="refused only without CUDA"),
        ),
        (("--model_revision", "v1"), "model_revision='v1' names a Hub revision, but .* is a local folder"),
        (
            ("--eos_token", "[NOT-A-TOKEN]"),
            r"eos_token='\[NOT-A-TOKEN\]' is not in the tokenizer's vocabulary",
        ),
    ],
)
def test_named_training_flags_are_refused_in_one_line(  # loss_type, truncation_mode: in the in-process list above
    flags, message, tmp_path, tiny_dir, data_file
):
    import re

    proc = _train_cli("--config", str(write_config(tmp_path, tiny_dir, data_file, use_cpu=False)), *flags)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("peft-diversity train:")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
    assert re.search(message, lines[0]), lines[0]
    assert_nothing_written(tmp_path / "out")


def _hub_cache_with_two_revisions(root: Path) -> tuple[Path, dict[str, Path]]:
    """An offline Hub cache holding repo `local/tiny` at `main` and at tag `v1`, with different weights."""
    repo = root / "models--local--tiny"
    snapshots = {}
    for i, ref in enumerate(("main", "v1")):
        sha = f"{i + 1:040x}"
        model, tokenizer = tiny_model_and_tokenizer("llama", seed=i)
        model.save_pretrained(repo / "snapshots" / sha)
        tokenizer.save_pretrained(repo / "snapshots" / sha)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(sha)
        snapshots[ref] = repo / "snapshots" / sha
    return root, snapshots


def test_model_revision_reaches_the_loader(tmp_path, data_file):
    cache, snapshots = _hub_cache_with_two_revisions(tmp_path / "hub")
    # learning_rate 0: the saved weights are exactly the ones loaded, so they tell which revision was used
    config = write_config(
        tmp_path,
        Path("local/tiny"),
        data_file,
        learning_rate=0.0,
        max_steps=1,
        model_name_or_path="local/tiny",
    )
    proc = _train_cli("--config", str(config), "--model_revision", "v1", env={"HF_HUB_CACHE": str(cache)})
    assert proc.returncode == 0, proc.stderr
    saved = load_file(str(tmp_path / "out" / "model.safetensors"))
    wanted, other = (load_file(str(snapshots[ref] / "model.safetensors")) for ref in ("v1", "main"))
    assert all(torch.equal(saved[k], wanted[k]) for k in wanted)
    assert not all(torch.equal(saved[k], other[k]) for k in other)


def _positive_label_ends(trainer) -> set[int]:
    """The last labelled token of every positive row the trainer built."""
    ends = set()
    for item in trainer.train_dataset:
        for labels, negative in zip(item["labels"], item["negative"], strict=True):
            if not negative:
                ends.add([t for t in labels if t != IGNORE][-1])
    return ends


def test_eos_token_ends_the_rows_and_is_the_saved_tokenizers_eos(tmp_path, tiny_dir, data_file):
    from transformers import AutoTokenizer

    trainer = train_from_config(
        write_config(tmp_path, tiny_dir, data_file, eos_token="[unused1]", max_steps=1)
    )
    saved = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert saved.eos_token == "[unused1]"
    assert _positive_label_ends(trainer) == {saved.eos_token_id}  # the rows teach the model to stop at it
    config = json.loads((tmp_path / "out" / "generation_config.json").read_text())
    assert saved.eos_token_id in config["eos_token_id"]  # and generation stops there


def test_eos_token_a_fixed_chat_template_cannot_end_with_is_refused(tmp_path, arch_model, records):
    from peft_diversity.errors import TrainConfigError

    model, tokenizer = arch_model(
        "llama"
    )  # Llama 3's template ends the assistant turn with <|eot_id|>, always
    args = PossibilityConfig(
        output_dir=str(tmp_path),
        eos_token="<|end_of_text|>",
        bf16=False,
        use_cpu=True,
        num_candidates=NUM_CANDIDATES,
        report_to=[],
    )
    with pytest.raises(
        TrainConfigError, match=r"eos_token='<\|end_of_text\|>': the tokenizer's chat template ends "
    ):
        PossibilityTrainer(model, args=args, train_dataset=records, processing_class=tokenizer)


# what a user sees on every run: none of these (each came from our code or our defaults, not from the user's input)
NOISE = (
    "FutureWarning",
    "DeprecationWarning",
    "UserWarning",
    "is deprecated",
    "pin_memory",
    "past_key_values",
    "fewer than None",
)


def test_a_tiny_train_and_generate_print_no_warnings(tmp_path, tiny_dir, data_file):
    import subprocess
    import sys

    # the defaults a user gets: activation checkpointing on, no use_cpu (so pin_memory is ours to set on CPU); LoRA
    config = write_config(tmp_path, tiny_dir, data_file, use_cpu=False, max_steps=1, use_peft=True, lora_r=4)
    train = _train_cli("--config", str(config))
    assert train.returncode == 0, train.stderr
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    env.pop("PYTHONWARNINGS", None)
    generate = subprocess.run(
        [
            sys.executable,
            "-m",
            "peft_diversity.cli",
            "generate",
            "--model-name-or-path",
            str(tmp_path / "out"),
            "--context",
            "Ann: hi\nBen: hello",
            "--num-responses",
            "3",
            "--max-new-tokens",
            "4",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert generate.returncode == 0, generate.stderr
    assert "shared_prefix path" in generate.stderr  # the cached-prefix path, where the cache is handed over
    for stderr in (train.stderr, generate.stderr):
        assert not [line for line in stderr.splitlines() if any(noise in line for noise in NOISE)], stderr


@pytest.mark.parametrize(
    "recipe",
    sorted(
        str(p.relative_to(Path(__file__).parents[1]))
        for p in (Path(__file__).parents[1] / "recipes").glob("*/*/config_*.yaml")
    ),
)
def test_every_training_recipe_parses_without_warnings(recipe, recwarn):
    # bf16: the GPU recipes ask for it, which this parse on a CPU-only machine cannot check
    _, args, _ = make_parser().parse_args_and_config(
        args=["--config", str(Path(__file__).parents[1] / recipe), "--bf16", "false"]
    )
    assert args.activation_checkpointing in (True, False)
    assert not [
        str(w.message) for w in recwarn if issubclass(w.category, (FutureWarning, DeprecationWarning))
    ]
