"""`peft-diversity bias`: interview models about themselves and compare how widely their personas spread.

    peft-diversity bias --models builtin:minilm-decoder@sampling runs/demo-cpu/models/poexft --num-conversations 100
    peft-diversity bias --models base=Qwen/Qwen2.5-0.5B-Instruct@sampling poexft=out/poexft@possibilities \\
        --interviewer openai:gpt-4o-mini --base-url http://127.0.0.1:8000/v1 --output-dir runs/bias
    peft-diversity bias --check-extractor          # the extractor's precision/recall on the labelled snippets
    peft-diversity bias --num-conversations 100    # SmolLM2-135M-Instruct (base, sampling), offline

Without `--models`, the base SmolLM2-135M-Instruct is interviewed with the sampling decoder (DEFAULT_MODEL).

A model spec is `[label=]model[@decoder]`: a Hub id, a folder, an adapter folder or builtin:<name>. Without
`@decoder` (or `--decoder`), a model trained with peft_diversity in poexft mode uses `possibilities`, any other
`sampling` (`templates.default_decoder`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from peft_diversity.atomic import check_output
from peft_diversity.cli import command_parser
from peft_diversity.persona.score import PersonaError

if TYPE_CHECKING:
    from transformers import HfArgumentParser

    from peft_diversity.persona.report import BiasResult

DEFAULT_N = 100
DEFAULT_BATCH_SIZE = 32
DEFAULT_MAX_NEW_TOKENS = 40
DEFAULT_MODEL = "base=builtin:smollm2-135m-instruct@sampling"  # a real chat model, offline
RENAMED = {"-n": "--num-conversations", "--n": "--num-conversations", "--out": "--output-dir"}  # issue 22


@dataclass
class ModelSpec:
    """One `--models` entry."""

    label: str
    model: str
    decoder: str | None


@dataclass
class BiasArguments:
    """Arguments of `peft-diversity bias` (each field is a flag, `--a_b` or `--a-b`, and a `--config` key)."""

    models: list[str] = field(
        default_factory=lambda: [DEFAULT_MODEL],
        metadata={
            "metavar": "[LABEL=]MODEL[@DECODER]",
            "help": "Models to interview (Hub id, folder, adapter folder or builtin:<name>).",
        },
    )
    num_conversations: int = field(default=DEFAULT_N, metadata={"help": "Conversations per model."})
    output_dir: Path = field(default=Path("runs/bias"), metadata={"help": "Report folder."})
    decoder: str | None = field(
        default=None, metadata={"help": "Decoder for models without @decoder (default: automatic)."}
    )
    template: str | None = field(
        default=None,
        metadata={
            "help": "possibility_config.json (file or folder) for models without a saved template, e.g. a trained "
            "model's folder so the base model is asked in the same words (default: the dialogue wording)."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the interviews."})
    batch_size: int = field(default=DEFAULT_BATCH_SIZE, metadata={"help": "Conversations per generate call."})
    max_new_tokens: int = field(default=DEFAULT_MAX_NEW_TOKENS, metadata={"help": "Per answer."})
    temperature: float | None = field(default=None, metadata={"help": "Sampling temperature (default 1)."})
    top_p: float | None = field(default=None, metadata={"help": "Nucleus sampling threshold."})
    interviewer: str = field(default="scripted", metadata={"help": "scripted | hf:<model> | openai:<model>."})
    extractor: str = field(default="rules", metadata={"help": "rules | hf:<model> | openai:<model>."})
    base_url: str | None = field(
        default=None, metadata={"help": "OpenAI-compatible endpoint (with /v1) for openai: specs."}
    )
    api_key_env: str = field(
        default="OPENAI_API_KEY", metadata={"help": "Environment variable holding the endpoint's key."}
    )
    reference: Path | None = field(
        default=None,
        metadata={"help": "JSON {attribute: {category: weight}} to compare with (default: uniform)."},
    )
    max_followups: int = field(default=1, metadata={"help": "Follow-ups per unclear answer."})
    recap: bool = field(
        default=True, metadata={"help": "Ask the closing recap question (`--no-recap`: skip it)."}
    )
    check_extractor: bool = field(
        default=False,
        metadata={"help": "Only print the extractor's precision/recall on the hand-labelled snippets."},
    )
    labelled: Path | None = field(
        default=None,
        metadata={
            "help": "With --check-extractor: a JSONL of labelled answers ({attribute, text, label, flags?} per line) "
            "to score instead of the shipped snippets."
        },
    )
    dtype: str = field(default="auto", metadata={"help": "Model dtype (auto, float32, bfloat16, ...)."})
    possibility_per: str = field(
        default="turn",
        metadata={
            "help": "Possibilities decoder: draw a possibility number per turn or once per conversation.",
            "choices": ["turn", "conversation"],
        },
    )


def make_parser(prog: str | None = None) -> HfArgumentParser:
    """The parser of `peft-diversity bias`."""
    return command_parser(
        BiasArguments,
        prog=prog,
        description="Persona demographic-bias test: interview models about themselves, compare how widely the "
        "attributes of their personas spread (entropy).",
        renamed=RENAMED,
    )


# ----- parsing and validation (all before any model is loaded) ---------------------------------------------
def parse_model_spec(spec: str, decoders: list[str]) -> ModelSpec:
    """`[label=]model[@decoder]`; an `@suffix` that is no decoder name stays part of the model name."""
    label = None
    if "=" in spec and "/" not in spec.split("=", 1)[0]:
        label, spec = spec.split("=", 1)
    model, decoder = spec, None
    if "@" in spec and spec.rsplit("@", 1)[1] in decoders:
        model, decoder = spec.rsplit("@", 1)
    if not model or label == "":
        raise PersonaError(f"bad model spec {spec!r}: expected [label=]model[@decoder]")
    return ModelSpec(label or _short_name(model), model, decoder)


def _short_name(model: str) -> str:
    name = model.removeprefix("builtin:").rstrip("/")
    return Path(name).name or name


def _validate(args: BiasArguments) -> None:
    for name, value in (
        ("--num-conversations", args.num_conversations),
        ("--batch-size", args.batch_size),
        ("--max-new-tokens", args.max_new_tokens),
    ):
        if value < 1:
            raise PersonaError(f"{name} must be >= 1, got {value}")
    if args.max_followups < 0:
        raise PersonaError(f"--max-followups must be >= 0, got {args.max_followups}")
    for option, value, default in (
        ("--interviewer", args.interviewer, "scripted"),
        ("--extractor", args.extractor, "rules"),
    ):
        kind, _, name = value.partition(":")
        if value != default and (kind not in ("hf", "openai") or not name):
            raise PersonaError(f"{option} must be {default}, hf:<model> or openai:<model>, got {value!r}")


def check_model_available(model: str) -> None:
    """Fail before any interview when a model can be neither a folder nor a (cached, when offline) Hub repo."""
    if model.startswith("builtin:") or Path(model).is_dir():
        return
    from huggingface_hub import constants, try_to_load_from_cache

    try:
        cached = any(
            isinstance(try_to_load_from_cache(model, f), str) for f in ("config.json", "adapter_config.json")
        )
    except ValueError:  # not a valid repo id: a path
        cached = False
    if not cached and (constants.HF_HUB_OFFLINE or model.startswith((".", "/", "~")) or model.count("/") > 1):
        where = " and not in the local Hub cache (offline)" if constants.HF_HUB_OFFLINE else ""
        raise PersonaError(f"model {model!r} is not a folder{where}")


def resolve_specs(args: BiasArguments) -> list[ModelSpec]:
    from peft_diversity.generation.decoders import DECODERS
    from peft_diversity.models.builtin import resolve_model_path
    from peft_diversity.templates import default_decoder, find_template

    if args.decoder is not None and args.decoder not in DECODERS:
        raise PersonaError(f"unknown decoder {args.decoder!r}; known: {list(DECODERS)}")
    specs = [parse_model_spec(s, list(DECODERS)) for s in args.models]
    for spec in specs:
        check_model_available(spec.model)
        spec.decoder = spec.decoder or args.decoder or default_decoder(resolve_model_path(spec.model))
        if spec.decoder == "possibilities" and find_template(resolve_model_path(spec.model)) is None:
            raise PersonaError(
                f"{spec.model}: the possibilities decoder needs a model trained with peft_diversity "
                "(possibility_config.json beside it); use @sampling for other models"
            )
    keys = [(s.label, s.decoder) for s in specs]
    duplicates = sorted({f"{label}@{decoder}" for label, decoder in keys if keys.count((label, decoder)) > 1})
    if duplicates:
        raise PersonaError(f"models given twice: {duplicates}; give them distinct labels (label=model)")
    return specs


# ----- interviewer / extractor backends ----------------------------------------------------------------------
def chat_backend(spec: str, args: BiasArguments, *, temperature: float, max_tokens: int):
    """The chat model (conversations -> replies) that `hf:<model>` or `openai:<model>` names (`chat.make_chat`)."""
    from peft_diversity.chat import default_base_url, make_chat

    kind, name = spec.split(":", 1)
    where = {"base_url": args.base_url or default_base_url()} if kind == "openai" else {"dtype": args.dtype}
    return make_chat(
        name,
        api_key_env=args.api_key_env,
        temperature=temperature,
        max_tokens=max_tokens,
        batch_size=args.batch_size,
        seed=args.seed,
        **where,
    )


def build_interviewer(args: BiasArguments):
    from peft_diversity.persona.interview import ChatInterviewer, ScriptedInterviewer

    options = {"seed": args.seed, "max_followups": args.max_followups, "recap": args.recap}
    if args.interviewer == "scripted":
        return ScriptedInterviewer(**options)
    return ChatInterviewer(chat_backend(args.interviewer, args, temperature=0.7, max_tokens=64), **options)


def build_extractor(args: BiasArguments):
    from peft_diversity.persona.extract import ChatExtractor, RuleExtractor

    if args.extractor == "rules":
        return RuleExtractor()
    return ChatExtractor(
        chat_backend(args.extractor, args, temperature=0.0, max_tokens=200), batch_size=args.batch_size
    )


# ----- the run ------------------------------------------------------------------------------------------------
def run(args: BiasArguments) -> int:
    """Interview, extract, score, report; 0 on success, 2 on bad input (one line on stderr)."""
    try:
        return _run(args)
    except Exception as err:
        if not isinstance(err, _bad_input_errors()):
            raise
        print(f"peft-diversity bias: {err}", file=sys.stderr)
        return 2


def _bad_input_errors() -> tuple[type[Exception], ...]:
    """Errors that mean bad input (imported only when something failed: they pull in torch)."""
    from peft_diversity.chat import ChatError
    from peft_diversity.errors import GenerationError, ModelLoadError
    from peft_diversity.templates import TemplateError

    return PersonaError, ModelLoadError, GenerationError, TemplateError, ChatError


def _run(args: BiasArguments) -> int:
    from peft_diversity.persona.extract import HELDOUT_SPLITS, extractor_accuracy, load_labelled
    from peft_diversity.persona.report import format_accuracy_table, format_bias_table, write_bias_report
    from peft_diversity.persona.score import load_reference

    _validate(args)
    if not args.check_extractor:
        check_output(args.output_dir, "--output-dir", folder=True)  # before any model loads
    references = load_reference(args.reference) if args.reference else None
    extractor = build_extractor(args)
    if args.check_extractor:
        labelled = load_labelled(args.labelled) if args.labelled else None
        for split in (None,) if args.labelled else (*HELDOUT_SPLITS, "dev", None):
            accuracy = extractor_accuracy(labelled, extractor=extractor, split=split)
            print(
                f"\n{accuracy['split']} ({accuracy['num_snippets']} snippets)\n{format_accuracy_table(accuracy)}"
            )
        return 0
    specs = resolve_specs(args)
    fallback = _load_fallback_template(args.template)
    interviewer = build_interviewer(args)
    # the rule extractor's accuracy costs milliseconds; an LLM extractor's is measured with --check-extractor
    accuracy = (
        [extractor_accuracy(split=split) for split in HELDOUT_SPLITS] if args.extractor == "rules" else None
    )
    start = time.perf_counter()
    results = _interview_all(specs, args, interviewer, extractor, references, accuracy, start, fallback)
    settings = _settings(args, start)
    write_bias_report(results, args.output_dir, settings, accuracy)
    print(f"\n{format_bias_table(results)}\n")
    print(
        f"wrote {args.output_dir}/bias.md, bias.json, bias.png, transcripts/ ({settings['wall_time_s']:.0f} s)"
    )
    return 0


def _load_fallback_template(source: str | None) -> Any:
    from peft_diversity.templates import load_template

    if source is None:
        return None
    try:
        return load_template(source)
    except OSError as err:  # FileNotFoundError included
        raise PersonaError(f"--template {source}: {err}") from err


def _settings(args: BiasArguments, start: float) -> dict[str, Any]:
    return {
        "n": args.num_conversations,
        "seed": args.seed,
        "interviewer": args.interviewer,
        "extractor": args.extractor,
        "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "possibility_per": args.possibility_per,
        "template": args.template,
        "reference": str(args.reference) if args.reference else "uniform",
        "wall_time_s": round(time.perf_counter() - start, 1),
    }


def _interview_all(
    specs: list[ModelSpec],
    args: BiasArguments,
    interviewer: Any,
    extractor: Any,
    references: Any,
    accuracy: Any,
    start: float,
    fallback: Any = None,
) -> list[BiasResult]:
    """Each model in turn; its transcripts are written as soon as it finishes, and a failure after one or more
    models leaves a partial report of those (the error is raised again)."""
    from peft_diversity.persona.report import write_bias_report, write_transcripts

    results: list[BiasResult] = []
    for spec in specs:
        try:
            results.append(_interview_model(spec, args, interviewer, extractor, references, fallback))
        except BaseException as err:
            if results:
                settings = {
                    **_settings(args, start),
                    "partial": f"{spec.label} failed ({type(err).__name__}: {err})",
                }
                write_bias_report(results, args.output_dir, settings, accuracy)
                print(
                    f"peft-diversity bias: {spec.label} failed; wrote a partial report of {len(results)} of "
                    f"{len(specs)} models to {args.output_dir}/bias.md",
                    file=sys.stderr,
                )
            raise
        write_transcripts(results[-1], args.output_dir)
    return results


def _interview_model(
    spec: ModelSpec,
    args: BiasArguments,
    interviewer: Any,
    extractor: Any,
    references: Any,
    fallback: Any = None,
) -> BiasResult:
    from peft_diversity.models.builtin import resolve_model_path
    from peft_diversity.models.loading import load_model_and_tokenizer
    from peft_diversity.persona.interview import run_interviews
    from peft_diversity.persona.report import evaluate_transcripts
    from peft_diversity.templates import find_template

    try:
        model, tokenizer = load_model_and_tokenizer(spec.model, dtype=args.dtype)
    except OSError as err:
        raise PersonaError(f"cannot load model {spec.model!r}: {err}") from err
    template = find_template(resolve_model_path(spec.model)) or fallback
    settings = {k: v for k, v in (("temperature", args.temperature), ("top_p", args.top_p)) if v is not None}
    per = {"possibility_per": args.possibility_per} if spec.decoder == "possibilities" else {}
    start = time.perf_counter()
    transcripts = run_interviews(
        model,
        tokenizer,
        args.num_conversations,
        decoder=spec.decoder,
        template=template,
        interviewer=interviewer,
        seed=args.seed,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        model_label=spec.label,
        **per,
        **settings,
    )
    wall = time.perf_counter() - start
    print(
        f"# {spec.label} ({spec.decoder}): {args.num_conversations} interviews in {wall:.0f} s",
        file=sys.stderr,
    )
    return evaluate_transcripts(
        spec.label,
        transcripts,
        spec.decoder,
        extractor,
        references,
        model=spec.model,
        wall_time_s=round(wall, 1),
        settings={"batch_size": args.batch_size, **per, **settings},
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m peft_diversity.persona.cli`: the same path as `peft-diversity bias` (logging, flags, errors)."""
    from peft_diversity.cli import main as cli_main

    return cli_main(["bias", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
