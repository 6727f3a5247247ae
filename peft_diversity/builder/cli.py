"""`peft-diversity build-data`: one-to-many training data from your own prompts and a teacher model.

    peft-diversity build-data --input prompts.jsonl --output-dir data/my-task --num-candidates 5   # offline teacher
    peft-diversity build-data --input prompts.csv --column question \\
        --model-name-or-path Qwen/Qwen2.5-1.5B-Instruct --output-dir out
    peft-diversity build-data --input prompts.parquet --model-name-or-path gpt-4o-mini \\
        --base-url https://api.openai.com/v1 --api-key-env OPENAI_API_KEY --requests-per-minute 300 --output-dir out
    peft-diversity build-data --report-only out                                                # rewrite the report

Rerunning the same command resumes an interrupted build. Wired into `peft_diversity/cli.py` through
`add_arguments` and `run`; the logic lives in `peft_diversity/builder.py`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from peft_diversity.atomic import check_output
from peft_diversity.builder.build import BuildSettings, build_config, build_dataset
from peft_diversity.builder.inputs import InputItem, display_name, read_inputs
from peft_diversity.builder.report import quality_report
from peft_diversity.builder.teachers import LocalTeacher, OpenAITeacher, Sampling
from peft_diversity.chat import ChatError
from peft_diversity.cli import reject_renamed
from peft_diversity.errors import BuildError, DataValidationError
from peft_diversity.templates import PossibilityTemplate, TemplateError

DEFAULT_TEACHER = "builtin:minilm-decoder"
RENAMED = {
    "--output": "--output-dir",
    "--teacher": "--model-name-or-path",
    "-n": "--num-candidates",
}  # issue 22


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `peft-diversity build-data`."""
    io = parser.add_argument_group("input and output")
    io.add_argument(
        "--input",
        help="prompts: .jsonl, .csv or .parquet file, a dataset folder, or a Hub dataset id (owner/name)",
    )
    io.add_argument(
        "--column",
        help="column with the prompt text or (JSONL/Parquet/Hub) a list of dialogue turns; "
        "default: the first of context, prompt, text, input, question, instruction",
    )
    io.add_argument(
        "--id-column", help="column with record ids (default: 'id' when present, else line/row number)"
    )
    io.add_argument("--split", default="train", help="Hub dataset split (default: train)")
    io.add_argument("--output-dir", type=Path, help="output folder (train.jsonl, rejected.jsonl, reports)")
    io.add_argument("--limit", type=int, help="use only the first N input rows")
    io.add_argument(
        "--force",
        action="store_true",
        help="resume even though content settings or the inputs of finished records changed",
    )
    io.add_argument("--no-report", action="store_true", help="skip the quality report at the end")
    io.add_argument(
        "--report-only", type=Path, metavar="DIR", help="only (re)write the quality report of DIR"
    )

    teacher = parser.add_argument_group("teacher")
    teacher.add_argument(
        "--model-name-or-path",
        default=DEFAULT_TEACHER,
        help=f"the teacher: a local model (Hub id, folder, builtin:<name>) or, with --base-url, the endpoint's "
        f"model name (default: {DEFAULT_TEACHER})",
    )
    teacher.add_argument(
        "--base-url", help="OpenAI-compatible endpoint incl. version prefix, e.g. http://127.0.0.1:8000/v1"
    )
    teacher.add_argument("--api-key-env", default="OPENAI_API_KEY", help="env var holding the API key")
    teacher.add_argument("--requests-per-minute", type=float, help="client-side rate limit (HTTP teacher)")
    teacher.add_argument(
        "--concurrency",
        type=int,
        default=4,
        help="parallel requests (HTTP teacher, default 4; at most --batch-size)",
    )
    teacher.add_argument(
        "--http-max-retries",
        type=int,
        help="retries of one request on 429/5xx/timeouts (HTTP teacher, default 5)",
    )
    teacher.add_argument("--timeout", type=float, help="seconds per HTTP request (HTTP teacher, default 60)")
    teacher.add_argument("--dtype", default="auto", help="local teacher dtype (auto, float32, bfloat16, ...)")
    teacher.add_argument("--trust-remote-code", action="store_true")

    prompt = parser.add_argument_group("prompt")
    prompt.add_argument(
        "--task",
        choices=["dialogue", "story", "custom"],
        help="how inputs are presented (default: dialogue for turn lists, else the text as is)",
    )
    prompt.add_argument("--instruction", help="custom task wording with an {input} placeholder")
    prompt.add_argument("--system-prompt", help="system message for the teacher")
    prompt.add_argument(
        "--template",
        help="possibility_config.json (file or folder) to take the whole wording from "
        "(instead of --task/--instruction/--system-prompt)",
    )

    build = parser.add_argument_group("candidates")
    build.add_argument("--num-candidates", type=int, default=5, help="candidates per input (default 5)")
    build.add_argument(
        "--min-candidates",
        type=int,
        default=2,
        help="reject inputs with fewer valid candidates in the end (default 2)",
    )
    build.add_argument(
        "--max-retries",
        type=int,
        default=2,
        help="extra teacher calls for inputs with fewer than N valid candidates (default 2)",
    )
    build.add_argument(
        "--similarity-threshold",
        type=float,
        default=0.9,
        help="drop a candidate whose SBERT cosine with a kept sibling is above this (default 0.9)",
    )
    build.add_argument("--no-semantic-dedup", action="store_true", help="exact-text de-duplication only")
    build.add_argument(
        "--embedder", help="sentence-transformers model path (default all-MiniLM-L6-v2, offline)"
    )
    build.add_argument("--temperature", type=float, default=1.0, help="teacher temperature; retries add 0.2")
    build.add_argument("--max-new-tokens", type=int, default=64, help="per candidate (default 64)")
    build.add_argument("--seed", type=int, default=0, help="local teacher seed (retry i uses seed + i)")
    build.add_argument(
        "--batch-size",
        type=int,
        help="inputs per teacher round (default 8; HTTP teacher: at least --concurrency)",
    )
    build.add_argument(
        "--max-consecutive-failures",
        type=int,
        default=5,
        help="stop after this many inputs in a row fail at the teacher (default 5)",
    )
    reject_renamed(parser, RENAMED)


