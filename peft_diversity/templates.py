"""Possibility templates: how a (record, k) pair becomes chat messages and a prompt string.

The possibility sentence is the LAST thing in the user turn, so the K prompts of one context share every
token up to the possibility number. Generation relies on that to compute the shared prefix once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from peft_diversity.errors import TemplateError
from peft_diversity.jsonl import read_json, write_json

TEMPLATE_FILENAME = "possibility_config.json"
TRAINED_KEY = "trained"
"""Key of possibility_config.json written at training time: `{"mode": ...}` says the template is the one the
model was trained with, and in which mode (what `default_decoder` reads)."""

TASK_INSTRUCTIONS = {
    "dialogue": "Here is a conversation:\n{input}\n\nWrite the next reply in this conversation, as the next speaker.",
    "story": "Write the opening of a short story for this prompt:\n{input}",
}
DEFAULT_POSSIBILITY_SENTENCE = (
    "There are many possible responses. Think about all the possibilities, then give the response that "
    "corresponds to possibility number #{k}."
)
DEFAULT_PLAIN_SENTENCE = "Give your response."
# Closing sentences of the two prompting baselines (and of the data builder's teacher, which lists candidates)
LISTING_SENTENCE = (
    "Give {count} different possible responses, numbered from 1 to {count}, one per line (1. ... 2. ...)."
)
ITERATIVE_SENTENCE = (
    "Here are responses that were already given:\n{previous}\n\n"
    "Give one new response that is different from all of them."
)
# Used when a tokenizer has no chat template of its own (e.g. the offline BERT-based default generator).
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}\n\n"
    "{% elif message['role'] == 'user' %}user: {{ message['content'] }}\n"
    "{% else %}assistant: {{ message['content'] }}{{ eos_token }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


@dataclass
class PossibilityTemplate:
    """Wording of the training/inference prompt; saved beside every trained model."""

    task: str = "dialogue"
    """Task name: `dialogue`, `story` or `custom` (custom needs `instruction`)."""
    instruction: str | None = None
    """Task instruction with an `{input}` placeholder; None = the task's default."""
    possibility_sentence: str = DEFAULT_POSSIBILITY_SENTENCE
    """Sentence appended to the user turn in `poexft` mode; must contain `{k}`."""
    plain_sentence: str = DEFAULT_PLAIN_SENTENCE
    """Sentence appended instead in `otm`/`oto` mode and for untagged baselines."""
    max_possibility: int = 9
    """Largest possibility number the model was trained with (k is drawn from 1..max_possibility)."""
    system_prompt: str | None = None
    """Optional system message, placed before the user turn."""

    def __post_init__(self) -> None:
        if self.instruction is None:
            if self.task not in TASK_INSTRUCTIONS:
                raise TemplateError(
                    f"task {self.task!r} has no default instruction; give `instruction` with an {{input}} "
                    f"placeholder (known tasks: {sorted(TASK_INSTRUCTIONS)})"
                )
            self.instruction = TASK_INSTRUCTIONS[self.task]
        if "{input}" not in self.instruction:
            raise TemplateError(f"template instruction must contain '{{input}}': {self.instruction!r}")
        if "{k}" not in self.possibility_sentence:
            raise TemplateError(f"possibility_sentence must contain '{{k}}': {self.possibility_sentence!r}")
        if self.max_possibility < 1:
            raise TemplateError(f"max_possibility must be >= 1, got {self.max_possibility}")

    # ----- rendering -------------------------------------------------------------------------------
    def render_input(self, record: dict[str, Any]) -> str:
        """The record's context (dialogue turns, story prompt or custom input) as plain text."""
        source = record.get("context", record.get("prompt"))
        if source is None:
            raise TemplateError(f"record {record.get('id', '?')!r} has neither 'context' nor 'prompt'")
        if isinstance(source, str):
            return source.strip()
        return "\n".join(_render_turn(turn) for turn in source)

    def user_message(self, record: dict[str, Any], k: int | None, sentence: str | None = None) -> str:
        """User turn text; `k=None` gives the plain (untagged) wording; `sentence` replaces the closing sentence."""
        body = self.instruction.replace("{input}", self.render_input(record))
        if sentence is not None:
            return f"{body}\n\n{sentence}"
        if k is None:
            return f"{body}\n\n{self.plain_sentence}"
        if not 1 <= k <= self.max_possibility:
            raise TemplateError(f"possibility k={k} is outside 1..{self.max_possibility}")
        return f"{body}\n\n{self.possibility_sentence.replace('{k}', str(k))}"

    def messages(
        self, record: dict[str, Any], k: int | None, response: str | None = None, sentence: str | None = None
    ) -> list[dict]:
        """Chat messages for (record, k), with the assistant `response` appended when given."""
        msgs = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        msgs.append({"role": "user", "content": self.user_message(record, k, sentence)})
        if response is not None:
            msgs.append({"role": "assistant", "content": response})
        return msgs

    def prompt_text(
        self, tokenizer, record: dict[str, Any], k: int | None, sentence: str | None = None
    ) -> str:
        """The generation prompt string, rendered by the tokenizer's own chat template."""
        ensure_chat_template(tokenizer)
        return tokenizer.apply_chat_template(
            self.messages(record, k, sentence=sentence), tokenize=False, add_generation_prompt=True
        )

    # ----- persistence ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PossibilityTemplate:
        known = {f.name for f in fields(cls)}
        data = {
            key: value for key, value in data.items() if key != TRAINED_KEY
        }  # not wording: see TRAINED_KEY
        unknown = sorted(set(data) - known)
        if unknown:
            raise TemplateError(f"unknown template fields {unknown}; known: {sorted(known)}")
        return cls(**data)

    def save_pretrained(self, directory: str | os.PathLike, mode: str | None = None) -> Path:
        """Write `possibility_config.json` into `directory` atomically; `mode` (given by the trainer) records that
        a model was trained with this template, in that mode."""
        data = self.to_dict() if mode is None else {**self.to_dict(), TRAINED_KEY: {"mode": mode}}
        return write_json(Path(directory) / TEMPLATE_FILENAME, data)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike) -> PossibilityTemplate:
        """Read the template saved beside a model (local folder or Hub repo id)."""
        path = Path(name_or_path) / TEMPLATE_FILENAME
        if not path.is_file():
            path = _hub_file(str(name_or_path), TEMPLATE_FILENAME)
        return cls.from_dict(read_json(path, error=TemplateError, kind=dict))


