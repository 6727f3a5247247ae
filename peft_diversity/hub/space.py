"""A metric module as a Hub Space, so `evaluate.load("<owner>/<name>")` finds it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from peft_diversity.errors import HubError
from peft_diversity.hub.model import _hf_api, _upload, resolve_token, validate_model_repo_id

logger = logging.getLogger(__name__)


# ----- metrics ------------------------------------------------------------------------------------------------
def metric_folder(name: str) -> Path:
    """`metrics/<name>` for a known metric; a clear error (listing METRIC_NAMES) otherwise."""
    from peft_diversity.assets import asset_path
    from peft_diversity.evaluate_hook import METRIC_NAMES

    if name not in METRIC_NAMES:
        raise HubError(f"unknown metric {name!r}; known: {', '.join(METRIC_NAMES)}")
    folder = asset_path("metrics") / name
    if not (folder / f"{name}.py").is_file():
        raise HubError(f"metric folder {folder} has no {name}.py")
    return folder


def push_metric(
    name: str,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    api: Any = None,
    commit_message: str | None = None,
) -> str:
    """Upload `metrics/<name>` (<name>.py, README.md card, app.py) as a Gradio Space at `repo_id`.

    Afterwards `evaluate.load("<owner>/<name>")` loads it from the Hub. This replaces `evaluate-cli
    create/push`, which is broken on huggingface_hub >= 1.0.
    """
    folder = metric_folder(name)
    validate_model_repo_id(repo_id)
    token = resolve_token(token)
    api = _hf_api(api, token)
    commit = _upload(api, repo_id, folder, "space", private, commit_message or f"Upload {name} metric",
                     create_kwargs={"space_sdk": "gradio"},
                     upload_kwargs={"ignore_patterns": ["__pycache__/*", "*.pyc"]})
    logger.info("pushed metric %s to https://huggingface.co/spaces/%s", name, repo_id)
    return commit
