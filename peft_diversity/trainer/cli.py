"""The training entry point shared by `recipes/sft_peft.py` and `peft-diversity train`."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

from trl import ModelConfig, ScriptArguments, TrlParser, get_peft_config

from peft_diversity.atomic import check_output
from peft_diversity.cli import parser_class
from peft_diversity.data import load_one_to_many
from peft_diversity.errors import TrainConfigError
from peft_diversity.models.builtin import resolve_model_path
from peft_diversity.models.loading import load_model_and_tokenizer
from peft_diversity.trainer.config import PossibilityConfig, check_unsupported_settings
from peft_diversity.trainer.trainer import PossibilityTrainer

logger = logging.getLogger(__name__)
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
# one of these holds the weights of a checkpoint (trainer_state.json is written last, after them)
CHECKPOINT_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "adapter_model.safetensors",
    "pytorch_model.bin",
    "adapter_model.bin",
)


def make_parser(prog: str | None = None) -> TrlParser:
    """`--config recipe.yaml` plus any field of ScriptArguments, PossibilityConfig and ModelConfig as a flag."""
    parser = parser_class()((ScriptArguments, PossibilityConfig, ModelConfig), prog=prog)  # one-line errors
    parser.description = (
        "Train a PoExFT / OTM / OTO model. --config RECIPE.yaml gives the settings (see recipes/<model>/<method>/); "
        "any field below given as a flag overrides it. --resume_from_checkpoint last (or true) resumes from the "
        "newest complete checkpoint-N in output_dir."
    )
    return parser


def run_training(script_args: ScriptArguments, training_args: PossibilityConfig, model_args: ModelConfig):
    """Load data (validated before anything else), load the model, train, save model + template, maybe push."""
    if not model_args.model_name_or_path:
        raise TrainConfigError(
            "model_name_or_path is required (a Hub id, a local folder or builtin:minilm-decoder)"
        )
    if not script_args.dataset_name:
        raise TrainConfigError(
            "dataset_name is required (a .jsonl/.parquet file, a folder, builtin:dialogue or a Hub id)"
        )
    check_unsupported_settings(script_args, training_args, model_args, cli=True)
    if training_args.output_dir:
        check_output(
            training_args.output_dir, "output_dir", folder=True
        )  # before the data or the model loads
    push = _check_push(training_args)  # before any work: a bad repo id or a missing token fails now
    # the token is for push_model only: the Trainer pickles its arguments into training_args.bin (output and
    # every checkpoint), and a token must never be written to disk
    hub_token, training_args.hub_token = training_args.hub_token, None
    resume = _resume_path(training_args)  # a missing / half-written checkpoint fails before the model loads
    records = load_one_to_many(
        script_args.dataset_name,
        split=script_args.dataset_train_split,
        num_candidates=training_args.num_candidates,
        strict=training_args.strict_data,
    )
    check_max_length(model_args, training_args)
    model, tokenizer = load_model_and_tokenizer(
        model_args.model_name_or_path,
        chat_template_fallback=training_args.chat_template_fallback,
        load_in_4bit=model_args.load_in_4bit,
        load_in_8bit=model_args.load_in_8bit,
        revision=model_args.model_revision,
        dtype=model_args.dtype or "auto",
        trust_remote_code=training_args.trust_remote_code,
        attn_implementation=model_args.attn_implementation,
    )
    peft_config = None
    if model_args.use_peft:
        if not model_args.lora_target_modules:
            model_args.lora_target_modules = "all-linear"
        peft_config = get_peft_config(model_args)
    trainer = PossibilityTrainer(
        model, args=training_args, train_dataset=records, processing_class=tokenizer, peft_config=peft_config
    )
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(training_args.output_dir)
    if push and trainer.accelerator.is_main_process:
        from peft_diversity.hub.model import push_model

        private = True if training_args.hub_private_repo is None else training_args.hub_private_repo
        push_model(
            training_args.output_dir,
            training_args.hub_model_id,
            private=private,
            token=hub_token,
            dataset=script_args.dataset_name,
        )
    trainer.accelerator.print(f"saved {training_args.mode} model to {training_args.output_dir}")
    return trainer


def check_max_length(model_args: ModelConfig, args: PossibilityConfig) -> None:
    """`max_length` must fit the model's position window (read from its config.json, before the weights load);
    a model whose config cannot be read here is left to the loader to report."""
    if not args.max_length:
        return
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(
            resolve_model_path(model_args.model_name_or_path),
            revision=model_args.model_revision,
            trust_remote_code=args.trust_remote_code,
        )
    except Exception:  # noqa: BLE001 - load_model_and_tokenizer reports an unloadable model with its own message
        return
    config = getattr(config, "get_text_config", lambda: config)()
    window = next(
        (
            getattr(config, name)
            for name in ("max_position_embeddings", "n_positions", "n_ctx")
            if isinstance(getattr(config, name, None), int)
        ),
        None,
    )
    if window and args.max_length > window:
        raise TrainConfigError(
            f"max_length={args.max_length} is beyond {model_args.model_name_or_path}'s window "
            f"of {window} tokens: set max_length <= {window}"
        )


def _check_push(args: PossibilityConfig) -> bool:
    """`push_to_hub: true` goes through peft_diversity.hub.push_model after training (card, template, results),
    not the Trainer's own push, which would create the repo at start-up and push every checkpoint."""
    if not args.push_to_hub:
        return False
    from peft_diversity.hub.upload import resolve_token, validate_model_repo_id

    if not args.hub_model_id:
        raise TrainConfigError("push_to_hub needs hub_model_id (owner/name)")
    validate_model_repo_id(args.hub_model_id)
    resolve_token(args.hub_token)
    args.push_to_hub = False
    return True


