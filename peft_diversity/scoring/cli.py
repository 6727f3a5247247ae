"""``peft-diversity score responses.jsonl``: every metric per (model, decoder), as a table and JSON."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from peft_diversity.atomic import check_output, output_errors
from peft_diversity.cli import command_parser
from peft_diversity.errors import PeftDiversityError, ScoringInputError
from peft_diversity.jsonl import write_json

from .bleu import SMOOTHINGS
from .embeddings import load_embedder
from .judges import make_judge
from .report import (
    EMBEDDING_METRICS,
    KNOWN_METRICS,
    METRICS,
    format_results_table,
    load_responses,
    score_rows,
)

if TYPE_CHECKING:
    from transformers import HfArgumentParser


@dataclass
class ScoreArguments:
    """Arguments of `peft-diversity score` (each field is a flag, `--a_b` or `--a-b`, and a `--config` key).

    The responses file may also be given as the first positional argument (`peft-diversity score FILE`)."""

    responses: Path | None = field(
        default=None,
        metadata={"help": 'JSONL to score: {"context", "responses": [...], "model"?, "decoder"?} per line.'},
    )
    output: Path | None = field(default=None, metadata={"help": "Write the scores as JSON here."})
    metrics: list[str] = field(
        default_factory=lambda: list(METRICS),
        metadata={"help": "Metrics to compute.", "choices": KNOWN_METRICS},
    )
    embedder: str | None = field(
        default=None,
        metadata={"help": "SentenceTransformer path/id (default: the bundled all-MiniLM-L6-v2)."},
    )
    max_order: int = field(default=4, metadata={"help": "Self-BLEU's largest n-gram order."})
    smoothing: str = field(
        default="method1", metadata={"help": "Self-BLEU smoothing.", "choices": SMOOTHINGS}
    )
    batch_size: int = field(default=128, metadata={"help": "Embedding batch size."})
    judge_model: str | None = field(
        default=None,
        metadata={"help": "Coherence judge: a local causal LM path/id, or the endpoint's model name."},
    )
    base_url: str | None = field(
        default=None, metadata={"help": "OpenAI-compatible base URL (with /v1) of the judge."}
    )
    api_key_env: str = field(
        default="OPENAI_API_KEY", metadata={"help": "Environment variable holding the judge's key."}
    )
    reference_model: str | None = field(
        default=None,
        metadata={
            "help": "likelihood_coherence's reference causal LM: id, path or builtin: "
            "(default builtin:smollm2-135m-instruct)."
        },
    )
    task: str = field(
        default="dialogue",
        metadata={"help": "Task wording of likelihood_coherence's prompt: dialogue | story."},
    )
    check_coherence: str | None = field(
        default=None,
        metadata={
            "metavar": "DATA",
            "help": "Instead of scoring: validate likelihood_coherence on one-to-many DATA (e.g. builtin:story): own "
            "human reply vs another context's, and vs a parrot of the context; every variant, with bootstrap intervals.",
        },
    )
    split: str = field(default="test", metadata={"help": "Split of --check-coherence DATA."})
    num_candidates: int | None = field(
        default=None, metadata={"help": "--check-coherence: own replies per context (default all)."}
    )
    seed: int = field(
        default=0, metadata={"help": "--check-coherence: seed of the shuffles and the bootstrap."}
    )
    num_contexts: int | None = field(
        default=None, metadata={"help": "--check-coherence: the first N contexts only (default all)."}
    )

    def __post_init__(self) -> None:
        if self.responses is not None:
            self.responses = Path(self.responses)
        for name in ("max_order", "batch_size"):  # before any file is read or model loaded
            if getattr(self, name) < 1:
                raise ScoringInputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")


# issue 22: an endpoint is --base-url / --api-key-env in every subcommand
RENAMED = {"--judge-base-url": "--base-url", "--judge-api-key-env": "--api-key-env"}


def make_parser(prog: str | None = None) -> HfArgumentParser:
    """The parser of `peft-diversity score`: the dataclass's flags plus the responses file as a positional."""
    parser = command_parser(
        ScoreArguments,
        prog=prog,
        description="Score a responses.jsonl file with every diversity metric, per (model, decoder).",
        renamed=RENAMED,
    )
    # the same field as --responses; SUPPRESS leaves the flag's value (or the YAML's) when no file is given here.
    # No `type`: argparse would convert the SUPPRESS marker itself; ScoreArguments makes the value a Path.
    parser.add_argument(
        "responses",
        nargs="?",
        default=argparse.SUPPRESS,
        metavar="RESPONSES",
        help="= --responses (before the flags, or after `--`: --metrics takes every word after it)",
    )
    return parser