def run(args: argparse.Namespace) -> int:
    """0: every input has a record or a rejection; 1: some inputs are unfinished (teacher errors); 2: bad input."""
    from peft_diversity.errors import GenerationError

    try:
        if args.report_only is not None:
            check_output(args.report_only, "--report-only", folder=True)
            _print_report(quality_report(args.report_only, embedder=args.embedder))
            return 0
        return _build(args)
    except (BuildError, ChatError, DataValidationError, GenerationError, TemplateError, OSError) as err:
        print(f"peft-diversity build-data: {err}", file=sys.stderr)
        return 2


def _build(args: argparse.Namespace) -> int:
    if not args.input or args.output_dir is None:
        raise BuildError("--input and --output-dir are required (or --report-only DIR)")
    check_output(
        args.output_dir, "--output-dir", folder=True
    )  # before the inputs are read or a teacher loads
    items = read_inputs(args.input, column=args.column, id_column=args.id_column, split=args.split)
    if args.limit is not None:
        items = items[: max(0, args.limit)]
    if not items:
        raise BuildError(f"{args.input}: no input rows")
    template = make_template(args, items)
    if args.batch_size is None:  # an HTTP round sends at most one request per input of the batch
        args.batch_size = max(8, args.concurrency) if args.base_url else 8
    settings = BuildSettings(
        num_candidates=args.num_candidates,
        min_candidates=args.min_candidates,
        max_retries=args.max_retries,
        similarity_threshold=args.similarity_threshold,
        batch_size=args.batch_size,
        max_consecutive_failures=args.max_consecutive_failures,
    )
    settings.check()  # before a model is loaded
    teacher = make_teacher(args, template)
    embedder = _embedder(args)
    config = build_config(
        template,
        teacher,
        settings,
        semantic=embedder is not False,
        input=display_name(args.input),
        column=args.column,
        id_column=args.id_column,
        split=args.split,
        sampling=asdict(teacher.sampling),
    )
    summary = build_dataset(
        items,
        teacher,
        args.output_dir,
        template,
        settings,
        embedder=embedder,
        config=config,
        force=args.force,
    )
    rejected = ", ".join(f"{k} {v}" for k, v in summary.rejected.most_common()) or "none"
    print(
        f"# {args.output_dir}: {summary.kept} records written this run ({summary.shortfall} with fewer than "
        f"{settings.num_candidates} candidates), rejected: {rejected}, already done: {summary.already_done}, "
        f"{summary.wall_time_s:.1f} s",
        file=sys.stderr,
    )
    if not args.no_report:
        _print_report(quality_report(args.output_dir, embedder=args.embedder))
    if summary.unfinished:
        print(
            f"# {len(summary.unfinished)} inputs are unfinished (teacher errors); run the same command again to "
            "retry them",
            file=sys.stderr,
        )
        return 1
    return 0


