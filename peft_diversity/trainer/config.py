"""PossibilityConfig: SFTConfig plus the PoExFT settings (one docstring per field, as in TRL)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from trl import SFTConfig

from peft_diversity.errors import TrainConfigError
from peft_diversity.templates import DEFAULT_PLAIN_SENTENCE, DEFAULT_POSSIBILITY_SENTENCE, PossibilityTemplate
from peft_diversity.trainer.rows import check_row_settings


@dataclass
class PossibilityConfig(SFTConfig):
    """Configuration for [`PossibilityTrainer`]: everything [`trl.SFTConfig`] takes, plus PoExFT's settings.

    Defaults that differ from SFTConfig: activation (gradient) checkpointing off (see `shared_prefix`); `bf16` only where
    CUDA supports it. Data preparation happens in the trainer (one-to-many records → positive and negative rows), so
    `dataset_kwargs={"skip_prepare_dataset": True}` and `remove_unused_columns=False` are forced.
    """

    mode: str = field(default="poexft", metadata={"help": "`poexft` (PEFT), `otm` (OTMFT) or `oto` (OTOFT)."})
    """Training mode: `poexft` = tagged positives + unlikelihood negatives; `otm` = the same N candidates, no tag,
    no unlikelihood; `oto` = one candidate per context."""
    num_candidates: int = field(default=4, metadata={"help": "Candidates used per context (N)."})
    """Candidates drawn per context (N); each gets its own possibility number in `poexft` mode."""
    max_possibility: int = field(
        default=9, metadata={"help": "Possibility numbers are drawn from 1..max_possibility."}
    )
    """Top of the possibility range; the N numbers of a context are distinct draws from 1..max_possibility."""
    ul_weight: float = field(default=0.5, metadata={"help": "Weight of the unlikelihood term."})
    """Weight of the unlikelihood term on mismatched (k_i, response_j) pairs (the paper uses 0.5)."""
    max_negatives: int | None = field(
        default=None, metadata={"help": "Cap on negatives per context (None = N(N-1))."}
    )
    """At most this many mismatched pairs per context; None keeps all N(N-1)."""
    max_response_words: int | None = field(
        default=None, metadata={"help": "Truncate responses to this many words."}
    )
    """Responses (positives and negatives) are cut to this many words; None keeps them whole."""
    task: str = field(default="dialogue", metadata={"help": "Template task: dialogue, story or custom."})
    """Which task instruction the template uses (`custom` needs `instruction`)."""
    instruction: str | None = field(default=None, metadata={"help": "Task instruction with {input}."})
    """Task instruction with an `{input}` placeholder; None = the task's default."""
    possibility_sentence: str = field(
        default=DEFAULT_POSSIBILITY_SENTENCE, metadata={"help": "Possibility sentence with {k}."}
    )
    """Sentence ending the user turn in `poexft` mode; must contain `{k}`."""
    plain_sentence: str = field(
        default=DEFAULT_PLAIN_SENTENCE, metadata={"help": "Sentence for otm/oto prompts."}
    )
    """Sentence ending the user turn in `otm`/`oto` mode."""
    system_prompt: str | None = field(default=None, metadata={"help": "Optional system message."})
    """Optional system message placed before the user turn."""
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={
            "help": "Resume training: a checkpoint folder, or `last` / `true` for the newest COMPLETE "
            "checkpoint-N in output_dir (half-written ones, e.g. from a kill during a save, and ones "
            "whose weights are cut short are skipped; the one used is logged)."
        },
    )
    """A checkpoint folder to resume from; `last` or `true` = the newest complete `checkpoint-N` in output_dir."""
    strict_data: bool = field(
        default=False,
        metadata={
            "help": "Stop on any bad record. Default: drop duplicate candidates within a record and skip "
            "records left with fewer than num_candidates (one warning line; details in a report)."
        },
    )
    """False (default): duplicate candidates are dropped and records left with too few skipped, with a warning;
    True: any such record is an error. Malformed records are always an error (all listed at once)."""
    shared_prefix: bool = field(
        default=True,
        metadata={
            "help": "Run each context's shared prompt prefix once (KV cache gathered to its rows) instead of "
            "once per row. Same loss and gradients; off (with one log line saying why) under "
            "activation checkpointing, packing, mode oto and models without a KV cache."
        },
    )
    """True (default): each context's rows share one forward pass of their common prompt prefix, whose KV cache is
    gathered to the rows (gradients flow back into it), and only the rows' tails run separately: the same loss and
    gradients as running every row in full, in a fraction of the time for 4 positives + 4..12 negatives. Where it
    cannot apply (activation checkpointing, packing, `oto` mode's single row, a model without a KV cache) the
    trainer logs one line saying why and runs every row in full. False: always run every row in full."""
    chat_template_fallback: bool = field(
        default=True, metadata={"help": "Give tokenizers without a chat template a plain fallback one."}
    )
    """When the tokenizer has no chat template: True = use the plain fallback template; False = error."""
    max_length: int | None = field(
        default=1024,
        metadata={
            "help": "Longest training row (prompt + response) in tokens. A longer row loses the START of its "
            "prompt first (the possibility sentence at its end stays; the prompt keeps at least half), "
            "then the end of its response. None = rows are never cut."
        },
    )
    """Longest row in tokens: the prompt is cut from the left (keeping at least half the budget), then the response
    from the right; None keeps rows whole. This replaces SFTConfig's `truncation_mode`, which is not used."""
    # transformers 5 renamed gradient_checkpointing to activation_checkpointing; TRL still sets the old name to True,
    # which warned on every run. Both unset here: _resolve_checkpointing turns the new name off by default.
    activation_checkpointing: bool | None = field(
        default=None,
        metadata={
            "help": "Recompute activations in the backward pass to save memory (default: off, unlike TRL, "
            "because it turns off `shared_prefix`; turn it on for models whose activations do not fit).",
            "nargs": "?",
            "const": True,
        },
    )
    """Activation (gradient) checkpointing; None = off. TRL's default is on, but checkpointed layers run without a KV
    cache, so the shared-prefix path cannot apply, and sharing the prefix already stores its activations once per
    context rather than once per row. Turn it on for models whose activations do not fit (e.g. the 8B QLoRA
    recipes)."""
    gradient_checkpointing: bool | None = field(
        default=None,
        metadata={
            "help": "Alias of `activation_checkpointing` (its name before transformers 5).",
            "nargs": "?",
            "const": True,
        },
    )

    def __post_init__(self) -> None:
        check_unsupported_settings(args=self)  # before TRL's own deprecation warnings for the same settings
        if self.bf16 is None and not self.fp16:
            # TRL turns bf16 on by default; on a machine without CUDA that means slow CPU autocast (or an error)
            self.bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        self._resolve_checkpointing()
        if not torch.accelerator.is_available():
            self.dataloader_pin_memory = (
                False  # pinning needs an accelerator; torch warns on every DataLoader
            )
        super().__post_init__()
        self.dataset_kwargs = {**(self.dataset_kwargs or {}), "skip_prepare_dataset": True}
        self.remove_unused_columns = False
        self.validate_possibility_settings()

    def _resolve_checkpointing(self) -> None:
        """`gradient_checkpointing` is our alias of transformers 5's `activation_checkpointing` (recipes and YAML
        files written for older versions keep working, without a deprecation warning on every run); unset, both
        mean off (see `activation_checkpointing`)."""
        old, new = self.gradient_checkpointing, self.activation_checkpointing
        if old is not None and new is not None and bool(old) != bool(new):
            raise TrainConfigError(
                f"gradient_checkpointing={old} and activation_checkpointing={new} disagree; "
                "set only activation_checkpointing"
            )
        self.activation_checkpointing = bool(old) if new is None else new
        self.gradient_checkpointing = None  # transformers copies the resolved value back to it

    def validate_possibility_settings(self) -> None:
        """Raise before any training starts on settings that cannot work."""
        check_row_settings(self.mode, self.num_candidates, self.max_possibility, self.max_negatives)
        if self.ul_weight < 0:
            raise TrainConfigError(f"ul_weight must be >= 0, got {self.ul_weight}")
        self.template()  # raises on a malformed template

    def template(self) -> PossibilityTemplate:
        """The PossibilityTemplate these settings describe."""
        return PossibilityTemplate(
            task=self.task,
            instruction=self.instruction,
            possibility_sentence=self.possibility_sentence,
            plain_sentence=self.plain_sentence,
            max_possibility=self.max_possibility,
            system_prompt=self.system_prompt,
        )


