"""THE upload sequence every push shares (model, dataset, metric Space): check the repo id and the token, build
the folder, create the repo if needed, upload the folder as one commit, report; plus the upload folders that
`push --save-only` writes (atomically, marked so that only they are ever replaced)."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from peft_diversity.atomic import atomic_directory
from peft_diversity.errors import HubError
from peft_diversity.jsonl import write_json

logger = logging.getLogger(__name__)

REPO_ID_PATTERN = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
# Written into every folder `upload_folder` makes: only a folder holding it may be replaced
SAVE_MARKER = ".peft-diversity-upload.json"
# where a repo of each type lives under https://huggingface.co/
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


# ----- repo ids and tokens ----------------------------------------------------------------------------------
def is_hub_id(name: str | None) -> bool:
    """True for an `owner/name` that is not a local path (so it names a Hub repo)."""
    return bool(name) and bool(REPO_ID_PATTERN.match(name)) and not Path(name).exists()


def validate_model_repo_id(repo_id: str) -> str:
    """`owner/name` or a clear error (nothing is uploaded to a malformed id)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(repo_id, str) or not REPO_ID_PATTERN.match(repo_id):
        raise HubError(
            f"repo id must look like 'owner/name' (e.g. 'alice/qwen2.5-0.5b-poexft'), got {repo_id!r}"
        )
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise HubError(f"invalid repo id {repo_id!r}: {err}") from err
    return repo_id


def resolve_token(token: str | None = None) -> str:
    """The given token, else the one from `hf auth login` / HF_TOKEN; a clear error when there is none."""
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise HubError("no Hugging Face token found: run `hf auth login` (or set HF_TOKEN) and try again")
    return token


def repo_url(repo_id: str, repo_type: str = "model") -> str:
    return f"https://huggingface.co/{URL_PREFIX[repo_type]}{repo_id}"


# ----- the upload folder -------------------------------------------------------------------------------------
def check_output_folder(target: str | os.PathLike, *sources: str | os.PathLike) -> Path:
    """Refuse (HubError) an output folder whose replacement would lose data: one that exists, is not empty and
    was not written by `upload_folder` (no SAVE_MARKER), or one that is, or holds, a source.
    """
    target = Path(target)
    resolved = target.resolve()
    for source in sources:
        source_path = Path(source).resolve()
        if resolved == source_path or resolved in source_path.parents:
            raise HubError(
                f"output folder {target} is or holds the input {source}: writing it would delete the "
                "input; pick a new folder"
            )
    if target.exists() or target.is_symlink():
        if not target.is_dir():
            raise HubError(f"output folder {target} exists and is not a folder: refusing to replace it")
        if any(target.iterdir()) and not (target / SAVE_MARKER).is_file():
            raise HubError(
                f"output folder {target} exists and was not written by `peft-diversity push --save-only`:"
                " refusing to replace it; pick a new or empty folder"
            )
    return target


@contextmanager
def upload_folder(
    target: str | os.PathLike, kind: str, source: Any, *inputs: str | os.PathLike
) -> Iterator[Path]:
    """Yield an empty temp folder that replaces `target` when the block succeeds (`atomic_directory`), marked as
    an upload folder of `kind` made from `source`. `target` is checked first (`check_output_folder`, against
    the local `inputs` it must not delete)."""
    checked = check_output_folder(target, *inputs)
    with atomic_directory(checked) as tmp:
        marker = {"written_by": "peft_diversity.hub", "kind": kind, "source": str(source)}
        write_json(tmp / SAVE_MARKER, marker)
        yield tmp


# ----- push --------------------------------------------------------------------------------------------------
def push_folder(
    build: Callable[[Path], Path],
    repo_id: str,
    repo_type: str,
    *,
    what: Any,
    private: bool,
    token: str | None,
    api: Any,
    commit_message: str,
    create_kwargs: dict[str, Any] | None = None,
    upload_kwargs: dict[str, Any] | None = None,
) -> str:
    """The one push: check `repo_id` and the token (before any work), `build(path)` the folder into a temp dir,
    create the repo if needed, upload the folder as one commit and log it. Returns the commit URL (or whatever
    `api.upload_folder` returns, as a string); Hub and network failures are one HubError line."""
    validate_model_repo_id(repo_id)
    token = resolve_token(token)
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="peft-diversity-push-") as tmp:
        folder = build(Path(tmp) / "upload")
        (folder / SAVE_MARKER).unlink(missing_ok=True)  # a local bookkeeping file, not part of the repo
        try:
            api.create_repo(
                repo_id, private=private, exist_ok=True, repo_type=repo_type, **(create_kwargs or {})
            )
            commit = str(
                api.upload_folder(
                    repo_id=repo_id,
                    folder_path=str(folder),
                    commit_message=commit_message,
                    repo_type=repo_type,
                    **(upload_kwargs or {}),
                )
            )
        except Exception as err:  # noqa: BLE001 - sorted below: Hub / network failures become one HubError line
            raise hub_error(err, repo_id) from err
    logger.info("pushed %s to %s", what, repo_url(repo_id, repo_type))
    return commit


def hub_error(err: Exception, repo_id: str) -> Exception:
    """A HubError line for a Hub or network failure (offline, auth, permission, quota, server); any other
    exception is returned unchanged (a bug, to be seen whole)."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(err, OfflineModeIsEnabled):
        return HubError(f"cannot upload to {repo_id}: HF_HUB_OFFLINE is set (unset it to push)")
    if isinstance(err, HfHubHTTPError):
        status = getattr(getattr(err, "response", None), "status_code", None)
        reason = {
            401: "the token is invalid or expired (run `hf auth login`)",
            403: "the token may not write to this repo (a read-only token, or another owner)",
            404: "the repo or owner does not exist",
            413: "the upload is too large",
            429: "too many requests or a storage quota reached; try again later",
        }.get(status, "")
        first = " ".join(str(err).strip().splitlines()[0].split()) if str(err).strip() else type(err).__name__
        return HubError(
            f"upload to {repo_id} failed (HTTP {status}): {reason + '; ' if reason else ''}{first}"
        )
    if isinstance(err, (ConnectionError, TimeoutError, OSError)) or type(err).__module__.startswith(
        ("httpx", "requests", "urllib3")
    ):
        first = " ".join(str(err).split()) or type(err).__name__
        return HubError(
            f"cannot reach the Hub to upload {repo_id} ({type(err).__name__}: {first}); check the "
            "network and try again"
        )
    return err
