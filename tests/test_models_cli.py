"""Offline models (the default generator, tiny test models, loading) and the CLI surface."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from peft_diversity import cli
from peft_diversity.errors import ModelLoadError
from peft_diversity.generation.decoders import generate_sampling
from peft_diversity.models.builtin import DEFAULT_GENERATOR, resolve_model_path
from peft_diversity.models.loading import load_model_and_tokenizer
from peft_diversity.models.minilm import WARMUP_FILE
from peft_diversity.models.tiny import tiny_model_and_tokenizer

CONTEXT = [
    {"speaker": "Maya", "text": "I finally booked the trip to Lisbon!"},
    {"speaker": "Tom", "text": "Nice! When do you leave?"},
]


@pytest.fixture(scope="module")
def default_generator():
    return load_model_and_tokenizer(DEFAULT_GENERATOR)


def test_default_generator_is_minilm_as_a_decoder(default_generator):
    model, tokenizer = default_generator
    assert model.config.model_type == "bert-generation" and model.config.is_decoder
    assert 22_000_000 < sum(p.numel() for p in model.parameters()) < 23_500_000
    # LM head tied to the word embeddings
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert tokenizer.chat_template and tokenizer.eos_token == "[SEP]"
    assert model.name_or_path == DEFAULT_GENERATOR  # portable name recorded in adapters trained on it


def test_default_generator_replies_to_a_dialogue_offline(default_generator):
    model, tokenizer = default_generator
    out = generate_sampling(model, tokenizer, CONTEXT, num_responses=2, max_new_tokens=12, seed=0)
    assert len(out.texts) == 2 and all(isinstance(t, str) for t in out.texts)
    assert any(t.strip() for t in out.texts)
    assert all(0 < n <= 12 for n in out.num_tokens)


def test_builtin_is_materialised_once_and_reused():
    path = Path(resolve_model_path(DEFAULT_GENERATOR))
    before = (path / "model.safetensors").stat().st_mtime_ns
    assert Path(resolve_model_path(DEFAULT_GENERATOR)) == path
    assert (path / "model.safetensors").stat().st_mtime_ns == before
    stamp = json.loads((path / "builtin_stamp.json").read_text())["stamp"]
    assert (stamp == "no-warmup") == (not WARMUP_FILE.is_file())


def test_warmup_delta_changes_the_raw_decoder():
    if not WARMUP_FILE.is_file():
        pytest.skip("no shipped warm-up delta")
    raw, _ = load_model_and_tokenizer("builtin:minilm-decoder-raw")
    warm, _ = load_model_and_tokenizer(DEFAULT_GENERATOR)
    q_raw = raw.bert.encoder.layer[0].attention.self.query.weight
    q_warm = warm.bert.encoder.layer[0].attention.self.query.weight
    assert not torch.allclose(q_raw, q_warm)
    from safetensors import safe_open

    with safe_open(str(WARMUP_FILE), framework="pt") as handle:
        scale = float(handle.metadata().get("embedding_scale", 1.0))
    # word embeddings are not trained, only rescaled (input unchanged through the LayerNorm, logits sharper)
    torch.testing.assert_close(raw.get_input_embeddings().weight * scale, warm.get_input_embeddings().weight)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "mistral", "gemma"])
def test_tiny_models_build_and_generate(arch):
    model, tokenizer = tiny_model_and_tokenizer(arch)
    assert model.config.model_type == arch and model.config.vocab_size == len(tokenizer)
    ids = tokenizer("hello there", return_tensors="pt", add_special_tokens=False)
    out = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 3


def test_loading_errors_are_clear(tmp_path):
    with pytest.raises(ModelLoadError, match="unknown built-in"):
        resolve_model_path("builtin:gpt-17")
    with pytest.raises(ModelLoadError, match="unknown tiny architecture"):
        tiny_model_and_tokenizer("transformer-xl")
    if not torch.cuda.is_available():
        model, tokenizer = tiny_model_and_tokenizer("llama")
        model.save_pretrained(tmp_path)
        tokenizer.save_pretrained(tmp_path)
        with pytest.raises(ModelLoadError, match="CUDA"):
            load_model_and_tokenizer(str(tmp_path), load_in_4bit=True)


def test_saved_bert_tokenizer_does_not_emit_token_type_ids(tmp_path, default_generator):
    _, tokenizer = default_generator
    tokenizer.save_pretrained(tmp_path)
    model, _ = tiny_model_and_tokenizer("llama")
    model.save_pretrained(tmp_path)
    _, reloaded = load_model_and_tokenizer(str(tmp_path))
    assert "token_type_ids" not in reloaded("hi there")


@pytest.mark.parametrize("command", [[], *[[name] for name in cli.SUBCOMMANDS]])
def test_every_subcommand_has_help(command):
    result = subprocess.run(
        [sys.executable, "-m", "peft_diversity.cli", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()
    if command == ["train"]:
        assert "--num_candidates" in result.stdout and "--ul_weight" in result.stdout


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\nbase_model: builtin:minilm-decoder\ndataset: builtin:dialogue\n"
        "modes: [poexft, bogus]\nruns: [{model: base, decoder: sampling}]\n"
    )
    assert cli.main(["experiment", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "unknown modes ['bogus']" in err and "Traceback" not in err


def test_builtin_cache_folder_gets_umask_permissions(tmp_path):
    import os

    from peft_diversity.models.builtin import _materialise

    previous = os.umask(0o022)
    try:
        target = tmp_path / "cache" / "tiny-v1"
        _materialise(target, lambda: tiny_model_and_tokenizer("llama"), "stamp")
    finally:
        os.umask(previous)
    assert (
        target.stat().st_mode & 0o777 == 0o755
    )  # as mkdir under that umask: others may read the shared cache
    assert (target / "builtin_stamp.json").is_file() and not list(target.parent.glob(".tiny-v1*"))