def make_template(args: argparse.Namespace, items: list[InputItem]) -> PossibilityTemplate:
    """The wording shown to the teacher: --template, else --task/--instruction, else guessed from the inputs.

    Conflicting flags are errors, as in `peft-diversity generate`.
    """
    given = [
        flag
        for flag, value in (
            ("--task", args.task),
            ("--instruction", args.instruction),
            ("--system-prompt", args.system_prompt),
        )
        if value is not None
    ]
    if args.template:
        if given:
            raise BuildError(f"--template sets the whole wording: drop {', '.join(given)} or drop --template")
        from peft_diversity.templates import load_template

        return load_template(args.template)
    if args.instruction is not None and args.task not in (None, "custom"):
        raise BuildError(f"--instruction makes a custom task; drop --task {args.task} or use --task custom")
    task = args.task or ("custom" if args.instruction is not None else None)
    if task is None:
        first = next((item.source for item in items if item.problem is None), None)
        task = "dialogue" if isinstance(first, list) else "custom"
    instruction = args.instruction or ("{input}" if task == "custom" else None)
    return PossibilityTemplate(task=task, instruction=instruction, system_prompt=args.system_prompt)


def make_teacher(args: argparse.Namespace, template: PossibilityTemplate) -> Any:
    sampling = Sampling(temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=args.seed)
    http = {
        "max_retries": args.http_max_retries,
        "timeout": args.timeout,
        "requests_per_minute": args.requests_per_minute,
    }
    if args.base_url:
        from peft_diversity.chat import make_chat

        client = make_chat(
            args.model_name_or_path,
            base_url=args.base_url,
            api_key_env=args.api_key_env,
            concurrency=args.concurrency,
            **http,
        )
        return OpenAITeacher(client, template, sampling)
    flags = {
        "max_retries": "--http-max-retries",
        "timeout": "--timeout",
        "requests_per_minute": "--requests-per-minute",
    }
    given = [flags[key] for key, value in http.items() if value is not None]
    if given:  # a local teacher sends no requests
        raise BuildError(f"{', '.join(given)} apply to an HTTP teacher only (--base-url)")
    from peft_diversity.errors import ModelLoadError

    try:
        return LocalTeacher(
            args.model_name_or_path,
            template,
            sampling,
            batch_size=args.batch_size,
            dtype=args.dtype,
            trust_remote_code=args.trust_remote_code,
        )
    except (ModelLoadError, OSError) as err:
        raise BuildError(
            f"cannot load teacher model {args.model_name_or_path!r}: {err} (for an HTTP endpoint give --base-url)"
        ) from err


def _embedder(args: argparse.Namespace) -> Any:
    if getattr(args, "no_semantic_dedup", False):
        return False
    return args.embedder


def _print_report(report: dict[str, Any]) -> None:
    counts = report["records"]
    sims = report["within_record_cosine"]
    similarity = f", within-record cosine mean {sims['mean']}" if sims.get("count") else ""
    print(
        f"# quality report: {report['folder']}/quality_report.md — inputs {counts['inputs']}, kept {counts['kept']}"
        f", rejected {counts['rejected']}, unfinished {counts['unfinished']}{similarity}",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m peft_diversity.builder.cli`: the same path as `peft-diversity build-data` (logging, flags, errors)."""
    from peft_diversity.cli import main as cli_main

    return cli_main(["build-data", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
