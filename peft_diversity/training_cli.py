"""`peft-diversity train`: the recipe's TrlParser behind a subcommand (same flags, same code path)."""

from __future__ import annotations

import argparse

from peft_diversity.training import make_parser, run_training


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Every flag belongs to the TrlParser; -h/--help is forwarded to it so all fields are listed.
    parser.add_argument("-h", "--help", action="store_true", dest="train_help")


def run(args: argparse.Namespace) -> int:
    trl_parser = make_parser(prog="peft-diversity train")
    if args.train_help:
        trl_parser.print_help()
        return 0
    script_args, training_args, model_args = trl_parser.parse_args_and_config(args=args.train_argv)
    run_training(script_args, training_args, model_args)
    return 0
