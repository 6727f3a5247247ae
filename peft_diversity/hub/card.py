"""THE model card of a trained folder: rendered from `model_cards/model_card.md` with its training settings,
adapter, template and (optionally) an experiment's results."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from peft_diversity import PAPER
from peft_diversity.assets import asset_path
from peft_diversity.errors import HubError
from peft_diversity.hub import metadata
from peft_diversity.hub.upload import is_hub_id
from peft_diversity.jsonl import read_json
from peft_diversity.templates import TEMPLATE_FILENAME, PossibilityTemplate
from peft_diversity.trainer.rows import MODE_CARDS

CARD_TEMPLATES = asset_path("model_cards")
MODEL_CARD_TEMPLATE = CARD_TEMPLATES / "model_card.md"
# (key in the experiment's scores dict, pretty name) reported as model-index eval results
CARD_METRICS = (
    ("semantic_diversity", "Semantic diversity"),
    ("self_bleu", "Self-BLEU"),
    ("distinct_2", "Distinct-2"),
    ("coherence_relevance", "Coherence (relevance)"),
)
# Training settings shown in the card (when present in the training config)
HYPERPARAMETERS = (
    "mode",
    "num_candidates",
    "max_possibility",
    "ul_weight",
    "max_negatives",
    "max_response_words",
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "lr_scheduler_type",
    "warmup_ratio",
    "weight_decay",
    "max_length",
    "seed",
    "bf16",
    "fp16",
)
LORA_FIELDS = ("r", "lora_alpha", "lora_dropout", "target_modules", "use_rslora", "use_dora")
MODES_DESCRIPTION = {
    "poexft": "PoExFT (Possibility Exploration Fine-Tuning): each response is tagged with a possibility number, "
    "mismatched (number, response) pairs are pushed down with an unlikelihood loss",
    "otm": "OTMFT (one-to-many fine-tuning): several responses per context, no possibility tag",
    "oto": "OTOFT (one-to-one fine-tuning): one response per context",
}


# ----- experiment results ----------------------------------------------------------------------------------
def load_results(results: str | os.PathLike | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Experiment rows ({"model", "decoder", "scores"}) from a results.json path or a list."""
    if results is None:
        return []
    if isinstance(results, (str, os.PathLike)):
        data = read_json(results, error=HubError, hint="--results: not a readable results.json")
        # experiment.py writes {"experiment": name, "results": [rows]}
        results = data.get("results", data.get("rows")) if isinstance(data, dict) else data
    if not isinstance(results, list) or not all(isinstance(r, dict) and "scores" in r for r in results):
        raise HubError(
            "results must be an experiment results.json (a list of rows with 'model' and 'scores')"
        )
    return list(results)


def headline_row(rows: list[dict[str, Any]], mode: str | None) -> dict[str, Any] | None:
    """The row describing this model: its mode with the possibilities decoder, else its mode's first row."""
    mode = mode or "poexft"
    mine = [r for r in rows if r.get("model") == mode]
    for row in mine:
        if row.get("decoder") == "possibilities":
            return row
    return mine[0] if mine else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


# ----- the card --------------------------------------------------------------------------------------
def build_model_card(
    folder: str | os.PathLike,
    *,
    results: str | os.PathLike | list[dict[str, Any]] | None = None,
    base_model: str | None = None,
    dataset: str | None = None,
    repo_id: str | None = None,
    training_config: dict[str, Any] | None = None,
    template_path: str | os.PathLike | None = None,
    merged: bool = False,
    license: str = "apache-2.0",
    language: list[str] | None = None,
):
    """A `huggingface_hub.ModelCard` for a trained folder, rendered from `model_cards/model_card.md`.

    `license` must match what the base model's licence allows (Apache-2.0 fits SmolLM2, Qwen2.5 and MiniLM;
    a Llama base needs its own); `language` defaults to English, the language of the bundled data.
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    folder = Path(folder)
    training = training_config if training_config is not None else metadata.load_training_config(folder)
    mode = metadata.folder_mode(folder, training)
    base = metadata.base_model(folder, base_model)
    template = PossibilityTemplate.from_pretrained(folder) if (folder / TEMPLATE_FILENAME).is_file() else None
    adapter = metadata.adapter_config(folder)
    rows = load_results(results)
    row = headline_row(rows, mode)
    model_name = repo_id.split("/")[-1] if repo_id else f"peft-diversity-{mode or 'model'}"

    eval_results = []
    if row is not None:
        for key, pretty in CARD_METRICS:
            value = _number(row["scores"].get(key))
            if value is None:
                continue
            eval_results.append(
                EvalResult(
                    task_type="text-generation",
                    task_name="Diverse response generation",
                    dataset_type=dataset or "custom",
                    dataset_name=dataset or "held-out one-to-many contexts",
                    metric_type=key,
                    metric_value=round(value, 4),
                    metric_name=pretty,
                )
            )
    tags = ["peft-diversity", MODE_CARDS[mode or "poexft"][1], "diversity", "text-generation"]
    tags += ["merged-lora"] if merged else ["peft", "lora"] if adapter else []
    card_data = ModelCardData(
        base_model=base if is_hub_id(base) else None,
        datasets=[dataset] if is_hub_id(dataset) else None,
        library_name="peft" if adapter and not merged else "transformers",
        license=license,
        language=language or ["en"],
        pipeline_tag="text-generation",
        tags=tags,
        model_name=model_name,
        eval_results=eval_results or None,
    )
    hyper = {key: training[key] for key in HYPERPARAMETERS if training and training.get(key) is not None}
    lora = {key: adapter[key] for key in LORA_FIELDS if adapter and adapter.get(key) is not None}
    from peft_diversity.scoring.report import format_results_table

    table = format_results_table(rows) if rows else ""
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path or MODEL_CARD_TEMPLATE),
        model_id=repo_id or str(folder),
        title=repo_id or model_name,
        base_model_name=base or "unknown",
        dataset_name=dataset or "unknown",
        mode=mode or "unknown",
        mode_description=MODES_DESCRIPTION.get(mode or "", "training mode not recorded"),
        is_adapter=bool(adapter) and not merged,
        merged=merged,
        hyperparameters=hyper,
        lora=lora,
        template=template.to_dict() if template else None,
        max_possibility=template.max_possibility if template else 9,
        headline=row,
        headline_metrics=[(pretty, _fmt(row["scores"].get(key))) for key, pretty in CARD_METRICS]
        if row
        else [],
        table=table,
        arxiv=PAPER["id"],
        citation=PAPER["citation"],
        base_is_hub_id=is_hub_id(base),
        example_instruction=(template or PossibilityTemplate()).instruction.replace(
            "{input}", "A: Any plans for the weekend?\nB: Not yet, you?"
        ),
        possibility_sentence=(template or PossibilityTemplate()).possibility_sentence,
        system_prompt=template.system_prompt if template else None,
        framework_versions=framework_versions(),
    )


def framework_versions() -> dict[str, str]:
    """Versions of the libraries a trained model depends on, for its card."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("peft_diversity", "transformers", "peft", "trl", "torch", "datasets", "accelerate"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _fmt(value: Any) -> str:
    number = _number(value)
    return "–" if number is None else f"{number:.3f}"
