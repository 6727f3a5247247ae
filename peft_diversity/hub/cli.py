"""`peft-diversity push`: upload a trained model, a one-to-many dataset or a metric Space to the Hub.

peft-diversity push --model-name-or-path out/ --repo-id alice/qwen-poexft   # model (private)
peft-diversity push --dataset-name builtin:dialogue --repo-id alice/otm     # dataset (private)
peft-diversity push --metric vendi --repo-id alice/vendi                    # metric Space (public)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from peft_diversity.cli import check_one_of, command_parser
from peft_diversity.errors import HubError

if TYPE_CHECKING:
    from transformers import HfArgumentParser

RENAMED = {"--model-dir": "--model-name-or-path", "--dataset-source": "--dataset-name"}  # issue 22


@dataclass
class PushArguments:
    """Arguments of `peft-diversity push` (each field is a flag, `--a_b` or `--a-b`, and a `--config` key).

    Exactly one of `model_name_or_path`, `dataset_name` and `metric` says what to upload."""

    repo_id: str = field(metadata={"help": "Target repo, owner/name."})
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Trained model folder (the recipe's output_dir)."}
    )
    dataset_name: str | None = field(
        default=None,
        metadata={
            "metavar": "SRC",
            "help": "Push a one-to-many dataset instead (builtin:dialogue, a folder of <split>.jsonl, a file).",
        },
    )
    metric: str | None = field(
        default=None, metadata={"metavar": "NAME", "help": "Push metrics/NAME as a Gradio Space instead."}
    )
    public: bool = field(
        default=False,
        metadata={"help": "Create a public repo (default: private; metric Spaces are always public)."},
    )
    merge: bool = field(default=False, metadata={"help": "Merge a LoRA adapter into full weights first."})
    results: str | None = field(
        default=None, metadata={"help": "An experiment's results.json to report in the model card."}
    )
    base_model: str | None = field(
        default=None, metadata={"help": "Base model id for the card (default: from the folder)."}
    )
    dataset: str | None = field(
        default=None, metadata={"help": "With a model: its training dataset's id, for the card."}
    )
    splits: str = field(default="train,test", metadata={"help": "Dataset splits to push (comma-separated)."})
    pretty_name: str | None = field(default=None, metadata={"help": "Dataset card title."})
    license: str = field(default="cc-by-4.0", metadata={"help": "Dataset licence."})
    commit_message: str | None = field(default=None, metadata={"help": "The Hub commit's message."})
    save_only: str | None = field(
        default=None,
        metadata={
            "metavar": "DIR",
            "help": "Write the upload folder to DIR and stop (no token, no upload; model or dataset).",
        },
    )

    def __post_init__(self) -> None:
        check_one_of(self, "model_name_or_path", "dataset_name", "metric", error=HubError)


def make_parser(prog: str | None = None) -> HfArgumentParser:
    """The parser of `peft-diversity push`."""
    return command_parser(
        PushArguments,
        prog=prog,
        description="Upload a trained model (adapter or merged) with its template and card, a one-to-many "
        "dataset, or a metric Space.",
        renamed=RENAMED,
    )


def _push(args: PushArguments) -> str:
    from peft_diversity import hub

    message = {"commit_message": args.commit_message} if args.commit_message else {}
    if args.metric:
        if args.save_only:
            raise HubError("--save-only works for --model-name-or-path and --dataset-name, not --metric")
        hub.metric_folder(args.metric)
        return hub.push_metric(args.metric, args.repo_id, private=False, **message)
    if args.dataset_name:
        kwargs = dict(splits=hub.split_names(args.splits), pretty_name=args.pretty_name, license=args.license)
        if args.save_only:
            folder = hub.save_dataset_for_hub(
                args.dataset_name, args.save_only, repo_id=args.repo_id, **kwargs
            )
            return f"wrote {folder} (not uploaded)"
        return hub.push_dataset(args.dataset_name, args.repo_id, private=not args.public, **message, **kwargs)
    kwargs = dict(results=args.results, base_model=args.base_model, dataset=args.dataset, merge=args.merge)
    if args.save_only:
        folder = hub.save_for_hub(args.model_name_or_path, args.save_only, repo_id=args.repo_id, **kwargs)
        return f"wrote {folder} (not uploaded)"
    return hub.push_model(args.model_name_or_path, args.repo_id, private=not args.public, **message, **kwargs)


def run(args: PushArguments) -> int:
    from peft_diversity.atomic import check_output
    from peft_diversity.hub.upload import validate_model_repo_id

    validate_model_repo_id(args.repo_id)
    if args.save_only:
        check_output(args.save_only, "--save-only", folder=True)  # before a model is read or merged
    result = _push(args)
    if result.startswith("wrote "):
        print(result)
    else:
        what = args.model_name_or_path or args.dataset_name or f"metric {args.metric}"
        prefix = "datasets/" if args.dataset_name else "spaces/" if args.metric else ""
        print(f"pushed {what} to https://huggingface.co/{prefix}{args.repo_id} ({result})")
    return 0
