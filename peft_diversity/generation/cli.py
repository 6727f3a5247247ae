"""`peft-diversity generate`: K diverse responses to a context, printed as a numbered list.

    peft-diversity generate --model-name-or-path out/my-poexft-model --context "Maya: Any plans tonight?" \\
        --num-responses 5
    peft-diversity generate --model-name-or-path builtin:minilm-decoder --decoder sampling \\
        --prompt "A lighthouse keeper..." --num-responses 3
    peft-diversity generate --model-name-or-path M --input records.jsonl --output responses.jsonl --decoder listing

Wired into `peft_diversity/cli.py` through `make_parser` and `run`.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from peft_diversity.atomic import check_output, output_errors
from peft_diversity.cli import check_one_of, command_parser
from peft_diversity.errors import GenerationError
from peft_diversity.generation.core import check_sampling_settings
from peft_diversity.generation.decoders import DECODERS, get_decoder
from peft_diversity.generation.responses import Responses, write_responses_jsonl
from peft_diversity.jsonl import read_jsonl
from peft_diversity.templates import (
    TASK_INSTRUCTIONS,
    PossibilityTemplate,
    TemplateError,
    find_template,
    load_template,
)

SAMPLING_DECODERS = ("possibilities", "sampling", "min_p", "listing", "iterative")
SHARED_PREFIX_DECODERS = tuple(name for name, decoder in DECODERS.items() if decoder.shares_prefix)
TASKS = (*TASK_INSTRUCTIONS, "custom")
RENAMED = {"--model": "--model-name-or-path", "-n": "--num-responses"}  # issue 22: one flag name per concept
_TURN = re.compile(r"^\s*([^:\n]{1,40}?)\s*:\s*(\S.*)$")

if TYPE_CHECKING:
    from transformers import HfArgumentParser


@dataclass
class GenerateArguments:
    """Arguments of `peft-diversity generate` (each field is a flag, `--a_b` or `--a-b`, and a `--config` key).

    Exactly one of `context`, `prompt` and `input` says what to respond to. Decoding settings left unset keep the
    decoder's defaults; a setting that belongs to another decoder is refused (see `decoder_kwargs`)."""

    model_name_or_path: str = field(metadata={"help": "Model folder, Hub id or builtin:<name>."})
    context: str | None = field(
        default=None, metadata={"help": 'Dialogue ("Maya: hi\\nSam: hello") or plain text to respond to.'}
    )
    prompt: str | None = field(
        default=None, metadata={"help": "A story prompt (rendered with the story task wording)."}
    )
    input: Path | None = field(
        default=None, metadata={"help": "JSONL file of records ({context|prompt, ...}), one per line."}
    )
    num_responses: int | None = field(
        default=None, metadata={"help": "Responses per context (the decoder's default: 5)."}
    )
    decoder: str = field(
        default="possibilities", metadata={"help": "The decoder.", "choices": list(DECODERS)}
    )
    possibilities: str | None = field(
        default=None,
        metadata={"help": "Possibility numbers, e.g. 1,3,7, or 'random' (possibilities decoder only)."},
    )
    template: str | None = field(
        default=None, metadata={"help": "possibility_config.json (file or folder); default: the model's own."}
    )
    task: str | None = field(
        default=None,
        metadata={
            "help": "Task wording for a model without a saved template (default: dialogue, or story for --prompt).",
            "choices": TASKS,
        },
    )
    instruction: str | None = field(
        default=None, metadata={"help": "Custom task instruction with {input} (implies --task custom)."}
    )
    temperature: float | None = field(
        default=None, metadata={"help": "Sampling temperature; 0 = greedy (the decoder's default: 1)."}
    )
    top_p: float | None = field(default=None, metadata={"help": "Nucleus sampling threshold."})
    min_p: float | None = field(
        default=None, metadata={"help": "min_p decoder threshold (its default: 0.1)."}
    )
    max_new_tokens: int | None = field(
        default=None, metadata={"help": "Per response (the decoder's default: 64)."}
    )
    min_new_tokens: int | None = field(
        default=None, metadata={"help": "At least this many new tokens per response."}
    )
    diversity_penalty: float | None = field(
        default=None, metadata={"help": "diverse_beam (its default: 1.0)."}
    )
    num_beams: int | None = field(
        default=None, metadata={"help": "diverse_beam (default: the number of responses)."}
    )
    num_beam_groups: int | None = field(
        default=None, metadata={"help": "diverse_beam (default: the number of responses)."}
    )
    seed: int | None = field(default=None, metadata={"help": "Seed of the sampling decoders."})
    batch_size: int | None = field(default=None, metadata={"help": "Contexts per generate call (default 8)."})
    shared_prefix: bool = field(
        default=True,
        metadata={
            "help": "Run the K prompts' shared prefix once (`--no-shared-prefix`: the plain batched path)."
        },
    )
    clean: bool = field(
        default=True, metadata={"help": "Clean up the outputs (`--no-clean`: print them raw)."}
    )
    output: Path | None = field(default=None, metadata={"help": "Also write responses.jsonl here."})
    dtype: str = field(default="auto", metadata={"help": "Model dtype (auto, float32, bfloat16, ...)."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Run the model repository's own code."})

    def __post_init__(self) -> None:
        check_one_of(self, "context", "prompt", "input", error=GenerationError)


def make_parser(prog: str | None = None) -> HfArgumentParser:
    """The parser of `peft-diversity generate`."""
    return command_parser(
        GenerateArguments,
        prog=prog,
        description="Generate K diverse responses per context, printed as a numbered list.",
        renamed=RENAMED,
    )


def parse_context(text: str) -> str | list[dict[str, str]]:
    """A `--context` string: dialogue turns when every line reads "Speaker: text", else the text itself.

    A literal backslash-n (as typed in a shell) separates lines too.
    """
    lines = [line for line in text.replace("\\n", "\n").split("\n") if line.strip()]
    matches = [_TURN.match(line) for line in lines]
    if lines and all(matches):
        return [{"speaker": m.group(1), "text": m.group(2).strip()} for m in matches if m]
    return "\n".join(lines)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of an --input JSONL; a non-UTF-8 line, bad JSON or a record without context/prompt is a
    GenerationError naming file:line (and the key)."""
    records = []
    for number, record in read_jsonl(path, error=GenerationError):
        if not isinstance(record, dict):
            raise GenerationError(
                f"{path}:{number}: a record must be a JSON object, got {type(record).__name__}"
            )
        if "context" not in record and "prompt" not in record:
            raise GenerationError(f"{path}:{number}: no 'context' or 'prompt' key (keys: {sorted(record)})")
        records.append(record)
    if not records:
        raise GenerationError(f"--input {path}: no records (the file is empty)")
    return records


def decoder_kwargs(args: GenerateArguments) -> dict[str, Any]:
    """Keyword settings for the chosen decoder from the parsed options (unset options keep the defaults)."""
    kwargs: dict[str, Any] = {"num_responses": args.num_responses}
    common = {
        "max_new_tokens": args.max_new_tokens,
        "min_new_tokens": args.min_new_tokens,
        "seed": args.seed,
        "batch_size": args.batch_size,
    }
    if args.decoder in SAMPLING_DECODERS:
        common.update(temperature=args.temperature, top_p=args.top_p)
    elif args.temperature is not None or args.top_p is not None:
        raise GenerationError(f"--temperature/--top-p do not apply to the {args.decoder} decoder")
    kwargs.update({key: value for key, value in common.items() if value is not None})
    _add_decoder_specific(args, kwargs)
    if not args.clean:
        kwargs["clean"] = False
    return kwargs


def _add_decoder_specific(args: GenerateArguments, kwargs: dict[str, Any]) -> None:
    specific = {
        "possibilities": {"possibilities": _possibilities(args.possibilities)},
        "min_p": {"min_p": args.min_p},
        "diverse_beam": {
            "diversity_penalty": args.diversity_penalty,
            "num_beams": args.num_beams,
            "num_beam_groups": args.num_beam_groups,
        },
    }
    given = {
        "--possibilities": args.possibilities,
        "--min-p": args.min_p,
        "--diversity-penalty": args.diversity_penalty,
        "--num-beams": args.num_beams,
        "--num-beam-groups": args.num_beam_groups,
    }
    owner = {
        "--possibilities": "possibilities",
        "--min-p": "min_p",
        "--diversity-penalty": "diverse_beam",
        "--num-beams": "diverse_beam",
        "--num-beam-groups": "diverse_beam",
    }
    for flag, value in given.items():
        if value is not None and owner[flag] != args.decoder:
            raise GenerationError(f"{flag} applies to the {owner[flag]} decoder, not {args.decoder}")
    kwargs.update({key: value for key, value in specific.get(args.decoder, {}).items() if value is not None})
    if not args.shared_prefix and args.decoder in SHARED_PREFIX_DECODERS:
        kwargs["shared_prefix"] = False


def _possibilities(value: str | None) -> list[int] | str | None:
    if value is None or value == "random":
        return value
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise GenerationError(
            f"--possibilities must be comma-separated numbers or 'random', got {value!r}"
        ) from None


def print_responses(results: list[Responses], out=None, err=None) -> None:
    """K numbered responses per context; timing and parse failures on stderr."""
    out, err = out or sys.stdout, err or sys.stderr
    for index, result in enumerate(results):
        if len(results) > 1:
            print(f"## {result.id if result.id is not None else index + 1}", file=out)
        labels = result.possibilities or list(range(1, len(result.texts) + 1))
        for number, (label, text) in enumerate(zip(labels, result.texts, strict=False), start=1):
            tag = f" (possibility {label})" if result.possibilities else ""
            print(f"{number}.{tag} {text}", file=out)
        if result.parse_failures:
            print(f"# listing: items {result.parse_failures} could not be parsed", file=err)
        path = result.settings.get("path")
        print(
            f"# {result.decoder}: {len(result.texts)} responses in {result.wall_time_s:.2f} s"
            + (f" ({path} path)" if path else ""),
            file=err,
        )


def run(args: GenerateArguments) -> int:
    """Load the model, generate, print; 0 on success, 2 on bad input (message on stderr)."""
    if args.output:
        check_output(args.output, "--output", inputs=[args.input])  # before the model loads
    try:
        results = _generate(args)
    except (GenerationError, TemplateError, FileNotFoundError) as err:
        print(f"peft-diversity generate: {err}", file=sys.stderr)
        return 2
    print_responses(results)
    if args.output:
        with output_errors("--output", args.output):
            write_responses_jsonl(results, args.output)
        print(f"# wrote {args.output}", file=sys.stderr)
    return 0


def _generate(args: GenerateArguments) -> list[Responses]:
    from peft_diversity.errors import ModelLoadError
    from peft_diversity.models.builtin import resolve_model_path
    from peft_diversity.models.loading import check_dtype, load_model_and_tokenizer

    check_dtype(args.dtype)
    kwargs = decoder_kwargs(args)
    check_sampling_settings(kwargs)  # before the model loads
    if args.input is not None:
        contexts: list[Any] = read_records(args.input)
    else:
        contexts = [
            {"prompt": args.prompt} if args.prompt is not None else {"context": parse_context(args.context)}
        ]
    template = load_template(args.template) if args.template else None
    requested = requested_template(args)
    if template is not None and requested is not None:
        raise GenerationError("--template and --task/--instruction both set the wording: give one of them")
    try:
        model, tokenizer = load_model_and_tokenizer(
            args.model_name_or_path, dtype=args.dtype, trust_remote_code=args.trust_remote_code
        )
    except (ModelLoadError, OSError) as err:
        raise GenerationError(f"cannot load model {args.model_name_or_path!r}: {err}") from err
    template = template or _pick_template(
        args, requested, find_template(resolve_model_path(args.model_name_or_path))
    )
    results = get_decoder(args.decoder)(model, tokenizer, contexts=contexts, template=template, **kwargs)
    for result in results:
        result.model = (
            args.model_name_or_path
        )  # as the user named it (e.g. builtin:minilm-decoder), not the cache folder
    return results


def requested_template(args: GenerateArguments) -> PossibilityTemplate | None:
    """The template `--task` / `--instruction` ask for (None when neither is given); checked before loading."""
    if args.task is None and args.instruction is None:
        return None
    task = args.task or "custom"
    if args.instruction is not None and task != "custom":
        raise GenerationError(f"--instruction makes a custom task; drop --task {task} or use --task custom")
    return PossibilityTemplate(task=task, instruction=args.instruction)


def _pick_template(
    args: GenerateArguments, requested: PossibilityTemplate | None, saved: PossibilityTemplate | None
) -> PossibilityTemplate | None:
    """`--task`/`--instruction` apply only to models without a template of their own (base models)."""
    if requested is not None and saved is not None:
        raise GenerationError(
            f"{args.model_name_or_path!r} was trained with its own template (task {saved.task!r}); --task/--instruction apply "
            "to models without one (use --template to override the wording)"
        )
    return requested or saved


def main(argv: list[str] | None = None) -> int:
    """`python -m peft_diversity.generation.cli`: the same path as `peft-diversity generate` (logging, flags, errors)."""
    from peft_diversity.cli import main as cli_main

    return cli_main(["generate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
