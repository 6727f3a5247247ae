"""All metrics at once, over in-memory predictions or a responses.jsonl grouped by (model, decoder)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from .bleu import self_bleu
from .coherence import coherence
from .distinct import DEFAULT_VOCAB_SIZE, distinct_n
from .distinct_k import distinct_k
from .embeddings import DEFAULT_BATCH_SIZE, CachedEmbedder, EmbedderSpec
from .likelihood import likelihood_coherence
from .openings import drop_opening
from .semantic import semantic_diversity
from .vendi import vendi_score

# THE metric registry: `score_predictions(metrics=)`, `peft-diversity score --metrics` and an experiment's
# `metrics:` / `coherence_metric:` accept exactly KNOWN_METRICS (tests/test_scoring.py pins it).
METRICS = ("semantic_diversity", "self_bleu", "distinct_n", "vendi", "distinct_k", "coherence")
# Known but not computed unless asked for (one more embedding pass; a reference LM pass)
OPTIONAL_METRICS = ("semantic_diversity_no_opening", "likelihood_coherence")
KNOWN_METRICS = (*METRICS, *OPTIONAL_METRICS)
# The summary key a metric's headline value is read from, where it is not the metric's own name.
SUMMARY_KEYS = {"coherence": "coherence_relevance"}
# Metrics with one value per context under their summary key (`<key>_per_prompt`), which an experiment's
# `coherence_metric` needs (per-context files, the bootstrap); distinct_n and vendi report several keys instead.
PER_CONTEXT_METRICS = tuple(m for m in KNOWN_METRICS if m not in ("distinct_n", "vendi"))
EMBEDDING_METRICS = {
    "semantic_diversity",
    "vendi",
    "distinct_k",
    "coherence",
    "semantic_diversity_no_opening",
}


def summary_key(metric: str) -> str:
    """The key of `metric`'s headline value in a scores dict (`coherence` -> `coherence_relevance`)."""
    return SUMMARY_KEYS.get(metric, metric)


def _rename(key: str, prefix: str) -> str:
    return key.replace("vendi_score", prefix, 1) if prefix else key


