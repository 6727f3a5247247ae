"""Maintainer script: print the bundled data's statistics, or refresh the table in peft_diversity/data/README.md.

python scripts/refresh_data_card.py            # print
python scripts/refresh_data_card.py --write    # refresh the card's table
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from peft_diversity.atomic import atomic_write_text
from peft_diversity.data import BUNDLED, BUNDLED_DIR, load_one_to_many
from peft_diversity.datacard import dataset_stats

CARD = BUNDLED_DIR / "README.md"
BEGIN, END = "<!-- stats:begin -->", "<!-- stats:end -->"


def bundled_table(embedder: Any = None) -> str:
    rows = []
    for name in BUNDLED:
        for split in ("train", "test"):
            stats = dataset_stats(load_one_to_many(f"builtin:{name}", split=split), embedder)
            rows.append((f"{name}/{split}", stats))
    keys = list(rows[0][1])
    lines = [
        "| split | " + " | ".join(k.replace("_", " ") for k in keys) + " |",
        "|---|" + "---:|" * len(keys),
    ]
    lines += [f"| {name} | " + " | ".join(str(s[k]) for k in keys) + " |" for name, s in rows]
    return "\n".join(lines)


def write_card_table(table: str, card: Path = CARD) -> None:
    text = card.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise ValueError(f"{card} has no {BEGIN} … {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    atomic_write_text(card, f"{head}{BEGIN}\n{table}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help=f"update the table in {CARD}")
    args = parser.parse_args()
    table = bundled_table()
    print(table)
    if args.write:
        write_card_table(table)


if __name__ == "__main__":
    main()
