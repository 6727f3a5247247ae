"""peft_diversity: Possibility Exploration Fine-Tuning (PoExFT) on the Hugging Face stack.

The public API is imported lazily (as TRL does), so `import peft_diversity` stays cheap:

    from peft_diversity import PossibilityConfig, PossibilityTrainer      # training
    from peft_diversity import generate_possibilities, PossibilityGenerator  # K responses in one call
    from peft_diversity import semantic_diversity, self_bleu, distinct_n    # scoring
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

__version__ = "0.1.0"

# The paper this package implements, in TRL's `_paper` form: PossibilityTrainer's Hub card (TRL's create_model_card)
# and our model card cite it from here
PAPER = {
    "title": "Improving Linguistic Diversity of Large Language Models with Possibility Exploration Fine-Tuning",
    "id": "2412.03343",
    "citation": """@article{mai2024possibility,
  title   = {Improving Linguistic Diversity of Large Language Models with Possibility Exploration Fine-Tuning},
  author  = {Long Mai and Julie Carson-Berndsen},
  journal = {arXiv preprint arXiv:2412.03343},
  year    = {2024},
  url     = {https://arxiv.org/abs/2412.03343}
}""",
}

# peft 0.21 reads a model's `is_gradient_checkpointing`, which transformers 5 renamed (a FutureWarning each time a
# LoRA adapter is made or loaded); ours use the new name, the property is peft's to rename: only this one is hidden
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)

_SCORING = (
    "semantic_diversity",
    "self_bleu",
    "distinct_n",
    "distinct_k",
    "vendi_score",
    "coherence",
    "likelihood_coherence",
    "attribute_entropy",
    "score_predictions",
)
_LAZY = {
    "PossibilityConfig": "peft_diversity.trainer.config",
    "PossibilityTrainer": "peft_diversity.trainer.trainer",
    "PossibilityTemplate": "peft_diversity.templates",
    "generate_possibilities": "peft_diversity.generation.decoders",
    "generate_responses": "peft_diversity.generation.decoders",
    "Responses": "peft_diversity.generation.responses",
    "PossibilityGenerator": "peft_diversity.hub.generator",
    "load_model_and_tokenizer": "peft_diversity.models.loading",
    "load_one_to_many": "peft_diversity.data",
    "PeftDiversityError": "peft_diversity.errors",
    "load_metric": "peft_diversity.evaluate_hook",
    "METRIC_NAMES": "peft_diversity.evaluate_hook",
    **dict.fromkeys(_SCORING, "peft_diversity.scoring"),
}
__all__ = ["__version__", "PAPER", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'peft_diversity' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
