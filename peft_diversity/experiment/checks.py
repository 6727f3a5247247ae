"""The whole experiment YAML checked before any work: every key's type (from the dataclasses' annotations),
unknown keys at every level (`train:` / `mode_overrides:` against PossibilityConfig, `lora:` against TRL's
ModelConfig, `generation:` / `runs[].settings` against each decoder's settings and transformers'
GenerationConfig) and the runs' (model, decoder) pairs. Every problem is one `key.path: message` line."""

from __future__ import annotations

import dataclasses
import difflib
import enum
import inspect
import types
import typing
import warnings
from typing import Any

from peft_diversity.errors import PeftDiversityError

# keys of the experiment's training and model settings that the experiment sets itself
SET_BY_EXPERIMENT = {
    "train": {
        "output_dir": "run folder",
        "mode": "`modes:`",
        "resume_from_checkpoint": "the run folder's state",
    },
    "lora": {"model_name_or_path": "`base_model:`", "use_peft": "a non-empty `lora:`"},
}
REQUIRED = ("name", "base_model", "dataset", "runs")
TRAIN_LISTING = "PossibilityConfig's fields (`peft-diversity train --help`)"
GENERATION_LISTING = "the decoder's settings (`generate --help`) and transformers GenerationConfig's fields"


def experiment_problems(data: dict[str, Any], config_class: type) -> list[str]:
    """Every problem of an experiment mapping (empty when it can run), each as `key.path: message`."""
    problems: list[str] = []
    hints = typing.get_type_hints(config_class)
    problems += [f"{key}: {_unknown(key, hints)}" for key in data if key not in hints]
    problems += [f"{key}: missing (required)" for key in REQUIRED if key not in data]
    typed = {}
    for key, value in data.items():
        if key in hints and key != "runs":
            problem = type_problem(value, hints[key])
            if problem:
                problems.append(f"{key}: {problem}")
            else:
                typed[key] = value
    defaults = {
        f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        for f in dataclasses.fields(config_class)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    }
    config = {**defaults, **typed}
    problems += _value_problems(config)
    problems += _training_problems(config)
    problems += _lora_problems(config.get("lora"))
    problems += _run_problems(data.get("runs"), config)
    problems += _judge_problems(config.get("judge"))
    return problems


# ----- types ----------------------------------------------------------------------------------------------------
def type_problem(value: Any, hint: Any) -> str | None:
    """`must be <type>, got <value>` when `value` (as YAML gives it) does not fit the annotation `hint`."""
    if _fits(value, hint):
        return None
    text_number = isinstance(value, str) and _is_number(value) and _fits(1.0, hint)
    exponent = text_number and "e" in value.lower()  # YAML 1.1 reads 1e-3 as text, 1.0e-3 as a number
    hint_text = f" (YAML reads {value} as text: give it a dot, as in 1.0e-3)" if exponent else ""
    return f"must be {_describe(hint)}, got {value!r}{hint_text}"


