"""Maintainer script: draw a seeded sample of real interview answers from `bias` transcripts, to label by hand.

    python scripts/sample_persona_answers.py runs/bias/transcripts/*.jsonl --per-file 20 --output answers.jsonl

Each line holds the answer (`text`), the attribute its question asked about, where it came from (`source`,
`transcript`, `turn`) and an empty `label` to fill in with a category of `persona_categories.json` (or
"unknown"), plus `flags` (e.g. ["refusal"]). The filled file is scored with
`peft-diversity bias --check-extractor --labelled answers.jsonl`. Keep it apart from the shipped labelled set:
its point is to measure the rules on answers they were not written against.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from peft_diversity.atomic import atomic_write_text
from peft_diversity.cli import reject_renamed
from peft_diversity.persona.transcript import RESPONDENT, read_transcripts


def sample_answers(path: Path, count: int, rng: random.Random) -> list[dict]:
    """`count` respondent turns of one transcripts file, drawn without replacement."""
    answers = [
        {"source": path.name, "transcript": t.id, "turn": i, "attribute": turn.attribute, "text": turn.text}
        for t in read_transcripts(path)
        for i, turn in enumerate(t.turns)
        if turn.speaker == RESPONDENT and turn.attribute not in (None, "recap")
    ]
    return rng.sample(answers, min(count, len(answers)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("transcripts", nargs="+", type=Path)
    parser.add_argument("--per-file", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, required=True)
    reject_renamed(parser, {"--out": "--output"})  # one flag name per concept (docs/architecture.md)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows = [row for path in args.transcripts for row in sample_answers(path, args.per_file, rng)]
    lines = [json.dumps({**row, "label": "", "flags": []}, ensure_ascii=False) for row in rows]
    atomic_write_text(args.output, "\n".join(lines) + "\n")
    print(f"wrote {len(rows)} answers to {args.output}")


if __name__ == "__main__":
    main()