def _scalars(result: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Keep the summary values (numbers / None), optionally renaming ``name`` -> ``prefix`` + rest."""
    return {
        _rename(key, prefix): value
        for key, value in result.items()
        if key != "num_prompts" and (value is None or isinstance(value, int | float))
    }


def _per_prompt(result: Mapping[str, Any], prefix: str = "") -> dict[str, list]:
    """The ``*_per_prompt`` lists, renamed as `_scalars` renames."""
    return {_rename(key, prefix): value for key, value in result.items() if key.endswith("_per_prompt")}


OPENING_WORDS = 3
"""Words dropped for `semantic_diversity_no_opening`."""


def score_predictions(
    predictions: Sequence[Sequence[str]],
    contexts: Sequence[Any] | None = None,
    metrics: Sequence[str] = METRICS,
    embedder: EmbedderSpec = None,
    judge: Any = None,
    max_order: int = 4,
    smoothing: str = "method1",
    vocab_size: int | Mapping[int, float] = DEFAULT_VOCAB_SIZE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    reference_model: Any = None,
    template: Any = None,
    return_per_prompt: bool = False,
) -> dict[str, Any]:
    """Flat dict of the summary values of ``metrics`` (see ``KNOWN_METRICS``); texts are embedded once.

    ``vendi`` reports the embedding kernel (``vendi_score*``) and the bigram kernel
    (``vendi_ngram*``). ``coherence`` needs ``contexts``; with a ``judge`` it adds the judge's
    ratings to the embedding proxy. ``likelihood_coherence`` needs ``contexts`` and reads them with
    ``reference_model`` (id / path / builtin:, default builtin SmolLM2) prompted as ``template`` words the task
    (a ``PossibilityTemplate`` or task name, default dialogue). ``return_per_prompt`` adds ``per_prompt``: every
    metric's ``<summary key>_per_prompt`` list (one value per prompt, in order; None where a prompt has none).
    """
    unknown = set(metrics) - set(KNOWN_METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {KNOWN_METRICS}")
    emb = embedder
    if not isinstance(embedder, CachedEmbedder) and EMBEDDING_METRICS & set(metrics):
        emb = CachedEmbedder(embedder, batch_size)
    out: dict[str, Any] = {"num_prompts": len(predictions), "num_responses": sum(len(r) for r in predictions)}
    per_prompt: dict[str, list] = {}

    def add(result: Mapping[str, Any], prefix: str = "") -> None:
        out.update(_scalars(result, prefix))
        per_prompt.update(_per_prompt(result, prefix))

    lists = {"return_per_prompt": return_per_prompt}
    if "semantic_diversity" in metrics:
        add(semantic_diversity(predictions, emb, **lists))
    if "semantic_diversity_no_opening" in metrics:
        # after each response's first words: a possibility number that only fixes an opening ("Oh wow, ...")
        # looks diverse in semantic_diversity and not here
        stripped = [[drop_opening(text, OPENING_WORDS) for text in group] for group in predictions]
        result = semantic_diversity(stripped, emb, **lists)
        add(
            {
                key.replace("semantic_diversity", "semantic_diversity_no_opening", 1): value
                for key, value in result.items()
                if key.startswith("semantic_diversity")
            }
        )
    if "self_bleu" in metrics:
        add(self_bleu(predictions, max_order, smoothing, **lists))
    if "distinct_n" in metrics:
        add(distinct_n(predictions, vocab_size=vocab_size, **lists))
    if "vendi" in metrics:
        add(vendi_score(predictions, "embedding", emb, **lists))
        add(vendi_score(predictions, "ngram", **lists), prefix="vendi_ngram")
    if "distinct_k" in metrics:
        add(distinct_k(predictions, "embedding", embedder=emb, **lists))
    if "coherence" in metrics:
        if contexts is None:
            raise ValueError("the coherence metric needs contexts")
        add(coherence(predictions, contexts, "embedding", emb, **lists))
        if judge is not None:
            add(coherence(predictions, contexts, "judge", judge=judge, **lists))
    if "likelihood_coherence" in metrics:
        if contexts is None:
            raise ValueError("the likelihood_coherence metric needs contexts")
        add(likelihood_coherence(predictions, contexts, reference_model, template=template, **lists))
    if return_per_prompt:
        out["per_prompt"] = per_prompt
    return out


def load_responses(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a responses.jsonl: each has "context" (string or list of turns) and "responses"
    (list of strings), optionally "model" and "decoder". Blank lines are skipped.

    A missing, non-UTF-8, empty or malformed file raises `ScoringInputError` naming file:line and field."""
    from peft_diversity.errors import ScoringInputError
    from peft_diversity.jsonl import read_jsonl

    rows = [
        _check_row(row, f"{path}:{lineno}", ScoringInputError)
        for lineno, row in read_jsonl(path, error=ScoringInputError)
    ]
    if not rows:
        raise ScoringInputError(f"{path}: no rows (the file is empty)")
    return rows


def _check_row(row: Any, where: str, error: type[Exception]) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise error(f"{where}: need a JSON object with 'context' and 'responses', got {type(row).__name__}")
    for key in ("context", "responses"):
        if key not in row:
            raise error(f"{where}: missing key {key!r} (need 'context' and a 'responses' list)")
    context = row["context"]
    if not isinstance(context, (str, list)):
        raise error(f"{where}: 'context' must be a string or a list of turns, got {type(context).__name__}")
    responses = row["responses"]
    if not isinstance(responses, list):
        raise error(f"{where}: 'responses' must be a list of strings, got {type(responses).__name__}")
    for i, response in enumerate(responses):
        if not isinstance(response, str):
            raise error(f"{where}: responses[{i}] must be a string, got {type(response).__name__}")
    for key in ("model", "decoder"):
        if row.get(key) is not None and not isinstance(row[key], str):
            raise error(f"{where}: {key!r} must be a string, got {type(row[key]).__name__}")
    return row


def group_rows(rows: Sequence[Mapping[str, Any]]) -> list[tuple[dict[str, Any], list[Mapping[str, Any]]]]:
    """Rows grouped by (model, decoder) in order of first appearance; missing keys are ``None``."""
    groups: dict[tuple, list] = {}
    for row in rows:
        groups.setdefault((row.get("model"), row.get("decoder")), []).append(row)
    return [({"model": m, "decoder": d}, members) for (m, d), members in groups.items()]


def score_rows(rows: Sequence[Mapping[str, Any]], **kwargs: Any) -> list[dict[str, Any]]:
    """``score_predictions`` (same options) for each (model, decoder) group of ``rows``."""
    results = []
    for key, members in group_rows(rows):
        scores = score_predictions(
            [r["responses"] for r in members], [r["context"] for r in members], **kwargs
        )
        results.append({**key, "scores": scores})
    return results


# Columns of the results table: (key in a scores dict, header); other keys follow under their own names
TABLE_COLUMNS = (
    ("semantic_diversity", "semantic div. ↑"),
    ("semantic_diversity_no_opening", "semantic div. w/o first 3 words ↑"),
    ("distinct_1", "distinct-1 ↑"),
    ("distinct_2", "distinct-2 ↑"),
    ("self_bleu", "self-BLEU ↓"),
    ("coherence_relevance", "coherence (emb. relevance) ↑"),
    ("coherence_rating", "coherence (judge, 1-10) ↑"),
    ("likelihood_coherence", "coherence (likelihood PMI) ↑"),
    ("responses_per_context", "responses/context"),
    ("latency_s", "latency s/context"),
)


def format_results_table(results: Sequence[Mapping[str, Any]], all_columns: bool = False) -> str:
    """THE results table (experiment, score, docs): one row per (model, decoder), one column per metric.

    Known metrics come first, in `TABLE_COLUMNS` order with their headers; `all_columns` appends every other
    numeric score under its key (what `score` prints).
    """

    def present(key: str) -> bool:
        return any(_is_number(r["scores"].get(key)) for r in results)

    columns = [(key, head) for key, head in TABLE_COLUMNS if present(key)]
    if all_columns:
        known = {key for key, _ in TABLE_COLUMNS}
        keys = dict.fromkeys(k for r in results for k in r["scores"])
        columns += [(key, key) for key in keys if key not in known and present(key)]
    lines = [
        "| model | decoder | " + " | ".join(head for _, head in columns) + " |",
        "|---|---|" + "---:|" * len(columns),
    ]
    for row in results:
        cells = [_fmt(row["scores"].get(key)) for key, _ in columns]
        decoder = (row.get("decoder") or "-") + (f" @{row['variant']}" if row.get("variant") else "")
        lines.append(f"| {row.get('model') or '-'} | {decoder} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fmt(value: Any) -> str:
    if not _is_number(value):
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.3f}"
