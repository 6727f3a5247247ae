"""Build one-to-many training data: a teacher lists N candidates per prompt; they are cleaned, de-duplicated
and written resumably.

    inputs (JSONL / CSV / Parquet / Hub dataset, one prompt or context per row)
      └─ read_inputs: per-row problems (non-UTF-8, bad JSON, missing column, empty, duplicate) become rejections
           └─ teacher (LocalTeacher: transformers; OpenAITeacher: /chat/completions) answers the listing prompt
                └─ parse (parse_numbered_list) → clean → drop empty / echo / duplicate / near-duplicate
                     └─ fewer than N left: ask again (next seed, hotter temperature), merge the new unique ones
                          └─ output folder: train.jsonl (kept) | rejected.jsonl (why) | build_config.json
                               └─ quality_report.md / .json

Output folder (loadable with `load_one_to_many(folder, split="train")`):
- `train.jsonl`: `{"id", "prompt"|"context", "candidates", "provenance"}`, one record per line, each line appended,
  flushed and fsync'ed before the next prompt is processed.
- `rejected.jsonl`: `{"id", "reason", "detail", "input", ...}` for inputs that produced no record (same policy).
- `build_config.json`: the settings that determine the content (written atomically); a resume with different
  ones is refused unless `force=True`.
- `build_progress.json`: inputs seen and records left unfinished by teacher errors (retried by a resume).
- `.lock`: held (flock) for the length of a build, so two builds cannot append to one folder.
Resume: ids already in train.jsonl or rejected.jsonl are skipped; a torn last line (a run killed mid-write) is
cut off first. Every input id therefore ends up exactly once in train.jsonl ∪ rejected.jsonl. Each finished id's
stored input is compared with the current row: a changed kept one is an error, a changed rejected one is redone.
"""

from __future__ import annotations

from peft_diversity.builder.build import (  # noqa: F401
    BuildSettings,
    BuildSummary,
    Log,
    build_config,
    build_dataset,
)
from peft_diversity.builder.filter import (  # noqa: F401
    DROP_REASONS,
    CandidateFilter,
    parse_reply,
)
from peft_diversity.builder.folder import (  # noqa: F401
    BUILD_REASONS,
    CONFIG_FILE,
    CONTENT_KEYS,
    LOCK_FILE,
    PROGRESS_FILE,
    REJECTED_FILE,
    REPORT_JSON,
    REPORT_MD,
    TRAIN_FILE,
    BuildFolder,
    append_line,
    repair_jsonl,
)
from peft_diversity.builder.inputs import (  # noqa: F401
    COLUMN_GUESSES,
    HUB_ID,
    TABULAR_SUFFIXES,
    InputItem,
    display_name,
    normalise,
    read_inputs,
)
from peft_diversity.builder.report import (  # noqa: F401
    quality_report,
    render_report,
)
from peft_diversity.builder.teachers import (  # noqa: F401
    PARSER_VERSION,
    LocalTeacher,
    OpenAITeacher,
    Sampling,
    Teacher,
    TeacherFailure,
    listing_messages,
    prompt_version,
)
