"""Models by id-or-path: loading (`load_model_and_tokenizer`), built-in offline models, tiny test models."""

from __future__ import annotations

from peft_diversity.models.builtin import (  # noqa: F401
    BUILTIN_PREFIX,
    BUILTIN_VERSION,
    DEFAULT_GENERATOR,
    cache_dir,
    resolve_model_path,
)
from peft_diversity.models.loading import (  # noqa: F401
    load_model_and_tokenizer,
    load_tokenizer,
    quantization_config,
)
from peft_diversity.models.minilm import (  # noqa: F401
    RESOURCES,
    WARMUP_FILE,
    apply_warmup_delta,
    minilm_decoder_tokenizer,
    minilm_source_dir,
)
from peft_diversity.models.tiny import (  # noqa: F401
    TINY_ARCHITECTURES,
    tiny_model_and_tokenizer,
)
