"""Files the package needs that live at the repository's top level: metrics/, model_cards/, recipes/.

A wheel carries them inside the package (setup.cfg maps each folder to `peft_diversity/assets/<name>`); a clone
or an editable install reads them where they are. Code asks `asset_path(name)` and never guesses.
"""

from __future__ import annotations

from pathlib import Path

ASSETS = ("metrics", "model_cards", "recipes")
_HERE = Path(__file__).resolve().parent


def asset_path(name: str) -> Path:
    """The folder `name` (one of `ASSETS`) of this installation."""
    if name not in ASSETS:
        raise ValueError(f"unknown asset folder {name!r}; known: {ASSETS}")
    packaged = _HERE / name
    return packaged if packaged.is_dir() else _HERE.parent.parent / name