# ----- TRL settings the trainer accepts but cannot honour ---------------------------------------------------------
@dataclass(frozen=True)
class Unsupported:
    """A setting inherited from TRL (ScriptArguments, SFTConfig, ModelConfig) that PoExFT training does not honour:
    any value outside `accepted` is an error naming the setting and why, never silently ignored."""

    owner: str  # the dataclass holding it: "script" (ScriptArguments), "train" (PossibilityConfig), "model" (ModelConfig)
    name: str
    accepted: tuple[Any, ...]  # accepted[0] is the default
    why: str
    cli_only: bool = (
        False  # PossibilityTrainer honours it when given a model id; only `train`'s own loading ignores it
    )


_LOSS = "the loss is PoExFT's MLE + unlikelihood on the response tokens (see mode and ul_weight)"
_ROWS = "PossibilityTrainer builds its own positive/negative rows from one-to-many records"
UNSUPPORTED_SETTINGS: tuple[Unsupported, ...] = (
    Unsupported(
        "script",
        "dataset_config",
        (None,),
        "pass a file, folder or dataset id whose default config holds the data",
        cli_only=True,
    ),
    Unsupported(
        "script",
        "dataset_test_split",
        ("test",),
        "training uses no evaluation split; use `experiment` to evaluate",
        cli_only=True,
    ),
    Unsupported(
        "script",
        "dataset_streaming",
        (False,),
        "one-to-many records are loaded and validated in memory",
        cli_only=True,
    ),
    Unsupported(
        "script",
        "ignore_bias_buffers",
        (False,),
        "a switch of TRL's example scripts; this trainer does not read it",
        cli_only=True,
    ),
    Unsupported(
        "train",
        "eval_strategy",
        ("no",),
        "training has no evaluation set; use `experiment` to evaluate",
        cli_only=True,
    ),
    Unsupported(
        "train",
        "model_init_kwargs",
        (None,),
        "the model is loaded from model_name_or_path with the "
        "dtype, attn_implementation, model_revision and load_in_4bit/load_in_8bit settings",
        cli_only=True,
    ),
    Unsupported("train", "packing", (False,), f"positive/negative rows cannot be packed ({_ROWS})"),
    Unsupported("train", "packing_strategy", ("bfd",), "rows are never packed"),
    Unsupported("train", "eval_packing", (None, False), "rows are never packed"),
    Unsupported("train", "padding_free", (False,), "positive/negative rows are padded per batch"),
    Unsupported(
        "train", "completion_only_loss", (None, True), "the loss is always on the response tokens only"
    ),
    Unsupported("train", "assistant_only_loss", (False,), "the loss is always on the response tokens only"),
    Unsupported(
        "train", "dataset_text_field", ("text",), "records need context/prompt + candidates, not a text field"
    ),
    Unsupported("train", "dataset_num_proc", (None,), f"TRL's dataset preparation is skipped ({_ROWS})"),
    Unsupported(
        "train", "shuffle_dataset", (False,), "the Trainer's sampler already draws contexts in random order"
    ),
    Unsupported(
        "train",
        "truncation_mode",
        ("keep_start",),
        "a row longer than max_length loses the start of its "
        "prompt, then the end of its response (see max_length)",
    ),
    Unsupported("train", "loss_type", ("nll", "chunked_nll"), _LOSS),
    Unsupported("train", "label_smoothing_factor", (0.0,), _LOSS),
    Unsupported("train", "router_aux_loss_coef", (None,), _LOSS + "; it has no MoE router term"),
    Unsupported(
        "train",
        "use_liger_kernel",
        (False,),
        "the loss reads the labelled positions itself, so Liger's fused loss would never run",
    ),
    Unsupported(
        "train",
        "chat_template_path",
        (None,),
        "rows are rendered with the tokenizer's own chat template "
        "before TRL would apply this one; save the template you want with the tokenizer",
    ),
    Unsupported(
        "train", "pad_token", (None,), "the collator pads with the tokenizer's pad token; set it there"
    ),
    Unsupported("model", "bnb_4bit_quant_type", ("nf4",), "4-bit loading is NF4 with double quantisation"),
    Unsupported("model", "bnb_4bit_quant_storage", (None,), "4-bit loading is NF4 with double quantisation"),
)


def check_unsupported_settings(
    script_args: Any = None, args: Any = None, model_args: Any = None, *, cli: bool = False
) -> None:
    """TrainConfigError naming the first inherited setting in UNSUPPORTED_SETTINGS given a value PoExFT training
    would ignore. `cli=True` (the `train` command) also checks the settings only its own loading ignores."""
    holders = {"script": script_args, "train": args, "model": model_args}
    for setting in UNSUPPORTED_SETTINGS:
        holder = holders[setting.owner]
        if holder is None or (setting.cli_only and not cli):
            continue
        value = getattr(holder, setting.name, setting.accepted[0])
        value = getattr(value, "value", value)  # enums (eval_strategy)
        if value not in setting.accepted:
            raise TrainConfigError(
                f"{setting.name}={value!r} is not supported by PoExFT training ({setting.why}); "
                f"remove it (default {setting.accepted[0]!r})"
            )
