"""THE settings stamps: each experiment output records what it was made with in `<output>.settings.json`, and a
stage is redone when the settings it would use differ (the runner's stages and the study's per-context scores)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from peft_diversity.errors import ExperimentConfigError
from peft_diversity.jsonl import read_json, write_json

logger = logging.getLogger(__name__)

STAMP_SUFFIX = ".settings.json"


def stamp_path(target: Path) -> Path:
    """Beside the output (models/poexft.settings.json, responses/<run>.jsonl.settings.json, ...)."""
    return target.with_name(target.name + STAMP_SUFFIX)


def read_stamp(target: Path) -> dict[str, Any] | None:
    """The settings `target` was made with; None when there is no readable stamp (the stage is then redone)."""
    try:
        return read_json(stamp_path(target), error=ExperimentConfigError, kind=dict)
    except ExperimentConfigError:
        return None


def write_stamp(target: Path, settings: dict[str, Any]) -> None:
    write_json(stamp_path(target), jsonable(settings))


def is_fresh(target: Path, settings: dict[str, Any], force: bool, stage: str) -> bool:
    """True when `target` exists and was made with exactly `settings`; otherwise logs why the stage is redone."""
    if force or not target.exists():
        return False
    made_with = read_stamp(target)
    wanted = jsonable(settings)
    if made_with == wanted:
        return True
    if made_with is None:
        logger.warning("%s: %s has no record of the settings it was made with: redoing it", stage, target)
    else:
        changed = sorted(k for k in set(made_with) | set(wanted) if made_with.get(k) != wanted.get(k))
        logger.warning(
            "%s: settings changed since %s was made (%s): redoing it", stage, target, ", ".join(changed)
        )
    return False


def jsonable(data: Any) -> Any:
    """`data` as a stamp holds it: JSON values only (others as their str()), keys sorted."""
    return json.loads(json.dumps(data, sort_keys=True, default=str))


def digest(data: Any) -> str:
    """A short content hash of `data` (its sorted JSON): what a stamp records of large inputs."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]
