"""Built-in offline models, addressed as `builtin:<name>`: materialised once into the user cache as plain
transformers folders, so every other code path loads them like any local model."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from peft_diversity.atomic import atomic_directory
from peft_diversity.errors import ModelLoadError
from peft_diversity.jsonl import read_json, write_json
from peft_diversity.models import smollm2
from peft_diversity.models.minilm import WARMUP_FILE, build_minilm_decoder, build_minilm_decoder_raw

logger = logging.getLogger(__name__)


BUILTIN_PREFIX = "builtin:"
DEFAULT_GENERATOR = "builtin:minilm-decoder"
BUILTIN_VERSION = "1"


# ----- built-in offline models ----------------------------------------------------------------------
def cache_dir() -> Path:
    """Where built-in models are materialised (PEFT_DIVERSITY_CACHE, else ~/.cache/peft_diversity)."""
    if os.environ.get("PEFT_DIVERSITY_CACHE"):
        return Path(os.environ["PEFT_DIVERSITY_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "peft_diversity"


def resolve_model_path(name_or_path: str) -> str:
    """Map `builtin:<name>` to its materialised local folder; anything else is returned unchanged."""
    if not name_or_path.startswith(BUILTIN_PREFIX):
        return name_or_path
    name = name_or_path[len(BUILTIN_PREFIX) :]
    builders = {
        "minilm-decoder": build_minilm_decoder,
        "minilm-decoder-raw": build_minilm_decoder_raw,
        smollm2.NAME: smollm2.build,
    }
    if name not in builders:
        raise ModelLoadError(
            f"unknown built-in model {name_or_path!r}; known: {[BUILTIN_PREFIX + n for n in builders]}"
        )
    target = cache_dir() / f"{name}-v{BUILTIN_VERSION}"
    stamp = {"minilm-decoder": _warmup_stamp, smollm2.NAME: smollm2.stamp}.get(name, lambda: "raw")()
    if (target / "config.json").is_file() and _read_stamp(target) == stamp and _weights_intact(target):
        return str(target)
    if target.exists():
        logger.warning("built-in model cache %s is stale or damaged: rebuilding it", target)
    _materialise(target, builders[name], stamp)
    return str(target)


def _warmup_stamp() -> str:
    """The warm-up delta's content hash: every copy of the package (clone, wheel, worktree) agrees on it."""
    if not WARMUP_FILE.is_file():
        return "no-warmup"
    return file_hash(WARMUP_FILE)


def file_hash(path: Path) -> str:
    """A file's content hash, computed once per process and file state (path, size, mtime)."""
    stat = path.stat()
    return _content_hash(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _content_hash(path: str, size: int, mtime_ns: int) -> str:
    """Hash a file once per process and file state: every builtin load and every experiment stage asks, and
    weights run to GBs (streamed, never read whole into memory)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()[:16]


# ----- what a model is, by content ------------------------------------------------------------------
# the files of a model folder that decide what it computes: weights, configs, tokenizer and template files
# (not READMEs, not subfolders such as checkpoints)
MODEL_FILE_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".gguf",
    ".json",
    ".model",
    ".txt",
    ".jinja",
    ".tiktoken",
)


def model_identity(name_or_path: str) -> dict[str, Any]:
    """A model's content identity for the experiment's stage stamps, so that new weights under the same name
    redo the stages made from the old ones: a built-in's content stamp; a local folder's model files (name,
    size, hash); a Hub id's resolved commit (offline: the cached snapshot's commit; None when unknown)."""
    if name_or_path.startswith(BUILTIN_PREFIX):
        return {"builtin": name_or_path, "stamp": _read_stamp(Path(resolve_model_path(name_or_path)))}
    folder = Path(name_or_path)
    if folder.is_dir():
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in MODEL_FILE_SUFFIXES)
        return {"files": {p.name: [p.stat().st_size, file_hash(p)] for p in files}}
    return {"hub": name_or_path, "revision": hub_revision(name_or_path)}


def hub_revision(repo_id: str) -> str | None:
    """The commit `main` of a Hub model points at: asked of the Hub when online, else the cached snapshot's
    (None when neither knows, e.g. a mistyped local path: the loader reports that with its own message)."""
    from huggingface_hub import constants, is_offline_mode, try_to_load_from_cache

    if not is_offline_mode() and (commit := _hub_commit(repo_id)):
        return commit
    try:
        cached = try_to_load_from_cache(repo_id, "config.json", cache_dir=constants.HF_HUB_CACHE)
    except ValueError:  # not a valid repo id
        return None
    return Path(cached).parent.name if isinstance(cached, str) else None  # .../snapshots/<commit>/config.json


@functools.lru_cache(maxsize=32)
def _hub_commit(repo_id: str) -> str | None:
    """Asked once per process: every stage stamp wants it, and a run is one view of the repo."""
    from huggingface_hub import model_info

    try:
        return model_info(repo_id).sha
    except Exception:  # noqa: BLE001 - no network, private, gated, not a repo id: the cache decides
        logger.debug("could not ask the Hub for %s's revision; using the cache", repo_id)
        return None


STAMP_FILE = "builtin_stamp.json"


def _stamp_file(folder: Path) -> dict[str, Any]:
    """builtin_stamp.json: the stamp and the weights files' sizes; {} when missing or damaged (then rebuilt)."""
    try:
        return read_json(folder / STAMP_FILE, error=ModelLoadError, missing={}, kind=dict)
    except ModelLoadError:
        return {}


def _read_stamp(folder: Path) -> str | None:
    return _stamp_file(folder).get("stamp")


def _weights_intact(folder: Path) -> bool:
    """Every weights file the stamp recorded is there with its recorded size (a truncated copy is not)."""
    try:
        sizes = _stamp_file(folder).get("files", {})
        return all((folder / name).stat().st_size == size for name, size in sizes.items())
    except (OSError, AttributeError):
        return False


def _materialise(target: Path, builder, stamp: str) -> None:
    """Build into a temp folder, then rename: a crash never leaves a half-written model behind.

    The stamp file is written last and records the weights files' sizes, so a folder damaged later (a
    truncated or deleted weights file) is rebuilt instead of half-read.
    """
    with atomic_directory(target) as tmp:
        model, tokenizer = builder()
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        files = {p.name: p.stat().st_size for p in sorted(tmp.glob("*.safetensors"))}
        write_json(tmp / STAMP_FILE, {"stamp": stamp, "files": files})
