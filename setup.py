"""setuptools entry: all metadata is in setup.cfg. This adds one file to the wheel: the start-up hook that lets
`evaluate.load("diversity_sim")` find the packaged metrics by bare name (see peft_diversity/evaluate_hook.py)."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

# Both equal peft_diversity.evaluate_hook.PTH_NAME / PTH_LINE (a test checks).
PTH_NAME = "peft_diversity_evaluate.pth"
PTH_LINE = "import peft_diversity.evaluate_hook\n"


class BuildPyWithHook(build_py):
    def run(self) -> None:
        super().run()
        Path(self.build_lib, PTH_NAME).write_text(PTH_LINE)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), str(Path(self.build_lib, PTH_NAME))]


setup(cmdclass={"build_py": BuildPyWithHook})
