"""Make ``evaluate.load("<name>")`` find this project's metric modules by bare name, offline.

evaluate 0.4.6 resolves a bare name as: ``./<name>/<name>.py`` in the working directory, then
the Hub (``evaluate-metric/<name>``, ``evaluate-comparison/...``, ``evaluate-measurement/...``),
and, when both fail (offline, or no such Hub module), the newest cached copy in
``$HF_MODULES_CACHE/evaluate_modules/metrics/evaluate-<type>--<name>/<64-hex hash>/<name>.py``.
``install_metrics`` writes each ``metrics/<name>/`` folder there (temporary directory +
rename, so readers never see half a module; idempotent), which makes the bare name work from
any working directory. Run it once after ``pip install -e .``::

    python -m peft_diversity.metrics_install

The cache root is evaluate's: ``$HF_MODULES_CACHE``, else ``$HF_HOME/modules``, else
``$XDG_CACHE_HOME/huggingface/modules`` (``~/.cache/huggingface/modules``); re-run it if that
changes. The modules import ``peft_diversity.scoring``, so the package must be installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from peft_diversity.assets import asset_path

METRIC_NAMES = (
    "diversity_sim",
    "self_bleu",
    "distinct_n",
    "vendi",
    "distinct_k",
    "coherence",
    "demographic_bias",
)
_TYPE_RE = re.compile(r"class\s+\w+\(\s*evaluate\.(Metric|Measurement|Comparison)\s*\)")


def metrics_source_dir() -> Path:
    """The project's ``metrics/`` folder (``$PEFT_DIVERSITY_METRICS_DIR`` overrides it)."""
    env = os.environ.get("PEFT_DIVERSITY_METRICS_DIR")
    return Path(env) if env else asset_path("metrics")


def default_modules_cache() -> Path:
    """evaluate's ``HF_MODULES_CACHE`` as a fresh process would compute it from the environment."""
    if os.environ.get("HF_MODULES_CACHE"):
        return Path(os.environ["HF_MODULES_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "~/.cache")
    hf_home = os.environ.get("HF_HOME", os.path.join(xdg, "huggingface"))
    return Path(hf_home).expanduser() / "modules"


def _module_type(script: Path) -> str:
    match = _TYPE_RE.search(script.read_text(encoding="utf-8"))
    return match.group(1).lower() if match else "metric"


def _touch_init(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "__init__.py").touch(exist_ok=True)


def _make_newest(script: Path, siblings: Iterable[Path]) -> None:
    """evaluate picks the most recently modified hash: make ours the newest if it is not."""
    newest = max((p.stat().st_mtime for p in siblings if p.exists()), default=0.0)
    if script.stat().st_mtime <= newest:
        stamp = max(time.time(), newest + 1.0)
        os.utime(script, (stamp, stamp))


def install_metric(
    name: str, modules_cache: str | os.PathLike | None = None, source_dir: str | os.PathLike | None = None
) -> Path:
    """Install ``metrics/<name>/`` into evaluate's modules cache; return the installed script path."""
    src = Path(source_dir or metrics_source_dir()) / name
    script = src / f"{name}.py"
    if not script.is_file():
        raise FileNotFoundError(
            f"no metric script {script}; is peft_diversity installed from the repository (pip install -e .)?"
        )
    root = Path(modules_cache or default_modules_cache()) / "evaluate_modules"
    for directory in (root.parent, root, root / "metrics"):
        _touch_init(directory)
    parent = root / "metrics" / f"evaluate-{_module_type(script)}--{name}"
    _touch_init(parent)
    digest = hashlib.sha256(script.read_bytes()).hexdigest()  # 64 hex chars, as evaluate expects
    final = parent / digest
    siblings = [d / f"{name}.py" for d in parent.iterdir() if len(d.name) == 64 and d != final]
    if not (final / f"{name}.py").is_file():
        _atomic_copy(src, script, parent, final, name)
    _make_newest(final / f"{name}.py", siblings)
    return final / f"{name}.py"


def _atomic_copy(src: Path, script: Path, parent: Path, final: Path, name: str) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=parent))
    try:
        for item in src.iterdir():
            if item.is_file() and item.name != "__init__.py":
                shutil.copyfile(item, tmp / item.name)
        (tmp / "__init__.py").touch()
        meta = {"original file path": str(script), "local file path": str(final / f"{name}.py")}
        (tmp / f"{name}.json").write_text(json.dumps(meta), encoding="utf-8")
        os.rename(tmp, final)
    except OSError:
        if not (final / f"{name}.py").is_file():  # lost a race only if the winner finished
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def install_metrics(
    names: Iterable[str] | None = None,
    modules_cache: str | os.PathLike | None = None,
    source_dir: str | os.PathLike | None = None,
) -> dict[str, Path]:
    """Install all (or ``names``) of this project's metrics for bare-name ``evaluate.load``."""
    return {name: install_metric(name, modules_cache, source_dir) for name in names or METRIC_NAMES}


def load_metric(name: str, **kwargs: Any) -> Any:
    """``evaluate.load`` one of this project's metrics (installing it for bare-name use first).

    The module is loaded from its folder path, which needs no network and no Hub look-up;
    ``kwargs`` go to ``evaluate.load`` (e.g. ``config_name``, ``experiment_id``).
    """
    import evaluate

    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; choose from {METRIC_NAMES}")
    source = metrics_source_dir() / name
    if not source.is_dir():  # not a repository install: rely on what install_metrics cached
        return evaluate.load(name, **kwargs)
    install_metric(name, evaluate.config.HF_MODULES_CACHE)
    return evaluate.load(str(source), **kwargs)


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m peft_diversity.metrics_install [names...] [--modules-cache DIR]``."""
    parser = argparse.ArgumentParser(
        description="Install peft_diversity's evaluate modules for bare-name loading."
    )
    parser.add_argument("names", nargs="*", help=f"default: all of {', '.join(METRIC_NAMES)}")
    parser.add_argument("--modules-cache", default=None, help="default: evaluate's HF_MODULES_CACHE")
    args = parser.parse_args(argv)
    for name, path in install_metrics(args.names or None, args.modules_cache).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
