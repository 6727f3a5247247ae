"""The project's errors: one base class for bad input a user can fix.

`peft-diversity` catches `PeftDiversityError` once (cli.py) and prints its message as one line, exit 2. Each
subclass belongs to a stage; raise it before any real work, naming the file / line / field or flag.
"""

from __future__ import annotations


class PeftDiversityError(ValueError):
    """Bad input (a file, record, field, flag or setting), explained in one line."""


class OutputPathError(PeftDiversityError):
    """An output flag names a path that cannot be written, or whose writing would destroy an input."""


class DataValidationError(PeftDiversityError):
    """A one-to-many record is malformed; the message names the source, record and field."""


class ScoringInputError(PeftDiversityError):
    """A responses file to score is missing, unreadable or malformed; the message names file:line:field."""


class TemplateError(PeftDiversityError):
    """A template is malformed or cannot render a record."""


class ModelLoadError(PeftDiversityError):
    """A model name/path cannot be loaded as asked."""


class TrainConfigError(PeftDiversityError):
    """A training setting, flag or checkpoint cannot work; raised before the model loads or output is written."""


class GenerationError(PeftDiversityError):
    """Bad input to a decoder (k out of range, empty context, missing template, ...)."""


class ExperimentConfigError(PeftDiversityError):
    """The experiment YAML names something unknown or cannot run; raised before any training."""


class HubError(PeftDiversityError):
    """A Hub operation cannot be done as asked (bad repo id, no token, not a trained folder...)."""


class BuildError(PeftDiversityError):
    """Bad builder input or settings (one clear line for the command line)."""


class PersonaError(PeftDiversityError):
    """Bad input to the persona bias test (a reference file, a model spec, an option)."""


class CommandLineError(PeftDiversityError):
    """A command's flags or its `--config` file cannot be taken (unknown key, bad value, conflicting flags)."""
