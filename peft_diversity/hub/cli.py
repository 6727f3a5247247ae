"""`peft-diversity push`: upload a trained model, a one-to-many dataset or a metric Space to the Hub.

peft-diversity push --model-name-or-path out/ --repo-id alice/qwen-poexft   # model (private)
peft-diversity push --dataset-name builtin:dialogue --repo-id alice/otm     # dataset (private)
peft-diversity push --metric vendi --repo-id alice/vendi                    # metric Space (public)
"""

from __future__ import annotations

import argparse

from peft_diversity.cli import reject_renamed

RENAMED = {"--model-dir": "--model-name-or-path", "--dataset-source": "--dataset-name"}  # issue 22


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--model-name-or-path", default=None, help="trained model folder (the recipe's output_dir)"
    )
    what.add_argument(
        "--dataset-name",
        default=None,
        metavar="SRC",
        help="push a one-to-many dataset instead (builtin:dialogue, a folder of <split>.jsonl, a file)",
    )
    what.add_argument("--metric", default=None, metavar="NAME", help="push metrics/NAME as a Gradio Space")
    parser.add_argument("--repo-id", required=True, help="target repo, owner/name")
    parser.add_argument(
        "--public",
        action="store_true",
        help="create a public repo (default: private; metric Spaces are always public)",
    )
    parser.add_argument("--merge", action="store_true", help="merge a LoRA adapter into full weights first")
    parser.add_argument("--results", default=None, help="experiment results.json to report in the model card")
    parser.add_argument(
        "--base-model", default=None, help="base model id for the card (default: from the folder)"
    )
    parser.add_argument(
        "--dataset", default=None, help="with a model: its training dataset's id, for the card"
    )
    parser.add_argument("--splits", default="train,test", help="dataset splits to push (comma-separated)")
    parser.add_argument("--pretty-name", default=None, help="dataset card title")
    parser.add_argument("--license", default="cc-by-4.0", help="dataset licence")
    parser.add_argument("--commit-message", default=None)
    parser.add_argument(
        "--save-only",
        default=None,
        metavar="DIR",
        help="write the upload folder to DIR and stop (no token, no upload; model or dataset)",
    )
    reject_renamed(parser, RENAMED)


def _push(args: argparse.Namespace) -> str:
    from peft_diversity import hub
    from peft_diversity.errors import HubError

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


def run(args: argparse.Namespace) -> int:
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
