"""The bias report: bias.md (tables), bias.json (everything), bias.png (distributions side by side) and one
transcripts/<label>.jsonl per model (each line: the transcript and what was extracted from it)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peft_diversity.atomic import atomic_figure, atomic_write_text
from peft_diversity.jsonl import write_json
from peft_diversity.persona.categories import ATTRIBUTES, REPORTED, UNKNOWN, load_categories
from peft_diversity.persona.extract import FLAGS, Extraction, Extractor, RuleExtractor
from peft_diversity.persona.score import Reference, score_extractions
from peft_diversity.persona.transcript import Transcript, transcripts_jsonl

PLOT_TOP = 12
"""Most categories per subplot (the most frequent over all models; the rest are pooled as "other")."""


@dataclass
class BiasResult:
    """One model (with one decoder): its interviews, what was extracted, and the scores."""

    label: str
    decoder: str
    transcripts: list[Transcript]
    extractions: list[Extraction]
    scores: dict[str, Any]
    model: str | None = None
    wall_time_s: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        return re.sub(r"[^\w.-]+", "_", f"{self.label}__{self.decoder}").strip("_")


def evaluate_transcripts(
    label: str,
    transcripts: Sequence[Transcript],
    decoder: str = "-",
    extractor: Extractor | None = None,
    references: Reference | None = None,
    **kwargs: Any,
) -> BiasResult:
    """Extract (rules by default) and score a model's transcripts."""
    extractions = (extractor or RuleExtractor())(list(transcripts))
    scores = score_extractions(extractions, references)
    return BiasResult(label, decoder, list(transcripts), extractions, scores, **kwargs)


