"""A metric module as a Hub Space, so `evaluate.load("<owner>/<name>")` finds it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from peft_diversity.errors import HubError
from peft_diversity.hub.upload import push_folder


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


# What a Space needs of this package to run a metric: the scoring functions and what they import
SPACE_PACKAGE_FILES = ("__init__.py", "errors.py", "chat.py", "scoring/*.py")


def stage_metric_space(name: str, target: str | os.PathLike) -> Path:
    """The folder a metric Space is made of: `metrics/<name>` (script, card, app.py, requirements.txt) plus
    the `peft_diversity` scoring code it imports, so the Space runs without this package on PyPI."""
    folder, target = metric_folder(name), Path(target)
    shutil.copytree(folder, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    package = Path(__file__).resolve().parent.parent
    for pattern in SPACE_PACKAGE_FILES:
        for source in package.glob(pattern):
            destination = target / "peft_diversity" / source.relative_to(package)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)
    return target


def push_metric(
    name: str,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    api: Any = None,
    commit_message: str | None = None,
) -> str:
    """Upload `metrics/<name>` (<name>.py, README.md card, app.py, requirements.txt) as a Gradio Space.

    Afterwards `evaluate.load("<owner>/<name>")` loads it from the Hub. This replaces `evaluate-cli
    create/push`, which is broken on huggingface_hub >= 1.0.
    """
    metric_folder(name)  # an unknown name fails before any token or network step
    return push_folder(
        lambda out: stage_metric_space(name, out),
        repo_id,
        "space",
        what=f"metric {name}",
        private=private,
        token=token,
        api=api,
        commit_message=commit_message or f"Upload {name} metric",
        create_kwargs={"space_sdk": "gradio"},
        upload_kwargs={"ignore_patterns": ["__pycache__/*", "*.pyc"]},
    )
