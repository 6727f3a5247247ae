"""The quality report of a built folder (quality_report.md / .json)."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from peft_diversity.atomic import atomic_write_text
from peft_diversity.builder.filter import DROP_REASONS
from peft_diversity.builder.folder import (
    CONFIG_FILE,
    PROGRESS_FILE,
    REJECTED_FILE,
    REPORT_JSON,
    REPORT_MD,
    TRAIN_FILE,
    read_object,
    read_records,
)
from peft_diversity.errors import BuildError, DataValidationError
from peft_diversity.jsonl import write_json

logger = logging.getLogger(__name__)


# ----- quality report -----------------------------------------------------------------------------------------------
def quality_report(folder: str | os.PathLike, embedder: Any = None, write: bool = True) -> dict[str, Any]:
    """Statistics of a built folder; written as quality_report.json / .md when `write`.

    Counts (inputs, kept, rejected by reason, unfinished), candidates per record, shortfall, candidate length in
    words, within-record SBERT cosine (skipped with `embedder=False`), candidates dropped by reason, attempts,
    and whether `load_one_to_many(folder)` accepts the data.
    """
    folder = Path(folder)
    if not (folder / TRAIN_FILE).is_file() and not (folder / REJECTED_FILE).is_file():
        raise BuildError(f"{folder}: no {TRAIN_FILE} or {REJECTED_FILE}: not a build-data output folder")
    records, rejected = read_records(folder / TRAIN_FILE), read_records(folder / REJECTED_FILE)
    config = read_object(folder / CONFIG_FILE)
    progress = read_object(folder / PROGRESS_FILE)
    written = {r.get("id") for r in records + rejected}
    unfinished = sorted(set(progress.get("unfinished", {})) - written)
    pending = max(0, progress.get("inputs", 0) - len(written) - len(unfinished))
    report = {
        "folder": str(folder),
        "teacher": config.get("teacher"),
        "prompt_version": config.get("prompt_version"),
        "num_candidates": config.get("num_candidates"),
        "records": _record_counts(records, rejected, unfinished, pending),
        "candidates_per_record": _distribution([len(r["candidates"]) for r in records]),
        "candidate_words": _summary([len(c.split()) for r in records for c in r["candidates"]]),
        "within_record_cosine": _similarity(records, embedder),
        "dropped_candidates": _dropped(records + rejected),
        "attempts": _distribution(
            [r.get("provenance", {}).get("attempts", 0) for r in records + rejected if "provenance" in r]
        ),
        "loads": _loads(folder, records),
    }
    if write:
        write_json(folder / REPORT_JSON, report)
        atomic_write_text(folder / REPORT_MD, render_report(report))
    return report


def _record_counts(
    records: list[dict], rejected: list[dict], unfinished: list[str], pending: int
) -> dict[str, Any]:
    total = len(records) + len(rejected) + len(unfinished) + pending
    reasons = Counter(r.get("reason", "unknown") for r in rejected)
    share = lambda count: round(count / total, 4) if total else 0.0  # noqa: E731
    shortfall = sum(1 for r in records if r.get("provenance", {}).get("shortfall", 0) > 0)
    return {
        "inputs": total,
        "kept": len(records),
        "kept_share": share(len(records)),
        "rejected": len(rejected),
        "rejected_share": share(len(rejected)),
        "rejected_by_reason": {
            reason: {"count": count, "share": share(count)} for reason, count in reasons.most_common()
        },
        "unfinished": len(unfinished),
        "unfinished_ids": unfinished[:20],
        "not_processed": pending,
        "shortfall_records": shortfall,
    }


def _distribution(values: list[int]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "min": min(values),
        "max": max(values),
        "mean": round(float(np.mean(values)), 3),
        "histogram": {str(v): c for v, c in sorted(Counter(values).items())},
    }


def _summary(values: Iterable[float]) -> dict[str, Any]:
    array = np.asarray(list(values), dtype=float)
    if not array.size:
        return {"count": 0}
    quantiles = np.percentile(array, [10, 25, 50, 75, 90])
    return {
        "count": int(array.size),
        "mean": round(float(array.mean()), 3),
        "min": round(float(array.min()), 3),
        **{f"p{q}": round(float(v), 3) for q, v in zip((10, 25, 50, 75, 90), quantiles, strict=True)},
        "max": round(float(array.max()), 3),
    }


def _similarity(records: list[dict], embedder: Any) -> dict[str, Any]:
    """Pooled pair cosines (summary + histogram) and the mean of per-record means."""
    if embedder is False or not records:
        return {"count": 0}
    from peft_diversity.datacard import within_context_cosines

    sims = within_context_cosines(records, embedder)
    pooled = [x for s in sims for x in s]
    out = _summary(pooled)
    if pooled:
        out["per_record_mean"] = round(float(np.mean([np.mean(s) for s in sims if s])), 3)
        low = min(0.0, float(np.floor(min(pooled) * 10)) / 10)  # bins of 0.1 from 0 (or below) to 1
        edges = np.round(np.linspace(low, 1.0, round((1.0 - low) * 10) + 1), 2)
        counts, _ = np.histogram(np.clip(pooled, low, 1.0), bins=edges)
        out["histogram"] = [
            [float(lo), float(hi), int(c)] for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True)
        ]
    return out


def _dropped(entries: list[dict]) -> dict[str, Any]:
    counts: Counter = Counter()
    unparsed = requested = 0
    for entry in entries:
        prov = entry.get("provenance")
        if not prov:
            continue
        counts.update(prov.get("dropped", {}))
        unparsed += sum(len(f) for f in prov.get("parse_failures", []))
        requested += prov.get("requested", 0) * len(prov.get("parse_failures", []))
    return {
        "by_reason": {r: counts[r] for r in DROP_REASONS if counts[r]},
        "unparsed_items": unparsed,
        "requested_items": requested,
    }


def _loads(folder: Path, records: list[dict]) -> dict[str, Any]:
    if not records:
        return {"ok": False, "error": "no kept records"}
    from peft_diversity.data import load_one_to_many

    try:
        load_one_to_many(folder, split="train", strict=True)
    except DataValidationError as err:
        return {"ok": False, "error": str(err)}
    return {"ok": True}


def render_report(report: dict[str, Any]) -> str:
    """The markdown form of `quality_report`'s dict."""
    counts = report["records"]
    lines = [
        f"# Quality report: `{report['folder']}`",
        "",
        f"Teacher `{report['teacher']}`, prompt version `{report['prompt_version']}`, "
        f"{report['num_candidates']} candidates requested per input. "
        f"Loads with `load_one_to_many`: {'yes' if report['loads']['ok'] else 'NO: ' + report['loads'].get('error', '')}.",
        "",
        "## Inputs",
        "",
        "| | count | share |",
        "|---|---:|---:|",
        f"| inputs | {counts['inputs']} | 100% |",
        f"| kept | {counts['kept']} | {counts['kept_share']:.1%} |",
    ]
    lines += [
        f"| rejected: {reason} | {v['count']} | {v['share']:.1%} |"
        for reason, v in counts["rejected_by_reason"].items()
    ]
    if counts["unfinished"]:
        lines.append(f"| unfinished (teacher errors; a resume retries them) | {counts['unfinished']} | |")
    if counts["not_processed"]:
        lines.append(f"| not processed yet (interrupted run) | {counts['not_processed']} | |")
    lines += [
        "",
        f"Kept records with fewer than {report['num_candidates']} candidates (shortfall): "
        f"{counts['shortfall_records']}.",
        "",
    ]
    lines += _markdown_distribution("Candidates per record", "candidates", report["candidates_per_record"])
    lines += _markdown_summary("Candidate length (words)", report["candidate_words"])
    lines += _markdown_similarity(report["within_record_cosine"])
    lines += _markdown_dropped(report["dropped_candidates"])
    lines += _markdown_distribution("Teacher calls per input", "attempts", report["attempts"])
    return "\n".join(lines).rstrip() + "\n"


