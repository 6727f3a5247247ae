"""`peft-diversity build-data`: one-to-many training data from your own prompts and a teacher model.

    peft-diversity build-data --input prompts.jsonl --output-dir data/my-task --num-candidates 5   # offline teacher
    peft-diversity build-data --input prompts.csv --column question \\
        --model-name-or-path Qwen/Qwen2.5-1.5B-Instruct --output-dir out
    peft-diversity build-data --input prompts.parquet --model-name-or-path gpt-4o-mini \\
        --base-url https://api.openai.com/v1 --api-key-env OPENAI_API_KEY --requests-per-minute 300 --output-dir out
    peft-diversity build-data --report-only out                                                # rewrite the report

Rerunning the same command resumes an interrupted build. Wired into `peft_diversity/cli.py` through
`make_parser` and `run`; the logic lives in `peft_diversity/builder.py`.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from peft_diversity.atomic import check_output
from peft_diversity.builder.build import BuildSettings, build_config, build_dataset
from peft_diversity.builder.inputs import InputItem, display_name, read_inputs
from peft_diversity.builder.report import quality_report
from peft_diversity.builder.teachers import LocalTeacher, OpenAITeacher, Sampling
from peft_diversity.chat import ChatError
from peft_diversity.cli import command_parser, given_flags
from peft_diversity.errors import BuildError, DataValidationError
from peft_diversity.templates import PossibilityTemplate, TemplateError

if TYPE_CHECKING:
    from transformers import HfArgumentParser

DEFAULT_TEACHER = "builtin:minilm-decoder"
RENAMED = {
    "--output": "--output-dir",
    "--teacher": "--model-name-or-path",
    "-n": "--num-candidates",
}  # issue 22


@dataclass
class BuildDataArguments:
    """Arguments of `peft-diversity build-data` (each field is a flag, `--a_b` or `--a-b`, and a `--config` key),
    in four parts: input and output, the teacher, the prompt's wording, the candidates."""

    # input and output
    input: str | None = field(
        default=None,
        metadata={
            "help": "Prompts: .jsonl, .csv or .parquet file, a dataset folder, or a Hub dataset id (owner/name)."
        },
    )
    column: str | None = field(
        default=None,
        metadata={
            "help": "Column with the prompt text or (JSONL/Parquet/Hub) a list of dialogue turns; default: the first "
            "of context, prompt, text, input, question, instruction."
        },
    )
    id_column: str | None = field(
        default=None,
        metadata={"help": "Column with record ids (default: 'id' when present, else line/row number)."},
    )
    split: str = field(default="train", metadata={"help": "Hub dataset split."})
    output_dir: Path | None = field(
        default=None, metadata={"help": "Output folder (train.jsonl, rejected.jsonl, reports)."}
    )
    limit: int | None = field(default=None, metadata={"help": "Use only the first N input rows."})
    force: bool = field(
        default=False,
        metadata={"help": "Resume even though content settings or the inputs of finished records changed."},
    )
    report: bool = field(
        default=True, metadata={"help": "Write the quality report at the end (`--no-report`: skip it)."}
    )
    report_only: Path | None = field(
        default=None, metadata={"metavar": "DIR", "help": "Only (re)write the quality report of DIR."}
    )
    # the teacher
    model_name_or_path: str = field(
        default=DEFAULT_TEACHER,
        metadata={
            "help": "The teacher: a local model (Hub id, folder, builtin:<name>) or, with --base-url, the endpoint's "
            "model name."
        },
    )
    base_url: str | None = field(
        default=None,
        metadata={"help": "OpenAI-compatible endpoint incl. version prefix, e.g. http://127.0.0.1:8000/v1."},
    )
    api_key_env: str = field(
        default="OPENAI_API_KEY", metadata={"help": "Environment variable holding the API key."}
    )
    requests_per_minute: float | None = field(
        default=None, metadata={"help": "Client-side rate limit (HTTP teacher)."}
    )
    concurrency: int = field(
        default=4, metadata={"help": "Parallel requests (HTTP teacher; at most --batch-size)."}
    )
    http_max_retries: int | None = field(
        default=None,
        metadata={"help": "Retries of one request on 429/5xx/timeouts (HTTP teacher, default 5)."},
    )
    timeout: float | None = field(
        default=None, metadata={"help": "Seconds per HTTP request (HTTP teacher, default 60)."}
    )
    dtype: str = field(
        default="auto", metadata={"help": "Local teacher dtype (auto, float32, bfloat16, ...)."}
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Run the teacher repository's own code."}
    )
    # the prompt's wording
    task: str | None = field(
        default=None,
        metadata={
            "help": "How inputs are presented (default: dialogue for turn lists, else the text as is).",
            "choices": ["dialogue", "story", "custom"],
        },
    )
    instruction: str | None = field(
        default=None, metadata={"help": "Custom task wording with an {input} placeholder."}
    )
    system_prompt: str | None = field(default=None, metadata={"help": "System message for the teacher."})
    template: str | None = field(
        default=None,
        metadata={
            "help": "possibility_config.json (file or folder) to take the whole wording from (instead of "
            "--task/--instruction/--system-prompt)."
        },
    )
    # the candidates
    num_candidates: int = field(default=5, metadata={"help": "Candidates per input."})
    min_candidates: int = field(
        default=2, metadata={"help": "Reject inputs with fewer valid candidates in the end."}
    )
    max_retries: int = field(
        default=2, metadata={"help": "Extra teacher calls for inputs with fewer than N valid candidates."}
    )
    similarity_threshold: float = field(
        default=0.9,
        metadata={"help": "Drop a candidate whose SBERT cosine with a kept sibling is above this."},
    )
    semantic_dedup: bool = field(
        default=True,
        metadata={"help": "De-duplicate by meaning (`--no-semantic-dedup`: exact-text de-duplication only)."},
    )
    embedder: str | None = field(
        default=None,
        metadata={"help": "sentence-transformers model path (default all-MiniLM-L6-v2, offline)."},
    )
    temperature: float = field(default=1.0, metadata={"help": "Teacher temperature; retries add 0.2."})
    max_new_tokens: int = field(default=64, metadata={"help": "Per candidate."})
    seed: int = field(default=0, metadata={"help": "Local teacher seed (retry i uses seed + i)."})
    batch_size: int | None = field(
        default=None,
        metadata={"help": "Inputs per teacher round (default 8; HTTP teacher: at least --concurrency)."},
    )
    max_consecutive_failures: int = field(
        default=5, metadata={"help": "Stop after this many inputs in a row fail at the teacher."}
    )


