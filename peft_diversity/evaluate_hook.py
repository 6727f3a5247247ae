"""`evaluate.load("diversity_sim")` by bare name, offline, from any folder: no Hub look-up, no warning.

evaluate resolves a bare name as `./<name>/<name>.py`, then the Hub, then its module cache (with a warning).
The wheel ships a one-line `peft_diversity_evaluate.pth` (setup.py) that imports this module at start-up; it
waits for `evaluate.loading` to be imported and routes this package's metric names (`METRIC_NAMES`) to the
packaged scripts. A `./<name>/` folder in the working directory still wins, as in evaluate, and any other name
is untouched. `PEFT_DIVERSITY_EVALUATE_HOOK=0` turns it off. It runs in every interpreter of the environment, so
it stays as small as it can be: at start-up it only imports `os`/`sys` and puts one finder on `sys.meta_path`,
which answers nothing but `evaluate.loading` and takes itself off once it has wrapped it (or when the module was
already imported); everything else is imported when a metric is loaded. Why a hook at all (evaluate 0.4.6 has no
supported way): docs/architecture.md, Decisions. An editable install gets no .pth from setuptools; `make
install` writes it:

    python -m peft_diversity.evaluate_hook        # write the .pth into this environment's site-packages
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

METRIC_NAMES = (
    "diversity_sim",
    "self_bleu",
    "distinct_n",
    "vendi",
    "distinct_k",
    "coherence",
    "likelihood_coherence",
    "demographic_bias",
)
_TARGET = "evaluate.loading"
PTH_NAME = "peft_diversity_evaluate.pth"
PTH_LINE = "import peft_diversity.evaluate_hook\n"


def packaged_script(path: str) -> Path | None:
    """The packaged script a bare metric name resolves to; None when evaluate's own rules should apply."""
    if path not in METRIC_NAMES or os.path.exists(os.path.join(path, f"{path}.py")):
        return None
    from peft_diversity.assets import asset_path

    script = asset_path("metrics") / path / f"{path}.py"
    return script if script.is_file() else None


def patch(loading: Any) -> None:
    """Wrap `evaluate.loading.evaluation_module_factory` (idempotent)."""
    import functools

    original = loading.evaluation_module_factory
    if getattr(original, "_peft_diversity", False):
        return

    @functools.wraps(original)
    def factory(path: str, *args: Any, **kwargs: Any) -> Any:
        script = packaged_script(path) if isinstance(path, str) else None
        return original(str(script) if script else path, *args, **kwargs)

    factory._peft_diversity = True
    loading.evaluation_module_factory = factory


class _PatchOnImport:
    """A `sys.meta_path` finder that finds nothing itself: it hands `evaluate.loading`'s real spec back with a
    loader that patches the module, and leaves `sys.meta_path` as it found it."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != _TARGET:
            return None
        import importlib.util

        sys.meta_path.remove(self)  # one use only: later imports never see this finder
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module: Any) -> None:
            exec_module(module)
            patch(module)

        spec.loader.exec_module = exec_and_patch
        return spec


def install() -> None:
    """Patch now if `evaluate.loading` is loaded, else when it is first imported."""
    if os.environ.get("PEFT_DIVERSITY_EVALUATE_HOOK", "1") == "0":
        return
    if _TARGET in sys.modules:
        patch(sys.modules[_TARGET])
    elif not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())


def write_pth(directory: str | os.PathLike | None = None) -> Path:
    """Write the start-up .pth into `directory` (default: this environment's site-packages)."""
    import sysconfig
    from pathlib import Path

    path = Path(directory or sysconfig.get_paths()["purelib"]) / PTH_NAME
    path.write_text(PTH_LINE)
    return path


def load_metric(name: str, **kwargs: Any) -> Any:
    """`evaluate.load` one of this package's metrics from its packaged script (no Hub look-up)."""
    import evaluate

    if name not in METRIC_NAMES:
        from peft_diversity.errors import PeftDiversityError

        raise PeftDiversityError(f"unknown metric {name!r}; choose from {', '.join(METRIC_NAMES)}")
    from peft_diversity.assets import asset_path

    return evaluate.load(str(asset_path("metrics") / name / f"{name}.py"), **kwargs)


install()

if __name__ == "__main__":
    print(f"wrote {write_pth()}")
