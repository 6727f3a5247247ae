"""`peft-diversity` command line: one subcommand per job, each module owning its flags.

A subcommand module exposes `add_arguments(parser)` and `run(args) -> int`; `train` forwards its flags to the
same TrlParser the recipe uses, so `peft-diversity train --config X.yaml` == `recipes/sft_peft.py --config X.yaml`.
This module owns what every subcommand shares: the logging set-up, the flag spelling (`--a_b` is `--a-b`, as in
TRL's parser) and the refusal of renamed flags (the table of names: docs/architecture.md, "Command-line flags").
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# name -> (module, one-line help)
SUBCOMMANDS = {
    "train": ("peft_diversity.trainer.cli", "train a PoExFT / OTM / OTO model from a YAML recipe"),
    "generate": ("peft_diversity.generation.cli", "generate K diverse responses for a context"),
    "score": ("peft_diversity.scoring.cli", "score a responses.jsonl file with every diversity metric"),
    "experiment": ("peft_diversity.experiment.cli", "train, generate and score a comparison from a YAML"),
    "demo": (
        "peft_diversity.experiment.cli",
        "the offline CPU demo: the experiment in recipes/experiments/demo-cpu.yaml",
    ),
    "push": (
        "peft_diversity.hub.cli",
        "upload a trained model (adapter or merged) with its template and model card",
    ),
    "build-data": (
        "peft_diversity.builder.cli",
        "build one-to-many training data from your prompts with a teacher model",
    ),
    "bias": (
        "peft_diversity.persona.cli",
        "persona demographic-bias test: interview models, compare attribute entropy",
    ),
}
# subcommands sharing a module use a differently named flag setter
ARGUMENT_SETTERS = {"demo": "add_demo_arguments"}
LOG_FORMAT = "%(asctime)s %(name)s: %(message)s"


def setup_logging() -> None:
    """THE logging set-up of every subcommand: INFO and above on stderr (stdout stays the command's output).

    A no-op when the root logger already has handlers (an embedding program or pytest configured it). httpx logs
    every request at INFO: an HTTP teacher or judge would print one line per call, so it stays at WARNING."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    logging.getLogger("httpx").setLevel(logging.WARNING)


class _Renamed(argparse.Action):
    """An old spelling of a flag: refused with one line naming the new one (exit 2), never silently taken."""

    def __init__(self, option_strings: list[str], dest: str, new: str, **kwargs) -> None:
        super().__init__(
            option_strings,
            dest=argparse.SUPPRESS,
            nargs="?",
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
        )
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        parser.exit(2, f"{parser.prog}: {option_string} was renamed {self.new}\n")


def reject_renamed(parser: argparse.ArgumentParser, renamed: dict[str, str]) -> None:
    """Refuse each old flag of `parser` ({old: new}) with a one-line hint, exit 2 (an exact old flag also wins
    over argparse's prefix matching, which would otherwise take `--out` for `--output-dir`)."""
    for old, new in renamed.items():
        parser.add_argument(old, action=_Renamed, new=new)


def dashed_flags(argv: list[str]) -> list[str]:
    """`--model_name_or_path` -> `--model-name-or-path`: like TRL's (HfArgumentParser's) flags, ours take `_` and
    `-` alike, so a flag copied from a TRL command works. Values and everything after `--` are left alone."""
    out = list(argv)
    for index, token in enumerate(out):
        if token == "--":
            break
        if token.startswith("--"):
            name, sep, value = token.partition("=")
            out[index] = name.replace("_", "-") + sep + value
    return out


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the `only` subcommand's module is imported (torch-heavy modules load lazily)."""
    parser = argparse.ArgumentParser(
        prog="peft-diversity",
        description="Possibility Exploration Fine-Tuning (PoExFT): diverse LLM outputs at the latency of one.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text, add_help=name != "train")
        if name == only:
            module = importlib.import_module(module_name)
            getattr(module, ARGUMENT_SETTERS.get(name, "add_arguments"))(sub_parser)
            sub_parser.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command != "train":  # train's TrlParser takes both spellings itself
        argv = dashed_flags(argv)
    parser = build_parser(only=command if command in SUBCOMMANDS else None)
    args, rest = parser.parse_known_args(argv)
    if args.command == "train":
        args.train_argv = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    from peft_diversity.errors import PeftDiversityError

    setup_logging()
    try:
        return int(args._module.run(args) or 0)
    except PeftDiversityError as err:  # bad input: one clear line, no traceback from deep inside
        print(f"peft-diversity {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