def _markdown_distribution(title: str, label: str, dist: dict[str, Any]) -> list[str]:
    if not dist.get("count"):
        return [f"## {title}", "", "(none)", ""]
    rows = [f"| {value} | {count} |" for value, count in dist["histogram"].items()]
    return [
        f"## {title}",
        "",
        f"mean {dist['mean']}, min {dist['min']}, max {dist['max']}",
        "",
        f"| {label} | records |",
        "|---:|---:|",
        *rows,
        "",
    ]


def _markdown_summary(title: str, stats: dict[str, Any]) -> list[str]:
    if not stats.get("count"):
        return [f"## {title}", "", "(none)", ""]
    keys = ["mean", "min", "p10", "p25", "p50", "p75", "p90", "max"]
    return [
        f"## {title}",
        "",
        "| " + " | ".join(keys) + " |",
        "|" + "---:|" * len(keys),
        "| " + " | ".join(str(stats[k]) for k in keys) + " |",
        "",
    ]


def _markdown_similarity(stats: dict[str, Any]) -> list[str]:
    title = "Within-record similarity (SBERT cosine between candidates of one record, all pairs)"
    lines = _markdown_summary(title, stats)
    if not stats.get("count"):
        return lines
    lines.insert(-1, "")
    lines.insert(-1, f"Mean of per-record means: {stats['per_record_mean']} (lower = more diverse).")
    top = max(c for _, _, c in stats["histogram"]) or 1
    bars = [f"{lo:5.2f}–{hi:4.2f} | {'#' * round(30 * c / top):<30} {c}" for lo, hi, c in stats["histogram"]]
    return [*lines, "```", *bars, "```", ""]


def _markdown_dropped(dropped: dict[str, Any]) -> list[str]:
    lines = [
        "## Candidates dropped during the build",
        "",
        f"Teacher items that could not be parsed: {dropped['unparsed_items']} of "
        f"{dropped['requested_items']} requested.",
        "",
    ]
    if dropped["by_reason"]:
        lines += [
            "| reason | candidates |",
            "|---|---:|",
            *[f"| {r} | {c} |" for r, c in dropped["by_reason"].items()],
        ]
    else:
        lines.append("No parsed candidate was dropped.")
    return [*lines, ""]
