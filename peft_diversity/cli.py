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
import functools
import importlib
import logging
import os
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

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
    help from the field's metadata). A TrlParser also reads `--config FILE.yaml` (a key per field, see
    `parse_command`); a command whose dataclass owns a `config` field (the experiment YAML) gets a plain
    HfArgumentParser. Old flag spellings in `renamed` ({old: new}) are refused with a one-line hint; every
    argparse error is one line too."""
    if config_flag:
        description += (
            " --config FILE.yaml sets any of these flags (a key per flag, `a_b: value`); flags override it."
        )
    parser = parser_class(config_flag)(
        arguments, prog=prog, description=description, formatter_class=_HelpFormatter
    )
    reject_renamed(parser, renamed or {})
    return parser


class _OneLineErrors:
    """argparse's errors (a missing required flag, a bad value or choice) as one line, like every other error of
    the command line, instead of a usage block; `--help` still shows the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


@functools.cache
def parser_class(config_flag: bool = True) -> type:
    """TrlParser (or, without `--config`, HfArgumentParser) with one-line errors (imported on first use: the
    top-level parser stays light)."""
    from transformers import HfArgumentParser
    from trl import TrlParser

    base = TrlParser if config_flag else HfArgumentParser
    return type(base.__name__, (_OneLineErrors, base), {"__module__": __name__})


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
        if isinstance(action, argparse._StoreFalseAction):  # HfArgumentParser copies the positive flag's help
            return f"= --{action.dest} false."
        if action.required or action.default is None:
            return action.help
        return super()._get_help_string(action)


def parse_command(parser: HfArgumentParser, argv: list[str]) -> tuple[Any, ...]:
    """The parser's dataclasses from `argv`, every problem one CommandLineError line naming the file, key or flag.

    With a TrlParser, `--config FILE.yaml` (or `--config=FILE.yaml`) sets defaults, a flag given after it winning.
    Each key must be a flag (an old name gets its rename hint), and each value is checked as the flag's would be
    (type, choices; a single value for a list flag is a list of one), before any default is set. An `env:` mapping
    sets environment variables, as in TRL. A value a field refuses (its `__post_init__`) or a stray argument is
    one line too."""
    from trl import TrlParser

    from peft_diversity.errors import CommandLineError

    if isinstance(parser, TrlParser):
        argv, path = _split_config_flag(argv)
        if path is not None:
            _apply_config(parser, _read_config(path), path)
    try:
        *parsed, rest = parser.parse_args_into_dataclasses(
            argv, return_remaining_strings=True, look_for_args_file=False
        )
    except (ValueError, TypeError) as err:  # a field refused its value; a stray flag is the likelier cause
        _check_no_stray(parser, argv)
        raise CommandLineError(" ".join(str(err).split())) from None
    _check_no_stray(parser, rest, parsed=True)
    return tuple(parsed)


def _check_no_stray(parser: HfArgumentParser, argv: list[str], parsed: bool = False) -> None:
    """A flag no field owns is one line (a misspelt flag would otherwise surface as whatever it left unset)."""
    from peft_diversity.errors import CommandLineError

    if not parsed:
        _, argv = parser.parse_known_args(argv)
    if argv:
        raise CommandLineError(f"unrecognized arguments: {' '.join(argv)} (see `{parser.prog} --help`)")


def _split_config_flag(argv: list[str]) -> tuple[list[str], Path | None]:
    """argv without `--config PATH` / `--config=PATH`, and the path (None when not given; given twice: an error)."""
    from peft_diversity.errors import CommandLineError

    rest, paths = [], []
    tokens = iter(argv)
    for token in tokens:
        if token == "--":
            rest += [token, *tokens]
        elif token == "--config":
            value = next(tokens, None)
            if value is None or value.startswith("--"):
                raise CommandLineError("--config needs a YAML file")
            paths.append(value)
        elif token.startswith("--config="):
            paths.append(token.partition("=")[2])
        else:
            rest.append(token)
    if len(paths) > 1:
        raise CommandLineError(f"--config given {len(paths)} times ({', '.join(paths)}): give one file")
    return rest, Path(paths[0]) if paths else None


