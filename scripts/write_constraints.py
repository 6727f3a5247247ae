"""Write a pip constraints file from what is installed in THIS interpreter's environment: one `name==version`
line per distribution, sorted, nothing else (no URLs, local paths, `@` direct references or `+local` tags),
so the file installs on any machine that reaches a package index.

    .venv-latest/bin/python scripts/write_constraints.py constraints.txt     # after a green `make test-latest`

`pip freeze` is not used: it writes `name @ file:///…` for anything installed from a local wheel, which only
exists on the machine that ran it. The version in each distribution's metadata is what pip resolves by name.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from peft_diversity.atomic import atomic_write_text

# Installers and the project itself: not constraints of the project's environment
SKIP = {"pip", "setuptools", "wheel", "peft-diversity"}
PIN_LINE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9][A-Za-z0-9.!_-]*$")
HEADER = (
    "# The versions the test suite passed with (pip constraints; make install uses them).\n"
    "# Written by scripts/write_constraints.py (name==version only; `make constraints` after a green `make test-latest`).\n"
)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pin_lines(distributions: Iterable[tuple[str, str]]) -> list[str]:
    """`name==version` for each (name, version), `+local` tags dropped, installers and the project left out,
    one line per name (the first seen wins, as Python's import system does), sorted case-insensitively."""
    pins: dict[str, str] = {}
    for name, version in distributions:
        key = normalize(name)
        if key in SKIP or key in pins:
            continue
        line = f"{name}=={version.split('+', 1)[0]}"
        if not PIN_LINE.match(line):
            raise ValueError(f"cannot write a plain pin for distribution {name!r} version {version!r}")
        pins[key] = line
    return [pins[key] for key in sorted(pins)]


def installed() -> list[tuple[str, str]]:
    # sys.path order: a distribution shadowed by an earlier one of the same name is not the one in use
    return [(d.metadata["Name"], d.version) for d in md.distributions() if d.metadata["Name"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path, help="the constraints file to write (atomically)")
    args = parser.parse_args(argv)
    text = HEADER + "".join(f"{line}\n" for line in pin_lines(installed()))
    atomic_write_text(args.output, text)
    print(f"wrote {args.output}: {text.count('==')} pins", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