def _fits(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args
    if origin is list:
        return (
            isinstance(value, list) and all(_fits(item, args[0]) for item in value)
            if args
            else isinstance(value, list)
        )
    if origin is dict:
        return isinstance(value, dict) and (
            not args or all(_fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items())
        )
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return isinstance(value, hint) or value in {member.value for member in hint}
    return True  # a type this check does not model (a dataclass, a protocol): the setting itself decides


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args)
    if origin is typing.Literal:
        return f"one of {list(args)}"
    if origin is list:
        return f"a list of {_describe(args[0])}" if args else "a list"
    if origin is dict:
        return "a mapping"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return f"one of {[member.value for member in hint]}"
    names = {int: "an integer", float: "a number", str: "text", bool: "true or false", type(None): "null"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _unknown(key: str, known: Any, listing: str | None = None) -> str:
    """`unknown key (did you mean ...?); known: ...` (`listing` stands for a list too long for one line)."""
    close = difflib.get_close_matches(str(key), [str(k) for k in known], n=1)
    return (
        f"unknown key{f' (did you mean {close[0]!r}?)' if close else ''}; "
        f"known: {listing or sorted(map(str, known))}"
    )


def _keys_problems(
    where: str,
    settings: dict[str, Any],
    hints: dict[str, Any],
    own: dict[str, str],
    listing: str | None = None,
) -> list[str]:
    """Unknown keys, keys the experiment sets itself (`own`), and wrong types of a settings mapping."""
    problems = []
    for key, value in settings.items():
        if key in own:
            problems.append(f"{where}.{key}: set by the experiment ({own[key]}); remove it")
        elif key not in hints:
            problems.append(f"{where}.{key}: {_unknown(key, set(hints) - set(own), listing)}")
        elif problem := type_problem(value, hints[key]):
            problems.append(f"{where}.{key}: {problem}")
    return problems


# ----- the sections -------------------------------------------------------------------------------------------
def _value_problems(config: dict[str, Any]) -> list[str]:
    from peft_diversity.scoring.report import KNOWN_METRICS
    from peft_diversity.trainer.rows import MODES

    problems = [
        f"modes: unknown modes [{m!r}]; choose from {list(MODES)}" for m in config["modes"] if m not in MODES
    ]
    problems += [
        f"metrics: unknown metrics [{m!r}]; choose from {list(KNOWN_METRICS)}"
        for m in config["metrics"]
        if m not in KNOWN_METRICS
    ]
    for key in ("num_responses", "num_eval_contexts"):
        if config.get(key) is not None and config[key] < 1:
            problems.append(f"{key}: must be >= 1, got {config[key]}")
    return problems


def _training_problems(config: dict[str, Any]) -> list[str]:
    """`train:` and `mode_overrides.<mode>:` against PossibilityConfig's fields, then each mode's settings built
    into a real PossibilityConfig (its own checks: scheduler names, PoExFT ranges, ...), and the template."""
    from peft_diversity.templates import PossibilityTemplate, TemplateError
    from peft_diversity.trainer.config import PossibilityConfig
    from peft_diversity.trainer.rows import MODES

    hints, own = typing.get_type_hints(PossibilityConfig), SET_BY_EXPERIMENT["train"]
    problems = _keys_problems("train", config["train"], hints, own, TRAIN_LISTING)
    for mode, overrides in config["mode_overrides"].items():
        if mode not in MODES:
            problems.append(f"mode_overrides.{mode}: unknown mode; choose from {list(MODES)}")
        problems += _keys_problems(f"mode_overrides.{mode}", overrides, hints, own, TRAIN_LISTING)
    if problems:
        return problems
    for mode in config["modes"]:
        settings = {**config["train"], **config["mode_overrides"].get(mode, {})}
        try:
            with warnings.catch_warnings():  # the real run warns once; this trial build stays quiet
                warnings.simplefilter("ignore")
                PossibilityConfig(
                    **{"report_to": [], "bf16": False, **settings, "output_dir": "unused", "mode": mode}
                )
        except (ValueError, TypeError) as err:  # TrainConfigError is a ValueError
            where = f"mode_overrides.{mode}" if mode in config["mode_overrides"] else "train"
            return [f"{where}: {' '.join(str(err).split())} (as mode {mode})"]
    names = {f.name for f in dataclasses.fields(PossibilityTemplate)}
    try:
        PossibilityTemplate(**{k: v for k, v in config["train"].items() if k in names})
    except TemplateError as err:
        problems.append(f"train: {err}")
    return problems


def _lora_problems(lora: dict[str, Any] | None) -> list[str]:
    from trl import ModelConfig

    return _keys_problems("lora", lora or {}, typing.get_type_hints(ModelConfig), SET_BY_EXPERIMENT["lora"])


def _run_problems(runs: Any, config: dict[str, Any]) -> list[str]:
    """`runs:` entries, and `generation:` against the decoder of every run it reaches."""
    from peft_diversity.experiment.config import BASE, DETERMINISTIC_DECODERS, SAMPLING_KEYS
    from peft_diversity.generation.decoders import DECODERS

    any_decoder = decoder_settings(None)
    problems = _generation_keys("generation", config["generation"], any_decoder, None)
    problems += _generation_values("generation", config["generation"])
    if runs is None:
        return problems
    if not isinstance(runs, list):
        return [*problems, f"runs: must be a list of {{model, decoder, settings}} mappings, got {runs!r}"]
    unknown_shared: set[str] = set()
    for i, run in enumerate(runs):
        where = f"runs[{i}]"
        if (
            not isinstance(run, dict)
            or not isinstance(run.get("model"), str)
            or not isinstance(run.get("decoder"), str)
        ):
            problems.append(f"{where}: must be a mapping with 'model' and 'decoder' (text), got {run!r}")
            continue
        problems += [f"{where}.{key}: {_unknown(key, RUN_KEYS)}" for key in run if key not in RUN_KEYS]
        model, decoder, settings = run["model"], run["decoder"], run.get("settings") or {}
        name = f"{model}__{decoder}"
        if decoder not in DECODERS:
            problems.append(
                f"{where}.decoder: run {name}: unknown decoder {decoder!r}; choose from {list(DECODERS)}"
            )
            continue
        if model != BASE and model not in config["modes"]:
            problems.append(
                f"{where}.model: run {name}: model {model!r} is neither 'base' nor a trained mode "
                f"{config['modes']}"
            )
        if decoder == "possibilities" and model != "poexft":
            problems.append(f"{where}: run {name}: the possibilities decoder needs a PoExFT model")
        known = decoder_settings(decoder)
        shared = [
            k for k in config["generation"] if not (decoder in DETERMINISTIC_DECODERS and k in SAMPLING_KEYS)
        ]
        unknown_shared |= {k for k in shared if k not in known and k in any_decoder}
        if not isinstance(settings, dict):
            problems.append(f"{where}.settings: must be a mapping, got {settings!r}")
            continue
        problems += _generation_keys(f"{where}.settings", settings, known, decoder)
        problems += _generation_values(f"{where}.settings", settings)
    problems += [
        f"generation.{key}: not a setting of every run's decoder (it reaches them all); move it to the "
        "runs[].settings of the runs whose decoder takes it"
        for key in sorted(unknown_shared)
    ]
    return problems


# a run's keys (`variant` is what `sweep:` expanded it with; see experiment/runs.py)
RUN_KEYS = ("model", "decoder", "settings", "variant")
# what the experiment passes the decoders itself
EXPERIMENT_GENERATION_KEYS = {"contexts": "the held-out split", "num_responses": "`num_responses:`"}


def decoder_settings(decoder: str | None) -> dict[str, Any]:
    """{setting: annotation} a decoder takes (None: any decoder): its own settings (`Decoder.setting_types`), the
    settings every decoder takes (`RunSettings`) and every transformers GenerationConfig attribute (the rest of the
    settings go to `model.generate`)."""
    from transformers import GenerationConfig

    from peft_diversity.generation.batch import RunSettings
    from peft_diversity.generation.decoders import DECODERS

    known: dict[str, Any] = {key: Any for key in GenerationConfig().to_dict() if not key.startswith("_")}
    known.pop("transformers_version", None)
    known.update(typing.get_type_hints(RunSettings))
    for name, function in DECODERS.items():
        if decoder in (None, name):
            known.update(
                {
                    key: annotation
                    for key, annotation in function.setting_types().items()
                    if key not in EXPERIMENT_GENERATION_KEYS
                }
            )
    return known


def _generation_keys(
    where: str, settings: dict[str, Any], known: dict[str, Any], decoder: str | None
) -> list[str]:
    """Keys the experiment sets, unknown keys and wrong types of `generation:` (decoder None: known to any
    decoder) or of one run's `settings:`."""
    problems = []
    for key, value in settings.items():
        if key in EXPERIMENT_GENERATION_KEYS:
            problems.append(
                f"{where}.{key}: set by the experiment ({EXPERIMENT_GENERATION_KEYS[key]}); remove it"
            )
        elif key not in known:
            problems.append(
                f"{where}.{key}: {f'not a setting of the {decoder} decoder; ' if decoder else ''}"
                f"{_unknown(key, known, GENERATION_LISTING)}"
            )
        elif known[key] is not inspect.Parameter.empty and (problem := type_problem(value, known[key])):
            problems.append(f"{where}.{key}: {problem}")
    return problems


def _generation_values(where: str, settings: dict[str, Any]) -> list[str]:
    """The decoders' own range checks (temperature, top_p, ..., max_new_tokens), run now rather than after
    training."""
    from peft_diversity.generation.core import (
        DEFAULT_MAX_NEW_TOKENS,
        check_new_tokens,
        check_sampling_settings,
    )

    problems = []
    for check in (
        lambda: check_sampling_settings(settings),
        lambda: check_new_tokens(
            settings.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS), settings.get("min_new_tokens")
        ),
    ):
        try:
            check()
        except PeftDiversityError as err:
            problems.append(f"{where}: {err}")
    return problems


def _judge_problems(judge: dict[str, Any] | None) -> list[str]:
    from peft_diversity.scoring.judges import JUDGE_KEYS

    if judge is None:
        return []
    problems = [f"judge.{key}: {_unknown(key, JUDGE_KEYS)}" for key in judge if key not in JUDGE_KEYS]
    if "model" not in judge:
        problems.append("judge: must be a mapping with at least 'model' (id, path or builtin:)")
    return problems