def _read_config(path: Path) -> dict[str, Any]:
    """A `--config` file: a YAML mapping (its `env:` mapping applied to os.environ and removed, as TRL does; an
    empty file sets nothing)."""
    import yaml

    from peft_diversity.errors import CommandLineError

    if not path.is_file():
        raise CommandLineError(f"--config: file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise CommandLineError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise CommandLineError(f"{path}: a config file must be a mapping of setting: value")
    env = data.pop("env", None) or {}
    if not isinstance(env, dict) or any(isinstance(v, dict | list) for v in env.values()):
        raise CommandLineError(f"{path}: env: must be a mapping of variable: plain value")
    os.environ.update({str(key): str(value) for key, value in env.items()})
    return data


def _apply_config(parser: HfArgumentParser, config: dict[str, Any], path: Path) -> None:
    """Check every key and value of a `--config` file against the parser's flags, then make them its defaults.
    A key is spelt as its flag may be (`a_b` or `a-b`)."""
    from peft_diversity.errors import CommandLineError

    flags = {
        action.dest: action
        for action in parser._actions
        if action.option_strings and isinstance(action, argparse._StoreAction)
    }
    renamed = {
        action.option_strings[0].lstrip("-").replace("-", "_"): action.new.lstrip("-").replace("-", "_")
        for action in parser._actions
        if isinstance(action, _Renamed)
    }
    settings: dict[str, Any] = {}
    for key, value in config.items():
        name = str(key).replace("-", "_")
        if name in settings:
            raise CommandLineError(f"{path}: {name} is given twice (as {name} and {name.replace('_', '-')})")
        settings[name] = value
    unknown = [key for key in settings if key not in flags]
    if unknown:
        hints = [f"{key} was renamed {renamed[key]}" for key in unknown if key in renamed]
        raise CommandLineError(
            f"{path}: unknown key(s) {', '.join(unknown)} "
            + (
                f"({'; '.join(hints)})"
                if hints
                else f"(misspelled or not a setting; see `{parser.prog} --help`)"
            )
        )
    annotations = _annotations(parser)
    parser.set_defaults_with_config(
        **{
            key: _config_value(flags[key], value, annotations.get(key), f"{path}: {key}")
            for key, value in settings.items()
        }
    )


def _annotations(parser: HfArgumentParser) -> dict[str, Any]:
    """Each field's declared type, across the parser's dataclasses (what a YAML value may be beyond the flag's
    string: a mapping for TRL's `*_kwargs`, a bool for a str-or-bool setting)."""
    import typing

    return {
        name: hint for dtype in parser.dataclass_types for name, hint in typing.get_type_hints(dtype).items()
    }


def _admits(annotation: Any, kind: type) -> bool:
    """Whether the declared type (or a member of its union) is `kind` (dict, list, bool) or a generic of it."""
    import typing

    members = (
        typing.get_args(annotation)
        if typing.get_origin(annotation) in (typing.Union, types.UnionType)
        else ()
    )
    return any(m is kind or typing.get_origin(m) is kind for m in (*members, annotation))


def _config_value(action: argparse.Action, value: Any, annotation: Any, where: str) -> Any:
    """A YAML value converted and checked as the flag would convert and check it on the command line."""
    from peft_diversity.errors import CommandLineError

    if value is None:
        if action.required or action.default is not None:  # a flag whose value cannot be "unset"
            raise CommandLineError(f"{where}: needs a value (null is not one)")
        return None
    if action.nargs == "+":
        items = value if isinstance(value, list) else [value]
        if not items:
            raise CommandLineError(f"{where}: needs at least one value")
        return [_convert(action, item, None, where) for item in items]
    return _convert(action, value, annotation, where)


def _convert(action: argparse.Action, value: Any, annotation: Any, where: str) -> Any:
    from peft_diversity.errors import CommandLineError

    if isinstance(value, dict | list):
        if _admits(
            annotation, type(value)
        ):  # a mapping-valued setting (TRL's *_kwargs): its dataclass checks it
            return value
        raise CommandLineError(f"{where}: expected a single value, got {type(value).__name__} {value!r}")
    if isinstance(value, bool) and _admits(annotation, bool) and action.type in (None, str):
        return value  # a str-or-bool setting, kept as TRL keeps it
    if isinstance(value, bool):
        try:
            converted = action.type(str(value)) if action.type not in (None, str) else None
        except (ValueError, TypeError, argparse.ArgumentTypeError):
            converted = None
        if not isinstance(converted, bool):  # a true/false (or YAML's yes/no/on/off) where it is no value
            raise CommandLineError(f"{where}: {str(value).lower()} is not a value of this setting")
        value = converted
    elif action.type is not None:
        try:
            value = action.type(value if isinstance(value, str) else str(value))
        except (ValueError, TypeError, argparse.ArgumentTypeError):
            raise CommandLineError(f"{where}: invalid value {value!r}") from None
    if action.choices is not None and value not in action.choices:
        raise CommandLineError(f"{where}: {value!r} is not one of {list(action.choices)}")
    return value


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
    from peft_diversity.errors import PeftDiversityError

    setup_logging()
    module = importlib.import_module(SUBCOMMANDS[command][0])
    try:
        try:
            arguments = parse_command(parser, rest)
        except SystemExit as stop:  # --help: printed, exit 0 (a caller of main() gets the code back)
            if stop.code:
                raise
            return 0
        return int(module.run(*arguments) or 0)
    except PeftDiversityError as err:  # bad input: one clear line, no traceback from deep inside
        print(f"peft-diversity {command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    # `python -m peft_diversity.cli`: run the imported module's main, not this `__main__` copy, whose classes
    # (_Renamed, the parser classes) would differ from those the subcommand modules import
    from peft_diversity.cli import main as package_main

    sys.exit(package_main())