def checkpoint_problem(folder: str | os.PathLike) -> str | None:
    """Why `folder` is not a complete Trainer checkpoint (None when it is): the Trainer writes the weights,
    optimizer and RNG state first and trainer_state.json last, so a save cut short lacks a readable one."""
    folder = Path(folder)
    if not folder.is_dir():
        return "not a folder"
    state = folder / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "trainer_state.json is unreadable"
    if not any((folder / name).is_file() for name in CHECKPOINT_WEIGHTS):
        return "no model weights"
    return weights_problem(folder)


def weights_problem(folder: Path) -> str | None:
    """Why a checkpoint's files would not load (None when they would): a safetensors file cut short (safe_open
    checks the header against the file size without reading the tensors), or a torch .bin / .pt (weights,
    optimizer, RNG state) whose zip directory is missing. A copy or a disk fault can cut them after the save."""
    import zipfile

    from safetensors import SafetensorError, safe_open

    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except (SafetensorError, OSError) as err:
            return f"{path.name} is cut short or corrupt ({' '.join(str(err).split())})"
    for path in sorted(p for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth")):
        if not zipfile.is_zipfile(path):  # torch.save writes a zip whose directory is at the end
            return f"{path.name} is cut short or corrupt (not a complete torch archive)"
    return None


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest `checkpoint-N` in output_dir that is complete; incomplete newer ones are skipped (logged)."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT_PATTERN.match(p.name))]
    for _, checkpoint in sorted(found, reverse=True):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return str(checkpoint)
        logger.warning("skipping %s: %s (a save that did not finish, or a damaged copy)", checkpoint, problem)
    return None


def _resume_path(args: PossibilityConfig) -> str | None:
    """`--resume_from_checkpoint true|last` means the newest complete checkpoint in output_dir; a folder given
    explicitly must be a complete checkpoint. Logs the checkpoint used."""
    value = args.resume_from_checkpoint
    if value is None or value is False or (isinstance(value, str) and value.lower() in ("", "false", "none")):
        return None
    if value is True or (isinstance(value, str) and value.lower() in ("true", "last")):
        last = last_complete_checkpoint(args.output_dir)
        if last is None:
            raise TrainConfigError(
                f"resume_from_checkpoint={value!r} but {args.output_dir} holds no complete "
                "checkpoint-N folder"
            )
    else:
        problem = checkpoint_problem(value)
        if problem is not None:
            raise TrainConfigError(f"resume_from_checkpoint={value!r}: not a complete checkpoint ({problem})")
        last = str(value)
    logger.warning("resuming from %s", last)
    return last


__all__ = ["make_parser", "run_training", "resolve_model_path"]


def run(script_args: ScriptArguments, training_args: PossibilityConfig, model_args: ModelConfig) -> int:
    """`peft-diversity train`: the recipe's entry point, after `cli.parse_command` (one-line errors)."""
    run_training(script_args, training_args, model_args)
    return 0
