"""Hub helpers: build the folder to upload (model + tokenizer + template + card), push it, load it back.

save_for_hub("out/", "upload/", results="runs/demo/results.json")   # the exact folder that gets uploaded
push_model("out/", "user/my-poexft-model")                          # private by default
gen = PossibilityGenerator.from_pretrained("user/my-poexft-model")
gen.generate("A: Any plans for the weekend?", num_responses=5).texts
"""

from __future__ import annotations

from peft_diversity.hub.card import (  # noqa: F401
    CARD_METRICS,
    HYPERPARAMETERS,
    LORA_FIELDS,
    MODEL_CARD_TEMPLATE,
    MODES_DESCRIPTION,
    build_model_card,
    headline_row,
    load_results,
)
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
from peft_diversity.hub.metadata import (  # noqa: F401
    TRAINING_CONFIG_FILENAME,
    load_training_config,
    trained_mode,
)
from peft_diversity.hub.model import (  # noqa: F401
    EXCLUDED_FILES,
    EXCLUDED_PATTERNS,
    TOKENIZER_FILES,
    push_model,
    save_for_hub,
)
from peft_diversity.hub.space import (  # noqa: F401
    metric_folder,
    push_metric,
)
from peft_diversity.hub.upload import (  # noqa: F401
    REPO_ID_PATTERN,
    SAVE_MARKER,
    resolve_token,
    validate_model_repo_id,
)
