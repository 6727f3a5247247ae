"""A trained model for the Hub: the upload folder (weights or adapter, tokenizer, template, training settings,
card) and push_model."""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from peft_diversity.errors import HubError
from peft_diversity.hub import metadata
from peft_diversity.hub.card import build_model_card
from peft_diversity.hub.upload import push_folder, upload_folder
from peft_diversity.jsonl import write_json
from peft_diversity.templates import TEMPLATE_FILENAME

logger = logging.getLogger(__name__)

# Files of a training output folder that never go to the Hub (pickles, optimizer state, our regenerated card)
EXCLUDED_FILES = {
    "training_args.bin",
    "optimizer.pt",
    "scheduler.pt",
    "scaler.pt",
    "trainer_state.json",
    "README.md",
    "train_summary.json",
    "builtin_stamp.json",
}
EXCLUDED_PATTERNS = (re.compile(r"^rng_state.*\.pth$"), re.compile(r"^\."))
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
    "chat_template.jinja",
    "chat_template.json",
)


def _check_safetensors(folder: Path) -> None:
    """Refuse (not convert) a folder whose only weights are a pickle: converting means unpickling a file of
    unknown origin, and our own loader refuses it anyway (models/loading.py), so the upload would not load."""
    from peft_diversity.models.loading import pickle_only_weights, pickle_weights_message

    pickles = pickle_only_weights(folder)
    if pickles:
        raise HubError(pickle_weights_message(pickles[0]))


def _upload_files(folder: Path) -> list[Path]:
    from peft_diversity.models.loading import PICKLE_WEIGHTS_PATTERN

    files = [
        p
        for p in sorted(folder.iterdir())
        if p.is_file()
        and p.name not in EXCLUDED_FILES
        and not any(pat.match(p.name) for pat in EXCLUDED_PATTERNS)
    ]
    pickles = [p for p in files if PICKLE_WEIGHTS_PATTERN.match(p.name)]
    if pickles:  # beside safetensors weights (_check_safetensors ran): a pickled duplicate, never uploaded
        logger.warning(
            "%s: not uploaded (pickled weights; the safetensors weights are)", ", ".join(map(str, pickles))
        )
    return [p for p in files if p not in pickles]


def _write_merged(folder: Path, target: Path) -> None:
    """Base + adapter merged into full weights (safetensors), plus the tokenizer files."""
    from peft_diversity.models.loading import load_model_and_tokenizer

    model, _ = load_model_and_tokenizer(str(folder), dtype="float32")
    merged = model.merge_and_unload()
    merged.save_pretrained(target, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (folder / name).is_file():
            shutil.copy2(folder / name, target / name)


def save_for_hub(
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    results: str | os.PathLike | list[dict[str, Any]] | None = None,
    base_model: str | None = None,
    dataset: str | None = None,
    merge: bool = False,
    repo_id: str | None = None,
) -> Path:
    """Build exactly the folder to upload: model (adapter-only unless `merge`), tokenizer, template, card.

    `training_args.bin` (a pickle) is never uploaded; its settings go to `training_config.json` when it can be
    read safely. The folder is written to a temp dir beside `out_dir` and renamed into place; an existing
    `out_dir` is replaced only when it is empty or an earlier output of this function (HubError otherwise).
    """
    folder = Path(model_dir)
    if not folder.is_dir():
        raise HubError(f"model folder not found: {folder}")
    is_adapter = (folder / "adapter_config.json").is_file()
    if not is_adapter and not (folder / "config.json").is_file():
        raise HubError(
            f"{folder} holds neither a model (config.json) nor a peft adapter (adapter_config.json)"
        )
    _check_safetensors(folder)
    if not (folder / TEMPLATE_FILENAME).is_file():
        logger.warning(
            "%s has no %s: the uploaded model will need a template given explicitly",
            folder,
            TEMPLATE_FILENAME,
        )
    with upload_folder(out_dir, "model", folder, folder) as tmp:
        training = metadata.load_training_config(folder)
        if merge and is_adapter:
            _write_merged(folder, tmp)
            for name in (TEMPLATE_FILENAME,):
                if (folder / name).is_file():
                    shutil.copy2(folder / name, tmp / name)
        else:
            if merge:
                logger.warning("%s holds full weights, not an adapter: nothing to merge", folder)
            for path in _upload_files(folder):
                shutil.copy2(path, tmp / path.name)
        if training is not None:
            write_json(tmp / metadata.TRAINING_CONFIG_FILENAME, training)
        card = build_model_card(
            folder,
            results=results,
            base_model=metadata.base_model(folder, base_model),
            dataset=dataset,
            repo_id=repo_id,
            training_config=training,
            merged=merge and is_adapter,
        )
        card.save(tmp / "README.md")
    return Path(out_dir)


def push_model(
    model_dir: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = True,
    token: str | None = None,
    commit_message: str = "Upload peft_diversity model",
    api: Any = None,
    **save_kwargs: Any,
) -> str:
    """Build the upload folder (`save_for_hub`) and push it to `repo_id` (a private model repo by default).

    Returns the commit URL (or whatever `api.upload_folder` returns, as a string).
    """
    return push_folder(
        lambda out: save_for_hub(model_dir, out, repo_id=repo_id, **save_kwargs),
        repo_id,
        "model",
        what=model_dir,
        private=private,
        token=token,
        api=api,
        commit_message=commit_message,
    )
