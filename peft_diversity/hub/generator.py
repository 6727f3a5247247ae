"""`PossibilityGenerator`: a PoExFT model from the Hub or a folder, ready to generate K responses."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from peft_diversity.hub.upload import validate_model_repo_id
from peft_diversity.templates import TEMPLATE_FILENAME, PossibilityTemplate

logger = logging.getLogger(__name__)


# ----- load back --------------------------------------------------------------------------------------------
class PossibilityGenerator:
    """A trained model + tokenizer + its template: `generate(context, num_responses)` → K diverse responses."""

    def __init__(self, model: Any, tokenizer: Any, template: PossibilityTemplate | None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.template = template

    @classmethod
    def from_pretrained(
        cls,
        repo_or_dir: str | os.PathLike,
        *,
        revision: str | None = None,
        token: str | bool | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        device_map: str | dict | None = None,
        dtype: str | Any = "auto",
        **load_kwargs: Any,
    ) -> PossibilityGenerator:
        """Load from a local folder, `builtin:<name>` or a Hub repo id, with `from_pretrained`'s download options.

        `revision` pins the repo's commit; `token`, `cache_dir` and `local_files_only` apply to the repo and to
        an adapter's base model; `device_map` and `dtype` go to the model. Other keywords go to
        `load_model_and_tokenizer` (e.g. `trust_remote_code`, `load_in_4bit`).
        """
        from peft_diversity.models.builtin import BUILTIN_PREFIX
        from peft_diversity.models.loading import load_model_and_tokenizer

        source = str(repo_or_dir)
        hub = {"token": token, "cache_dir": cache_dir, "local_files_only": local_files_only}
        if not source.startswith(BUILTIN_PREFIX) and not Path(source).is_dir():
            from huggingface_hub import snapshot_download

            source = snapshot_download(validate_model_repo_id(source), revision=revision, **hub)
        model, tokenizer = load_model_and_tokenizer(
            source, dtype=dtype, device_map=device_map, **{k: v for k, v in hub.items() if v}, **load_kwargs
        )
        template = None
        if (Path(source) / TEMPLATE_FILENAME).is_file():
            template = PossibilityTemplate.from_pretrained(source)
        return cls(model.eval(), tokenizer, template)

    def generate(self, context: Any, num_responses: int = 5, **settings: Any):
        """K possibilities for `context` in one batched generate call (see `generation.generate_possibilities`)."""
        from peft_diversity.generation.decoders import generate_possibilities

        if self.template is not None:
            settings.setdefault("template", self.template)
        return generate_possibilities(
            self.model, self.tokenizer, context, num_responses=num_responses, **settings
        )
