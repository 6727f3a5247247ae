"""What a trained folder (or a repo `push_model` uploaded) says about its training: settings, mode, base model,
adapter. Read-only; the card and the upload folder are built from it."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from peft_diversity.errors import HubError
from peft_diversity.hub.upload import is_hub_id
from peft_diversity.jsonl import read_json

logger = logging.getLogger(__name__)

TRAINING_CONFIG_FILENAME = "training_config.json"


def _training_args_globals(path: Path) -> list[Any]:
    """The classes a pickled TrainingArguments needs, restricted to trusted libraries' config/enum types."""
    import importlib

    import torch

    trusted = ("peft_diversity.", "transformers.", "trl.", "accelerate.")
    allowed = []
    for name in torch.serialization.get_unsafe_globals_in_checkpoint(str(path)):
        module_name, _, attr = name.rpartition(".")
        if not name.startswith(trusted):
            raise HubError(f"{path}: refuses to unpickle {name!r} (not a trusted config type)")
        obj = getattr(importlib.import_module(module_name), attr)
        if not isinstance(obj, type):
            raise HubError(f"{path}: refuses to unpickle {name!r} (not a class)")
        allowed.append(obj)
    return allowed


def load_training_config(model_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The training settings of a trained folder as a JSON-able dict, or None when unavailable.

    Read from `training_config.json` when present, else from `training_args.bin` with torch's weights-only
    unpickler (only config and enum classes from peft_diversity/transformers/trl/accelerate are allowed).
    """
    folder = Path(model_dir)
    if (folder / TRAINING_CONFIG_FILENAME).is_file():
        return read_json(folder / TRAINING_CONFIG_FILENAME, error=HubError, kind=dict)
    path = folder / "training_args.bin"
    if not path.is_file():
        return None
    import torch

    try:
        with torch.serialization.safe_globals(_training_args_globals(path)):
            args = torch.load(path, weights_only=True)
        data = args.to_dict()
    except Exception as err:  # noqa: BLE001 - an unreadable pickle only costs the card some detail
        logger.warning(
            "could not read %s safely (%s): the card will not list the training settings", path, err
        )
        return None
    data.pop("hub_token", None)
    for key in ("output_dir", "logging_dir", "push_to_hub_token", "hub_model_id"):
        data.pop(key, None)
    return json.loads(json.dumps(data, default=str))


def _read_json(path: Path) -> dict[str, Any] | None:
    return read_json(path, error=HubError, missing=None, kind=dict)


def adapter_config(folder: str | os.PathLike) -> dict[str, Any] | None:
    """A peft adapter folder's `adapter_config.json`; None for a full-weights folder."""
    return _read_json(Path(folder) / "adapter_config.json")


def trained_mode(model_dir: str | os.PathLike) -> str | None:
    """`poexft` / `otm` / `oto` for a model trained with peft_diversity, else None: from a folder's training
    settings, or from the `training_config.json` of a Hub repo that `push_model` uploaded (the local cache
    only when HF_HUB_OFFLINE). Never raises: anything unreadable gives None."""
    folder = Path(model_dir)
    if folder.is_dir():
        return folder_mode(folder, load_training_config(folder))
    return _hub_mode(str(model_dir)) if is_hub_id(str(model_dir)) else None


def _hub_mode(repo_id: str) -> str | None:
    try:
        from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache

        if constants.HF_HUB_OFFLINE:
            path = try_to_load_from_cache(repo_id, TRAINING_CONFIG_FILENAME)
        else:
            path = hf_hub_download(repo_id, TRAINING_CONFIG_FILENAME)
        mode = (
            json.loads(Path(path).read_text(encoding="utf-8")).get("mode") if isinstance(path, str) else None
        )
        return mode if isinstance(mode, str) else None
    except Exception as err:  # noqa: BLE001 - the mode only picks a default decoder
        logger.info("no training mode for %s (%s)", repo_id, err)
        return None


def folder_mode(folder: Path, training: dict[str, Any] | None) -> str | None:
    """The mode in `training` (the folder's training settings), else the one in its `train_summary.json`."""
    if training and training.get("mode"):
        return training["mode"]
    summary = _read_json(folder / "train_summary.json")
    return summary.get("mode") if summary else None


def base_model(folder: Path, explicit: str | None = None) -> str | None:
    """`explicit`, else the adapter's base model, else the name the model config was loaded from."""
    if explicit:
        return explicit
    adapter = adapter_config(folder)
    if adapter and adapter.get("base_model_name_or_path"):
        return adapter["base_model_name_or_path"]
    config = _read_json(folder / "config.json") or {}
    return config.get("_name_or_path") or None