def make_parser(prog: str | None = None) -> HfArgumentParser:
    """The parser of `peft-diversity build-data`."""
    return command_parser(
        BuildDataArguments,
        prog=prog,
        description="Build one-to-many training data from your prompts with a teacher model; rerunning the same "
        "command resumes an interrupted build.",
        renamed=RENAMED,
    )


def run(args: BuildDataArguments) -> int:
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


def _build(args: BuildDataArguments) -> int:
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
    if args.report:
        _print_report(quality_report(args.output_dir, embedder=args.embedder))
    if summary.unfinished:
        print(
            f"# {len(summary.unfinished)} inputs are unfinished (teacher errors); run the same command again to "
            "retry them",
            file=sys.stderr,
        )
        return 1
    return 0


def make_template(args: BuildDataArguments, items: list[InputItem]) -> PossibilityTemplate:
    """The wording shown to the teacher: --template, else --task/--instruction, else guessed from the inputs.

    Conflicting flags are errors, as in `peft-diversity generate`.
    """
    given = given_flags(args, "task", "instruction", "system_prompt")
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


def make_teacher(args: BuildDataArguments, template: PossibilityTemplate) -> Any:
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
        raise BuildError(
            f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to an HTTP teacher only (--base-url)"
        )
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


def _embedder(args: BuildDataArguments) -> Any:
    if not args.semantic_dedup:
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
