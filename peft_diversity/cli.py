"""`peft-diversity` command line: one subcommand per job, each a dataclass of arguments parsed by a TrlParser.

Each subcommand module exposes `make_parser(prog) -> TrlParser` (or an HfArgumentParser where the command's own
`--config` is its content, as `experiment`'s is) and `run(*arguments) -> int`, as TRL's `trl <command>` does with
its scripts. Every flag is a field of the module's arguments dataclass, so `--config FILE.yaml` sets any of them
(a key per field) and a flag given after it overrides; `train` parses TRL's own dataclasses, so `peft-diversity
train --config X.yaml` == `recipes/sft_peft.py --config X.yaml`. This module owns what every subcommand shares: the
logging set-up, the flag spelling (`--a_b` is `--a-b`, as in TRL's parser), the refusal of renamed flags (the table
of names: docs/architecture.md, "Command-line flags") and turning a bad flag or YAML into one line.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import HfArgumentParser

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
# subcommands sharing a module use a differently named parser factory
PARSER_FACTORIES = {"demo": "make_demo_parser"}
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
        parser.exit(2, f"{parser.prog}: {self.option_strings[0]} was renamed {self.new}\n")


def reject_renamed(parser: argparse.ArgumentParser, renamed: dict[str, str]) -> None:
    """Refuse each old flag of `parser` ({old: new}), spelt with `-` or `_` as every flag may be, with a one-line
    hint, exit 2 (an exact old flag also wins over argparse's prefix matching, which would otherwise take `--out`
    for `--output-dir`)."""
    for old, new in renamed.items():
        spellings = dict.fromkeys([old, old[:2] + old[2:].replace("-", "_")])
        parser.add_argument(*spellings, action=_Renamed, new=new)


def command_parser(
    arguments: type,
    *,
    prog: str | None,
    description: str,
    renamed: dict[str, str] | None = None,
    config_flag: bool = True,
) -> HfArgumentParser:
    """The parser of one subcommand: every field of the `arguments` dataclass is a flag (`--a_b` and `--a-b`;
    help from the field's metadata). A TrlParser also reads `--config FILE.yaml` (a key per field); a command whose
    dataclass owns a `config` field (the experiment YAML) gets a plain HfArgumentParser. Old flag spellings in
    `renamed` ({old: new}) are refused with a one-line hint."""
    from transformers import HfArgumentParser
    from trl import TrlParser

    if config_flag:
        description += (
            " --config FILE.yaml sets any of these flags (a key per flag, `a_b: value`); flags override it."
        )
    parser = (TrlParser if config_flag else HfArgumentParser)(
        arguments, prog=prog, description=description, formatter_class=_HelpFormatter
    )
    reject_renamed(parser, renamed or {})
    return parser


def given_flags(arguments: Any, *names: str) -> list[str]:
    """The flags among `names` (field names) that `arguments` sets (not None), spelt as a user types them."""
    return ["--" + name.replace("_", "-") for name in names if getattr(arguments, name) is not None]


def check_one_of(arguments: Any, *names: str, error: type[Exception]) -> None:
    """Exactly one of the fields `names` must be set: the `__post_init__` check of a command whose flags are
    alternatives (argparse's mutually exclusive group, for a dataclass that a YAML may fill as well)."""
    given = given_flags(arguments, *names)
    if len(given) != 1:
        flags = [f"--{name.replace('_', '-')}" for name in names]
        raise error(
            f"give exactly one of {', '.join(flags[:-1])} or {flags[-1]} (got {', '.join(given) or 'none'})"
        )


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default where it is one: not for required flags, unset (None) ones, or `--no-x`."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default is None or isinstance(action, argparse._StoreFalseAction):
            return action.help
        return super()._get_help_string(action)


def parse_command(parser: HfArgumentParser, argv: list[str]) -> tuple[Any, ...]:
    """The parser's dataclasses from `argv`. A missing or malformed `--config` file, a YAML key that is no flag, a
    value a field refuses (its `__post_init__` raising ValueError) or a stray argument is one CommandLineError line
    naming the file, key or flag, never a traceback from the parser. argparse's own errors (a missing required flag,
    a value outside `choices`) keep argparse's usage line and exit 2."""
    from trl import TrlParser

    from peft_diversity.errors import CommandLineError

    renamed = {
        a.option_strings[0].lstrip("-").replace("-", "_"): a.new
        for a in parser._actions
        if isinstance(a, _Renamed)
    }
    if isinstance(parser, TrlParser):
        _check_config_file(argv)
    try:
        if isinstance(parser, TrlParser):
            *parsed, from_config, rest = parser.parse_args_and_config(
                argv, return_remaining_strings=True, separate_remaining_strings=True
            )
        else:
            *parsed, rest = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True)
            from_config = []
    except (ValueError, TypeError) as err:  # a field refused its value; a stray flag is the likelier cause
        _check_no_stray(parser, argv)
        raise CommandLineError(" ".join(str(err).split())) from None
    unknown = [key[2:] for key in from_config[::2]]
    if unknown:
        hints = [
            f"{key} was renamed {renamed[key].lstrip('-').replace('-', '_')}"
            for key in unknown
            if key in renamed
        ]
        raise CommandLineError(
            f"--config: unknown key(s) {', '.join(unknown)}"
            + (
                f" ({'; '.join(hints)})"
                if hints
                else f" (misspelled or not a setting; see `{parser.prog} --help`)"
            )
        )
    _check_no_stray(parser, rest, parsed=True)
    return tuple(parsed)


def _check_no_stray(parser: HfArgumentParser, argv: list[str], parsed: bool = False) -> None:
    """A flag no field owns is one line (a misspelt flag would otherwise surface as whatever it left unset)."""
    from peft_diversity.errors import CommandLineError

    if not parsed:
        if "--config" in argv:  # TrlParser's own flag, with its value
            index = argv.index("--config")
            argv = argv[:index] + argv[index + 2 :]
        _, argv = parser.parse_known_args(argv)
    if argv:
        raise CommandLineError(f"unrecognized arguments: {' '.join(argv)} (see `{parser.prog} --help`)")


def _check_config_file(argv: list[str]) -> None:
    """`--config PATH` must name a readable YAML mapping (TrlParser would raise a bare OSError / YAMLError)."""
    import yaml

    from peft_diversity.errors import CommandLineError

    if "--config" not in argv:
        return
    index = argv.index("--config") + 1
    path = Path(argv[index]) if index < len(argv) else None
    if path is None or not path.is_file():
        raise CommandLineError(f"--config: file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise CommandLineError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(data, dict):
        raise CommandLineError(f"{path}: a config file must be a mapping of setting: value")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: the subcommands' names and help. Each subcommand's flags belong to its own parser
    (`make_parser` in its module, imported only when that subcommand runs: torch-heavy modules load lazily)."""
    parser = argparse.ArgumentParser(
        prog="peft-diversity",
        description="Possibility Exploration Fine-Tuning (PoExFT): diverse LLM outputs at the latency of one.",
        epilog="`peft-diversity COMMAND --help` lists a command's flags.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def make_command_parser(command: str) -> HfArgumentParser:
    """The parser of `command` (a key of SUBCOMMANDS), from its module."""
    module = importlib.import_module(SUBCOMMANDS[command][0])
    return getattr(module, PARSER_FACTORIES.get(command, "make_parser"))(prog=f"peft-diversity {command}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = build_parser()
    if not argv or argv[0] not in SUBCOMMANDS:
        top.parse_args(argv[:1] or argv)  # --help, or a usage line naming the commands (exit 2)
        return 2
    command, rest = argv[0], argv[1:]
    parser = make_command_parser(command)
    if {"-h", "--help"} & set(rest[: rest.index("--")] if "--" in rest else rest):
        parser.print_help()
        return 0
    from peft_diversity.errors import PeftDiversityError

    setup_logging()
    module = importlib.import_module(SUBCOMMANDS[command][0])
    try:
        arguments = parse_command(parser, rest)
        return int(module.run(*arguments) or 0)
    except PeftDiversityError as err:  # bad input: one clear line, no traceback from deep inside
        print(f"peft-diversity {command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
