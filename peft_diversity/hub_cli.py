"""`peft-diversity push`: upload a trained folder (adapter or merged weights + template + card) to the Hub."""

from __future__ import annotations

import argparse
import logging


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", required=True, help="trained model folder (the recipe's output_dir)")
    parser.add_argument("--repo-id", required=True, help="target model repo, owner/name")
    parser.add_argument("--public", action="store_true", help="create a public repo (default: private)")
    parser.add_argument("--merge", action="store_true", help="merge a LoRA adapter into full weights first")
    parser.add_argument("--results", default=None, help="experiment results.json to report in the model card")
    parser.add_argument("--base-model", default=None, help="base model id for the card (default: from the folder)")
    parser.add_argument("--dataset", default=None, help="training dataset id for the card")
    parser.add_argument("--commit-message", default="Upload peft_diversity model")
    parser.add_argument("--save-only", default=None, metavar="DIR",
                        help="write the upload folder to DIR and stop (no token, no upload)")


def run(args: argparse.Namespace) -> int:
    from peft_diversity.hub import HubError, push_model, save_for_hub, validate_model_repo_id

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    save_kwargs = dict(results=args.results, base_model=args.base_model, dataset=args.dataset, merge=args.merge)
    try:
        validate_model_repo_id(args.repo_id)
        if args.save_only:
            folder = save_for_hub(args.model_dir, args.save_only, repo_id=args.repo_id, **save_kwargs)
            print(f"wrote {folder} (not uploaded)")
            return 0
        commit = push_model(args.model_dir, args.repo_id, private=not args.public,
                            commit_message=args.commit_message, **save_kwargs)
    except HubError as err:
        raise SystemExit(f"peft-diversity push: {err}") from err
    print(f"pushed {args.model_dir} to https://huggingface.co/{args.repo_id} ({commit})")
    return 0
