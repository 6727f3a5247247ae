"""PossibilityConfig: SFTConfig plus the PoExFT settings (one docstring per field, as in TRL)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from trl import SFTConfig

from peft_diversity.errors import TrainConfigError
from peft_diversity.templates import DEFAULT_PLAIN_SENTENCE, DEFAULT_POSSIBILITY_SENTENCE, PossibilityTemplate
from peft_diversity.trainer.rows import MODES


@dataclass
class PossibilityConfig(SFTConfig):
    """Configuration for [`PossibilityTrainer`]: everything [`trl.SFTConfig`] takes, plus PoExFT's settings.

    Defaults that differ from SFTConfig: activation (gradient) checkpointing off (see `shared_prefix`); `bf16` only where
    CUDA supports it. Data preparation happens in the trainer (one-to-many records → positive and negative rows), so
    `dataset_kwargs={"skip_prepare_dataset": True}` and `remove_unused_columns=False` are forced.
    """

    gradient_checkpointing: bool | None = field(
        default=None,
        metadata={"help": "transformers' deprecated alias of activation_checkpointing. Default None = off (TRL's "
                          "default is True), because activation checkpointing turns off `shared_prefix`."},
    )
    """Overrides TRL's default (True), so activation checkpointing is off unless asked for (`activation_checkpointing`
    or this alias): checkpointed layers run without a KV cache, so the shared-prefix path cannot apply, and sharing the
    prefix already stores its activations once per context rather than once per row. Turn it on for models whose
    activations do not fit (e.g. the 8B QLoRA recipes)."""
    mode: str = field(default="poexft", metadata={"help": "`poexft` (PEFT), `otm` (OTMFT) or `oto` (OTOFT)."})
    """Training mode: `poexft` = tagged positives + unlikelihood negatives; `otm` = the same N candidates, no tag,
    no unlikelihood; `oto` = one candidate per context."""
    num_candidates: int = field(default=4, metadata={"help": "Candidates used per context (N)."})
    """Candidates drawn per context (N); each gets its own possibility number in `poexft` mode."""
    max_possibility: int = field(default=9, metadata={"help": "Possibility numbers are drawn from 1..max_possibility."})
    """Top of the possibility range; the N numbers of a context are distinct draws from 1..max_possibility."""
    ul_weight: float = field(default=0.5, metadata={"help": "Weight of the unlikelihood term."})
    """Weight of the unlikelihood term on mismatched (k_i, response_j) pairs (the paper uses 0.5)."""
    max_negatives: int | None = field(default=None, metadata={"help": "Cap on negatives per context (None = N(N-1))."})
    """At most this many mismatched pairs per context; None keeps all N(N-1)."""
    max_response_words: int | None = field(default=None, metadata={"help": "Truncate responses to this many words."})
    """Responses (positives and negatives) are cut to this many words; None keeps them whole."""
    task: str = field(default="dialogue", metadata={"help": "Template task: dialogue, story or custom."})
    """Which task instruction the template uses (`custom` needs `instruction`)."""
    instruction: str | None = field(default=None, metadata={"help": "Task instruction with {input}."})
    """Task instruction with an `{input}` placeholder; None = the task's default."""
    possibility_sentence: str = field(
        default=DEFAULT_POSSIBILITY_SENTENCE, metadata={"help": "Possibility sentence with {k}."}
    )
    """Sentence ending the user turn in `poexft` mode; must contain `{k}`."""
    plain_sentence: str = field(default=DEFAULT_PLAIN_SENTENCE, metadata={"help": "Sentence for otm/oto prompts."})
    """Sentence ending the user turn in `otm`/`oto` mode."""
    system_prompt: str | None = field(default=None, metadata={"help": "Optional system message."})
    """Optional system message placed before the user turn."""
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={"help": "Resume training: a checkpoint folder, or `last` / `true` for the newest COMPLETE "
                          "checkpoint-N in output_dir (half-written ones, e.g. from a kill during a save, are "
                          "skipped; the one used is logged)."},
    )
    """A checkpoint folder to resume from; `last` or `true` = the newest complete `checkpoint-N` in output_dir."""
    strict_data: bool = field(
        default=False,
        metadata={"help": "Stop on any bad record. Default: drop duplicate candidates within a record and skip "
                          "records left with fewer than num_candidates (one warning line; details in a report)."},
    )
    """False (default): duplicate candidates are dropped and records left with too few skipped, with a warning;
    True: any such record is an error. Malformed records are always an error (all listed at once)."""
    shared_prefix: bool = field(
        default=True,
        metadata={"help": "Run each context's shared prompt prefix once (KV cache gathered to its rows) instead of "
                          "once per row. Same loss and gradients; off (with one log line saying why) under "
                          "activation checkpointing, packing, mode oto and models without a KV cache."},
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

    def __post_init__(self) -> None:
        if self.bf16 is None and not self.fp16:
            # TRL turns bf16 on by default; on a machine without CUDA that means slow CPU autocast (or an error)
            self.bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        super().__post_init__()
        self.dataset_kwargs = {**(self.dataset_kwargs or {}), "skip_prepare_dataset": True}
        self.remove_unused_columns = False
        self.validate_possibility_settings()

    def validate_possibility_settings(self) -> None:
        """Raise before any training starts on settings that cannot work."""
        if self.mode not in MODES:
            raise TrainConfigError(f"unknown mode {self.mode!r}; choose one of {MODES}")
        if self.num_candidates < 1:
            raise TrainConfigError(f"num_candidates must be >= 1, got {self.num_candidates}")
        if self.mode == "poexft" and self.max_possibility < self.num_candidates:
            raise TrainConfigError(
                f"max_possibility ({self.max_possibility}) must be >= num_candidates ({self.num_candidates})"
            )
        if self.ul_weight < 0:
            raise TrainConfigError(f"ul_weight must be >= 0, got {self.ul_weight}")
        if self.max_negatives is not None and self.max_negatives < 0:
            raise TrainConfigError(f"max_negatives must be >= 0 or None, got {self.max_negatives}")
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