def _judge(args: ScoreArguments):
    if args.base_url and not args.judge_model:
        raise PeftDiversityError("--base-url needs --judge-model")
    return make_judge(args.judge_model, args.base_url, api_key_env=args.api_key_env)


def check_embedder_path(name: str) -> None:
    """A ``--embedder`` that names a local path must be a folder (cheap; before the responses are read)."""
    path = Path(name).expanduser()
    if path.exists() and not path.is_dir():
        raise ScoringInputError(f"--embedder {name}: a file, not a SentenceTransformer folder")
    if not path.exists() and (name.startswith((".", "/", "~")) or name.count("/") > 1):
        raise ScoringInputError(f"--embedder {name}: no such folder")


def _load_embedder(args: ScoreArguments):
    """The ``--embedder`` loaded before any scoring: a bad one is one line, not a sentence-transformers traceback
    half-way through (None: the default, loaded by the metrics)."""
    if args.embedder is None or not set(args.metrics) & EMBEDDING_METRICS:
        return args.embedder
    try:
        return load_embedder(
            str(Path(args.embedder).expanduser())
            if Path(args.embedder).expanduser().exists()
            else args.embedder
        )
    except (OSError, ValueError) as err:
        first = " ".join(str(err).strip().splitlines()[0].split()) if str(err).strip() else type(err).__name__
        raise ScoringInputError(
            f"--embedder {args.embedder}: cannot load a SentenceTransformer ({first})"
        ) from None


def run(args: ScoreArguments) -> int:
    """Score ``args.responses``; print a markdown table; write JSON to ``args.output``. Returns 0."""
    if args.output:
        check_output(args.output, "--output", inputs=[args.responses])
    if args.check_coherence:
        return run_coherence_check(args)
    if args.responses is None:
        raise PeftDiversityError("score needs a responses.jsonl file (or --check-coherence DATA)")
    if args.embedder is not None:
        check_embedder_path(args.embedder)
    rows = load_responses(args.responses)
    results = score_rows(
        rows,
        metrics=args.metrics,
        embedder=_load_embedder(args),
        judge=_judge(args),
        max_order=args.max_order,
        smoothing=args.smoothing,
        batch_size=args.batch_size,
        reference_model=args.reference_model,
        template=args.task,
    )
    print(format_results_table(results, all_columns=True))
    payload = {"input": str(args.responses), "metrics": list(args.metrics), "groups": results}
    _write_output(args.output, payload)
    return 0


def run_coherence_check(args: ScoreArguments) -> int:
    """``score --check-coherence DATA``: `likelihood.check_likelihood_coherence`, printed as a table."""
    import time

    from peft_diversity.data import load_one_to_many

    from .likelihood import check_likelihood_coherence, format_check_table

    for flag, value in (("--num-candidates", args.num_candidates), ("--num-contexts", args.num_contexts)):
        if value is not None and value < 1:
            raise PeftDiversityError(f"{flag} must be >= 1, got {value}")
    records = load_one_to_many(args.check_coherence, split=args.split)[: args.num_contexts]
    start = time.perf_counter()
    result = check_likelihood_coherence(
        records, args.reference_model, template=args.task, num_candidates=args.num_candidates, seed=args.seed
    )
    result.update(
        data=args.check_coherence,
        split=args.split,
        task=args.task,
        reference_model=args.reference_model or "builtin:smollm2-135m-instruct",
        wall_time_s=round(time.perf_counter() - start, 1),
    )
    print(format_check_table(result))
    _write_output(args.output, result)
    return 0


def _write_output(path: Path | None, payload: dict) -> None:
    if path:
        with output_errors("--output", path):
            write_json(path, payload)
        print(f"wrote {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """`python -m peft_diversity.scoring.cli`: the same path as `peft-diversity score` (logging, flags, errors)."""
    from peft_diversity.cli import main as cli_main

    return cli_main(["score", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
