"""``peft-diversity score responses.jsonl``: every metric per (model, decoder), as a table and JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from peft_diversity.atomic import check_output, output_errors
from peft_diversity.cli import reject_renamed
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``score`` subcommand's arguments to ``parser``."""
    parser.add_argument(
        "responses", type=Path, nargs="?", help='JSONL: {"context", "responses": [...], "model"?, "decoder"?}'
    )
    parser.add_argument("--output", type=Path, default=None, help="write the scores as JSON here")
    parser.add_argument(
        "--metrics", nargs="+", choices=KNOWN_METRICS, default=list(METRICS), help="metrics to compute"
    )
    parser.add_argument(
        "--embedder", default=None, help="SentenceTransformer path/id (default: bundled MiniLM)"
    )
    parser.add_argument("--max-order", type=int, default=4, help="self-BLEU max n-gram order")
    parser.add_argument("--smoothing", choices=SMOOTHINGS, default="method1", help="self-BLEU smoothing")
    parser.add_argument("--batch-size", type=int, default=128, help="embedding batch size")
    parser.add_argument(
        "--judge-model", default=None, help="coherence judge: local causal LM path, or endpoint model"
    )
    parser.add_argument(
        "--base-url", default=None, help="OpenAI-compatible base URL (with /v1) for the judge"
    )
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY", help="env var holding the judge API key")
    parser.add_argument(
        "--reference-model",
        default=None,
        help="likelihood_coherence's reference causal LM: id, path or builtin: (default builtin:smollm2-135m-instruct)",
    )
    parser.add_argument(
        "--task", default="dialogue", help="task wording of likelihood_coherence's prompt: dialogue | story"
    )
    parser.add_argument(
        "--check-coherence",
        default=None,
        metavar="DATA",
        help="instead of scoring: validate likelihood_coherence on one-to-many DATA (e.g. builtin:story): own human "
        "reply vs another context's, and vs a parrot of the context; every variant, with bootstrap intervals",
    )
    parser.add_argument("--split", default="test", help="split of --check-coherence DATA (default test)")
    parser.add_argument(
        "--num-candidates",
        type=int,
        default=None,
        help="--check-coherence: own replies per context (default all)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="--check-coherence: seed of the shuffles and bootstrap"
    )
    parser.add_argument(
        "--num-contexts",
        type=int,
        default=None,
        help="--check-coherence: the first N contexts only (default all)",
    )
    # issue 22: an endpoint is --base-url / --api-key-env in every subcommand
    reject_renamed(parser, {"--judge-base-url": "--base-url", "--judge-api-key-env": "--api-key-env"})


def _judge(args: argparse.Namespace):
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


def _load_embedder(args: argparse.Namespace):
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


def run(args: argparse.Namespace) -> int:
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


def run_coherence_check(args: argparse.Namespace) -> int:
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