def listing_sentence(count: int) -> str:
    """The listing baseline's closing sentence: `count` numbered responses in one reply."""
    return LISTING_SENTENCE.replace("{count}", str(count))


def iterative_sentence(previous: Sequence[str]) -> str:
    """The iterative baseline's closing sentence, showing the responses given so far."""
    listed = "\n".join(f"{i}. {text}" for i, text in enumerate(previous, start=1))
    return ITERATIVE_SENTENCE.replace("{previous}", listed)


# ----- look-up: the template saved beside a model ----------------------------------------------------------
def load_template(source: str | os.PathLike) -> PossibilityTemplate:
    """A template from a JSON file, a folder holding possibility_config.json, or a Hub repo id."""
    path = Path(source)
    if path.is_file():
        return PossibilityTemplate.from_dict(read_json(path, error=TemplateError, kind=dict))
    return PossibilityTemplate.from_pretrained(source)


def find_template(name_or_path: str | os.PathLike | None) -> PossibilityTemplate | None:
    """The template saved in a model folder (or Hub repo, when reachable); None when there is none."""
    if not name_or_path:
        return None
    name = str(name_or_path)
    if Path(name).is_dir():
        return load_template(name) if (Path(name) / TEMPLATE_FILENAME).is_file() else None
    try:
        return PossibilityTemplate.from_pretrained(name)
    except (FileNotFoundError, OSError):
        return None


def default_decoder(name_or_path: str | os.PathLike) -> str:
    """The decoder a model is read with unless one is asked for: `possibilities` for a model trained with
    peft_diversity in poexft mode, else `sampling` (otm/oto models, and models without a template).

    The mode is the one the trainer recorded in possibility_config.json; a model saved before that was recorded
    falls back to its training settings (`hub.metadata.trained_mode`), and one with a template but no readable mode
    is taken as poexft."""
    if find_template(name_or_path) is None:
        return "sampling"
    mode = _recorded_mode(str(name_or_path))
    if mode is None:  # saved before possibility_config.json carried the mode
        from peft_diversity.hub.metadata import trained_mode

        mode = trained_mode(name_or_path)
    return "sampling" if mode in ("otm", "oto") else "possibilities"


def _recorded_mode(name_or_path: str) -> str | None:
    path = Path(name_or_path) / TEMPLATE_FILENAME
    try:
        data = json.loads(
            (path if path.is_file() else _hub_file(name_or_path, TEMPLATE_FILENAME)).read_text("utf-8")
        )
    except (OSError, ValueError):  # find_template already said a template exists; only the mode is optional
        return None
    mode = data.get(TRAINED_KEY, {}).get("mode") if isinstance(data.get(TRAINED_KEY), dict) else None
    return mode if isinstance(mode, str) else None


# ----- dialogue turns ----------------------------------------------------------------------------------------
def turn_line(turn: Any) -> str:
    """A dialogue turn as "speaker: text" (a plain turn as it is); missing keys render empty."""
    return f"{turn.get('speaker', '')}: {turn.get('text', '')}" if isinstance(turn, dict) else str(turn)


def turn_body(turn: Any) -> str:
    """What a dialogue turn says, without its speaker."""
    return str(turn.get("text", "")) if isinstance(turn, dict) else str(turn)


def is_empty_input(source: Any) -> bool:
    """True for a missing or blank prompt, or a context none of whose turns says anything."""
    if source is None:
        return True
    if isinstance(source, str):
        return not source.strip()
    return not any(turn_body(turn).strip() for turn in source)


def _render_turn(turn: Any) -> str:
    if isinstance(turn, dict):
        return f"{turn['speaker']}: {turn['text']}"
    return str(turn)


def _hub_file(repo_id: str, filename: str) -> Path:
    """Fetch a file from a Hub repo (honours HF_HUB_OFFLINE); a clear error when absent."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(hf_hub_download(repo_id, filename))
    except (EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError, ValueError) as err:
        raise FileNotFoundError(
            f"no {filename} found for {repo_id!r}: the model was not trained with peft_diversity, or it is not "
            "available offline. Pass a template explicitly (--template path/to/possibility_config.json)."
        ) from err


def ensure_chat_template(tokenizer, fallback: bool = True) -> None:
    """Give a tokenizer without a chat template the plain fallback one (in place).

    With `fallback=False` a tokenizer without a chat template is an error instead.
    """
    if getattr(tokenizer, "chat_template", None):
        return
    if not fallback:
        raise TemplateError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no chat template and "
            "chat_template_fallback is False: set a chat template on the tokenizer or allow the fallback"
        )
    tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
