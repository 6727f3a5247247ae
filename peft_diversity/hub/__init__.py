"""Hub helpers: build the folder to upload (model + tokenizer + template + card), push it, load it back.

    save_for_hub("out/", "upload/", results="runs/demo/results.json")   # the exact folder that gets uploaded
    push_model("out/", "user/my-poexft-model")                          # private by default
    gen = PossibilityGenerator.from_pretrained("user/my-poexft-model")
    gen.generate("A: Any plans for the weekend?", num_responses=5).texts
"""

from __future__ import annotations

from peft_diversity.hub.dataset import (  # noqa: F401
    DATASET_CARD_TEMPLATE,
    STAT_KEYS,
    build_dataset_card,
    push_dataset,
    save_dataset_for_hub,
    split_names,
)
from peft_diversity.hub.generator import (  # noqa: F401
    PossibilityGenerator,
)
from peft_diversity.hub.model import (  # noqa: F401
    CARD_METRICS,
    EXCLUDED_FILES,
    EXCLUDED_PATTERNS,
    HYPERPARAMETERS,
    LORA_FIELDS,
    MODEL_CARD_TEMPLATE,
    MODES_DESCRIPTION,
    PAPER_ARXIV,
    REPO_ID_PATTERN,
    TOKENIZER_FILES,
    TRAINING_CONFIG_FILENAME,
    build_model_card,
    headline_row,
    load_results,
    load_training_config,
    push_model,
    resolve_token,
    save_for_hub,
    trained_mode,
    validate_model_repo_id,
)
from peft_diversity.hub.space import (  # noqa: F401
    metric_folder,
    push_metric,
)
