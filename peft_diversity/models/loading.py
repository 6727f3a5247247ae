"""Load a causal LM + tokenizer by Hub id, local folder, adapter folder or `builtin:<name>`."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from peft_diversity.errors import ModelLoadError, PeftDiversityError
from peft_diversity.models.builtin import BUILTIN_PREFIX, resolve_model_path
from peft_diversity.templates import ensure_chat_template

logger = logging.getLogger(__name__)


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
    load_in_4bit: bool = False,
    load_in_8bit: bool = False,
    revision: str | None = None,
    dtype: str | torch.dtype = "auto",
    trust_remote_code: bool = False,
    device_map: str | dict | None = None,
    chat_template_fallback: bool = True,
    **model_kwargs: Any,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM + tokenizer by Hub id, local folder or `builtin:<name>`.

    `load_in_4bit` (QLoRA-style NF4) or `load_in_8bit` asks for quantised weights, which needs bitsandbytes and
    CUDA. `revision` (a branch, tag or commit of a Hub repo) applies to the tokenizer and the model, or to the adapter
    of an adapter repo. A folder holding a peft adapter (`adapter_config.json`) is loaded as base + adapter.
    """
    check_dtype(dtype)
    path = resolve_model_path(name_or_path)
    check_model_folder(name_or_path, path)
    if revision not in (None, "main") and Path(path).exists():
        raise ModelLoadError(
            f"model_revision={revision!r} names a Hub revision, but {name_or_path} is a local "
            "folder: check out that revision there, or drop model_revision"
        )
    revision = None if Path(path).exists() else revision
    if load_in_4bit and load_in_8bit:
        raise ModelLoadError("load_in_4bit and load_in_8bit are both set: choose one")
    try:
        tokenizer = load_tokenizer(
            name_or_path,
            trust_remote_code=trust_remote_code,
            chat_template_fallback=chat_template_fallback,
            revision=revision,
        )
    except (OSError, ValueError) as err:
        if isinstance(err, PeftDiversityError):
            raise
        raise ModelLoadError(f"cannot load a tokenizer from {name_or_path!r}: {_first_line(err)}") from err
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": trust_remote_code, **model_kwargs}
    if device_map is not None:
        kwargs["device_map"] = device_map
    if load_in_4bit or load_in_8bit:
        kwargs["quantization_config"] = quantization_config(4 if load_in_4bit else 8)
    try:
        if (Path(path) / "adapter_config.json").is_file():
            model = _load_adapter_model(path, kwargs)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, revision=revision, **kwargs)
    except (OSError, ValueError) as err:
        if isinstance(err, PeftDiversityError):
            raise
        raise ModelLoadError(f"cannot load the model {name_or_path!r}: {_first_line(err)}") from err
    if not (Path(path) / "adapter_config.json").is_file():
        if name_or_path.startswith(BUILTIN_PREFIX):
            # adapters trained on it then record the portable builtin name, not this machine's cache path
            model.config._name_or_path = name_or_path
            model.name_or_path = name_or_path
    model.peft_diversity_source = name_or_path if path == name_or_path else path
    return model, tokenizer


def check_model_folder(name_or_path: str, path: str) -> None:
    """A local path must be a model folder (config.json) or a peft adapter folder (adapter_config.json)."""
    folder = Path(path)
    if not folder.exists():
        if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
            raise ModelLoadError(f"{name_or_path}: no such model folder")
        return  # a Hub id
    if not folder.is_dir():
        raise ModelLoadError(f"{name_or_path} is a file, not a model folder or Hub id")
    if not (folder / "config.json").is_file() and not (folder / "adapter_config.json").is_file():
        checkpoints = sorted(p.name for p in folder.glob("checkpoint-*"))
        hint = (
            (
                f" (an unfinished training run? it holds {', '.join(checkpoints)}: resume it with "
                "--resume_from_checkpoint last, or pass a checkpoint folder)"
            )
            if checkpoints
            else ""
        )
        raise ModelLoadError(
            f"{name_or_path} is not a model folder: no config.json or adapter_config.json{hint}"
        )
    pickles = pickle_only_weights(folder)
    if pickles:
        raise ModelLoadError(pickle_weights_message(pickles[0]))


# transformers' and peft's pickled weights files (torch.save): loading one runs the pickle machinery
PICKLE_WEIGHTS_PATTERN = re.compile(r"^(pytorch_model|adapter_model)(-\d+-of-\d+)?\.bin$")


def pickle_only_weights(folder: str | Path) -> list[Path]:
    """The pickled weights files of `folder` when it holds no safetensors weights (else [])."""
    folder = Path(folder)
    if any(folder.glob("*.safetensors")):
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and PICKLE_WEIGHTS_PATTERN.match(p.name))


def pickle_weights_message(path: Path) -> str:
    """THE one line for a model whose only weights are a pickle (loading and pushing both refuse it)."""
    return (
        f"{path}: pickled weights; only safetensors weights are loaded or uploaded (a pickle can run code when "
        "read). Re-save the model with save_pretrained(), which writes model.safetensors"
    )


def check_dtype(dtype: str | torch.dtype) -> None:
    """`auto` or a torch dtype (object or name, e.g. "bfloat16"); a ModelLoadError naming the value otherwise."""
    if isinstance(dtype, torch.dtype) or dtype == "auto":
        return
    if not isinstance(dtype, str) or not isinstance(getattr(torch, dtype, None), torch.dtype):
        raise ModelLoadError(
            f"--dtype {dtype!r} is not a torch dtype: use auto, float32, bfloat16 or float16"
        )


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return " ".join(text.splitlines()[0].split()) if text else type(err).__name__


def _load_adapter_model(path: str, kwargs: dict[str, Any]):
    """Base model (resolving `builtin:` names) + the peft adapter in `path`."""
    from peft import PeftConfig, PeftModel

    base_name = PeftConfig.from_pretrained(path).base_model_name_or_path
    base_path = resolve_model_path(base_name)
    check_model_folder(base_name, base_path)
    base = AutoModelForCausalLM.from_pretrained(base_path, **kwargs)
    return PeftModel.from_pretrained(base, path)


def quantization_config(bits: int = 4):
    """bitsandbytes config: NF4 4-bit with double quantisation (QLoRA) or LLM.int8() 8-bit; a clear error where
    bitsandbytes or CUDA is missing."""
    if not torch.cuda.is_available():
        raise ModelLoadError(f"{bits}-bit loading needs a CUDA GPU; none is visible. Drop load_in_{bits}bit.")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as err:
        raise ModelLoadError(
            f"{bits}-bit loading needs bitsandbytes: pip install 'peft_diversity[qlora]'"
        ) from err
    from transformers import BitsAndBytesConfig

    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