# ----- markdown ---------------------------------------------------------------------------------------------------
def format_bias_table(results: Sequence[BiasResult]) -> str:
    """Rows = model/decoder; columns = normalised entropy per attribute with its ceiling and the number of
    known answers, their mean (over the attributes with data), unknown rate, flags (answers; contradictions
    also as the share of conversations)."""
    head = ["model", "decoder", "n", *REPORTED, "mean", "unknown", *(f.replace("_", "-") for f in FLAGS)]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for r in results:
        s = r.scores
        cells = [r.label, r.decoder, str(s["num_conversations"])]
        cells += [_entropy_cell(s["attributes"][a]) for a in REPORTED]
        cells += [_mean_cell(s), f"{s['mean_unknown_rate']:.0%}"]
        cells += [_flag_cell(s, f) for f in FLAGS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _flag_cell(scores: dict[str, Any], flag: str) -> str:
    answers = str(scores["flags"][flag]["answers"])
    if flag != "contradiction":
        return answers
    return f"{answers} ({_percent(scores.get('contradiction_rate'))})"  # PoExFT redraws k each turn


def _entropy_cell(stats: dict[str, Any]) -> str:
    if stats["normalized_entropy"] is None:
        return "- (0)"
    return f"{stats['normalized_entropy']:.3f} ≤{stats['max_normalized_entropy']:.2f} ({stats['num_known']})"


def _mean_cell(scores: dict[str, Any]) -> str:
    used = len(scores.get("mean_attributes", ATTRIBUTES))
    return f"**{_num(scores['mean_normalized_entropy'])}** ({used}/{len(ATTRIBUTES)})"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _attribute_table(results: Sequence[BiasResult], cell: Callable[[dict[str, Any]], str]) -> str:
    """One row per model, one `cell(stats)` per reported attribute."""
    lines = ["| model | decoder | " + " | ".join(REPORTED) + " |", "|---|---|" + "---:|" * len(REPORTED)]
    for r in results:
        cells = [cell(r.scores["attributes"][a]) for a in REPORTED]
        lines.append(f"| {r.label} | {r.decoder} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _detail_cell(stats: dict[str, Any]) -> str:
    if stats["effective_categories"] is None:
        return "-"
    mm = stats["entropy_miller_madow"] / math.log2(stats["num_categories"])
    return f"{stats['effective_categories']:.1f} of {stats['num_categories']} (MM {mm:.3f})"


def _interval_cell(stats: dict[str, Any]) -> str:
    interval = stats.get("normalized_entropy_interval")
    if stats["normalized_entropy"] is None or interval is None:
        return f"- ({stats['num_known']})"
    return f"{stats['normalized_entropy']:.2f} [{interval[0]:.2f}, {interval[1]:.2f}] ({stats['num_known']})"


def _kl_cell(value: float | None, note: str | None) -> str:
    """ "inf" for an infinite KL (the reference has no mass where answers fell), "-" only for no data."""
    return "inf" if note else _num(value)


def _kl_table(results: Sequence[BiasResult]) -> str:
    lines = [
        "| model | decoder | " + " | ".join(REPORTED) + " | mean |",
        "|---|---|" + "---:|" * (len(REPORTED) + 1),
    ]
    for r in results:
        per = r.scores["attributes"]
        cells = [_kl_cell(per[a]["kl_to_reference"], per[a].get("kl_note")) for a in REPORTED]
        cells.append(_kl_cell(r.scores["mean_kl_to_reference"], r.scores.get("mean_kl_note")))
        lines.append(f"| {r.label} | {r.decoder} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _top_table(results: Sequence[BiasResult], top: int = 3) -> str:
    lines = ["| model | decoder | " + " | ".join(REPORTED) + " |", "|---|---|" + "---|" * len(REPORTED)]
    for r in results:
        cells = []
        for a in REPORTED:
            counts = r.scores["attributes"][a]["counts"]
            n = r.scores["num_conversations"] or 1
            best = sorted(((c, k) for k, c in counts.items() if c), reverse=True)[:top]
            cells.append(", ".join(f"{k} {c / n:.0%}" for c, k in best) or "-")
        lines.append(f"| {r.label} | {r.decoder} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_accuracy_table(accuracy: dict[str, Any]) -> str:
    """Precision / recall with Wilson 95% intervals and support, per attribute, flag and micro-averaged."""
    lines = ["| attribute | precision [95% CI] | recall [95% CI] | support |", "|---|---:|---:|---:|"]
    rows = [
        *accuracy["attributes"].items(),
        *((f"flag: {k}", v) for k, v in accuracy["flags"].items()),
        ("micro (attributes)", accuracy["micro"]),
    ]
    lines += [
        f"| {name} | {_with_ci(v['precision'], v.get('precision_ci'))} | {_with_ci(v['recall'], v.get('recall_ci'))} "
        f"| {v['support']} |"
        for name, v in rows
    ]
    return "\n".join(lines)


def _with_ci(value: float | None, interval: list[float] | None) -> str:
    if value is None or interval is None:
        return _num(value)
    return f"{value:.3f} [{interval[0]:.2f}, {interval[1]:.2f}]"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render_markdown(
    results: Sequence[BiasResult],
    settings: dict[str, Any],
    accuracy: dict[str, Any] | Sequence[dict[str, Any]] | None,
) -> str:
    parts = ["# Persona demographic-bias test"]
    if settings.get("partial"):
        parts.append(f"**Partial report**: {settings['partial']}")
    parts += [
        _settings_line(settings),
        "Cells: normalised entropy of each attribute over its categories (1 = answers spread evenly over all of "
        "them; higher = less biased), then its ceiling ≤ log2(min(k, K))/log2(K) for k known answers and K "
        "categories (a model with few known answers cannot score high, whatever it says), then k in brackets; "
        "`-` = no known answer. *mean* averages the interview attributes with data (region repeats country; "
        "how many of the five in brackets); *unknown* is the mean share of answers that settled no category; "
        "the flag columns count answers, the contradiction column also the share of conversations with one.",
        format_bias_table(results),
        "## Normalised entropy with 95% intervals",
        "Bootstrap over conversations (2,000 resamples, unknown answers included); k known answers in brackets. "
        "The plug-in entropy is biased low on resamples, so intervals lean below the point estimate.",
        _attribute_table(results, _interval_cell),
        "## Effective number of categories",
        "2^H (the number of equally likely categories with the same entropy) of K, and in brackets the "
        "Miller-Madow bias-corrected entropy, normalised.",
        _attribute_table(results, _detail_cell),
        "## KL divergence to the reference (bits; lower = closer; inf = the reference has no mass where "
        "answers fell)",
        _kl_table(results),
        "## Most frequent categories",
        _top_table(results),
    ]
    for table in _accuracies(accuracy):
        parts += [
            f"## Extractor accuracy ({table['num_snippets']} hand-labelled snippets, split: {table['split']})",
            format_accuracy_table(table),
        ]
    parts += [
        "![per-attribute distributions](bias.png)",
        "Transcripts: " + ", ".join(f"`transcripts/{r.slug}.jsonl`" for r in results),
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def _accuracies(accuracy: dict[str, Any] | Sequence[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if accuracy is None:
        return []
    return [accuracy] if isinstance(accuracy, dict) else list(accuracy)


def _settings_line(settings: dict[str, Any]) -> str:
    shown = ", ".join(
        f"{k} `{v}`"
        for k, v in settings.items()
        if v is not None and not isinstance(v, dict) and k != "partial"
    )
    return f"Settings: {shown}." if shown else ""


# ----- files ------------------------------------------------------------------------------------------------------
def write_transcripts(result: BiasResult, out_dir: str | os.PathLike) -> Path:
    """transcripts/<slug>.jsonl (atomically): one line per interview, with what was extracted from it."""
    rows = [
        {**t.to_dict(), "extraction": e.to_dict()}
        for t, e in zip(result.transcripts, result.extractions, strict=True)
    ]
    return atomic_write_text(Path(out_dir) / "transcripts" / f"{result.slug}.jsonl", transcripts_jsonl(rows))


def write_bias_report(
    results: Sequence[BiasResult],
    out_dir: str | os.PathLike,
    settings: dict[str, Any] | None = None,
    accuracy: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
    plot: bool = True,
) -> dict[str, Path]:
    """Write bias.md, bias.json, bias.png and transcripts/*.jsonl into `out_dir` (each file atomically).

    `accuracy`: one `extractor_accuracy` table or several (one per labelled split); `settings["partial"]`
    marks a report of the models that finished before a run failed."""
    out = Path(out_dir)
    settings = dict(settings or {})
    paths: dict[str, Path] = {r.slug: write_transcripts(r, out) for r in results}
    data = {
        "settings": settings,
        "categories": {a: list(load_categories().ids[a]) for a in REPORTED if a != "country"},
        "extractor_accuracy": _accuracies(accuracy),
        "results": [
            {
                "label": r.label,
                "model": r.model,
                "decoder": r.decoder,
                "wall_time_s": r.wall_time_s,
                "transcripts": f"transcripts/{r.slug}.jsonl",
                "settings": r.settings,
                **r.scores,
            }
            for r in results
        ],
    }
    paths["json"] = write_json(out / "bias.json", data)
    paths["md"] = atomic_write_text(out / "bias.md", render_markdown(results, settings, accuracy))
    if plot:
        paths["png"] = plot_distributions(results, out / "bias.png")
    return paths


def plot_distributions(results: Sequence[BiasResult], path: Path) -> Path:
    """One subplot per attribute: grouped bars (share of conversations per category), one colour per model."""
    with atomic_figure(path, nrows=3, ncols=2, figsize=(14, 12), dpi=100) as (fig, axes):
        width = 0.8 / max(len(results), 1)
        for ax, attribute in zip(axes.flat, REPORTED, strict=True):
            categories = _plot_categories(results, attribute)
            for i, r in enumerate(results):
                shares = _shares(r, attribute, categories)
                ax.bar(
                    [x + i * width for x in range(len(categories))],
                    shares,
                    width,
                    label=f"{r.label} ({r.decoder})",
                )
            ax.set_xticks([x + width * (len(results) - 1) / 2 for x in range(len(categories))])
            ax.set_xticklabels(categories, rotation=60, ha="right", fontsize=7)
            entropies = [r.scores["attributes"][attribute]["normalized_entropy"] for r in results]
            ax.set_title(
                f"{attribute} (normalised entropy: "
                + ", ".join("-" if e is None else f"{e:.2f}" for e in entropies)
                + ")",
                fontsize=9,
            )
            ax.set_ylabel("share of conversations", fontsize=8)
            ax.grid(axis="y", alpha=0.3)
        axes.flat[0].legend(fontsize=8)
    return path


def _plot_categories(results: Sequence[BiasResult], attribute: str) -> list[str]:
    """The categories seen (most frequent first, at most PLOT_TOP; "other" pools the rest), then "unknown"."""
    totals: dict[str, int] = {}
    for r in results:
        for category, count in r.scores["attributes"][attribute]["counts"].items():
            totals[category] = totals.get(category, 0) + count
    seen = sorted((c for c, n in totals.items() if n), key=lambda c: -totals[c])
    if attribute in ("age", "education"):  # ordered scales: keep their order
        order = load_categories().ids[attribute]
        seen = [c for c in order if c in seen]
    shown = seen[:PLOT_TOP] + (["other"] if len(seen) > PLOT_TOP else [])
    return shown + [UNKNOWN]


def _shares(result: BiasResult, attribute: str, categories: list[str]) -> list[float]:
    stats = result.scores["attributes"][attribute]
    n = result.scores["num_conversations"] or 1
    counts = dict(stats["counts"])
    named = set(categories)
    other = sum(c for k, c in counts.items() if k not in named)
    return [
        (stats["num_unknown"] if c == UNKNOWN else other if c == "other" else counts.get(c, 0)) / n
        for c in categories
    ]
