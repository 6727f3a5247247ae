"""The experiment's reports: results.md / .json (table from scoring.report.format_results_table) and the plot."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from peft_diversity.atomic import atomic_figure, atomic_write_text
from peft_diversity.errors import ExperimentConfigError
from peft_diversity.experiment.config import ExperimentConfig
from peft_diversity.jsonl import read_json, write_json
from peft_diversity.scoring.report import format_results_table, summary_key

logger = logging.getLogger(__name__)


# ----- reports -------------------------------------------------------------------------------------------------
def write_reports(
    rows: list[dict[str, Any]], response_files: list[Path], run_dir: Path, config: ExperimentConfig
) -> None:
    atomic_write_text(
        run_dir / "results.md",
        f"# {config.name}\n\n{format_results_table(rows)}\n\n"
        f"K = {config.num_responses} responses per context, {rows[0]['scores'].get('num_prompts', '?')} held-out "
        f"contexts of `{config.dataset}` ({config.eval_split}); base model `{config.base_model}`.\n"
        f"{_judge_line(run_dir, config)}{_paired_section(response_files)}{_openings_section(response_files)}",
    )
    write_json(run_dir / "results.json", {"experiment": config.name, "results": rows}, default=str)
    lines = [line for path in response_files for line in Path(path).read_text(encoding="utf-8").splitlines()]
    atomic_write_text(run_dir / "responses.jsonl", "\n".join(lines) + "\n")
    plot_diversity_vs_coherence(rows, run_dir / "diversity_vs_coherence.png")


def _openings_section(response_files: list[Path]) -> str:
    """Per possibility number, the most frequent openings across contexts: does k carry an idea or a style?"""
    from peft_diversity.generation.responses import read_responses_jsonl
    from peft_diversity.scoring.openings import openings_per_possibility

    parts = []
    for path in response_files:
        results = read_responses_jsonl(path)
        if not results or results[0].decoder != "possibilities":
            continue
        table = openings_per_possibility([r.possibilities for r in results], [r.texts for r in results])
        lines = [
            f"\n## Openings per possibility number ({Path(path).stem})\n",
            "| k | responses | most frequent first two words (share of k's responses) |",
            "|---:|---:|---|",
        ]
        lines += [
            f"| {k} | {row['responses']} | "
            + "; ".join(f"{w or '∅'} ({share:.0%})" for w, share in row["top"])
            + " |"
            for k, row in table.items()
        ]
        parts.append("\n".join(lines) + "\n")
    return "".join(parts)


def _paired_section(response_files: list[Path]) -> str:
    """The possibilities run's per-context semantic diversity minus each other run's, with paired bootstrap
    intervals over contexts: how much of a gap in the table is more than which contexts happened to be drawn."""
    from peft_diversity.generation.responses import read_responses_jsonl
    from peft_diversity.scoring.paired import paired_bootstrap
    from peft_diversity.scoring.semantic import semantic_diversity

    runs = {Path(p).stem: read_responses_jsonl(p) for p in response_files}
    ours = [name for name, results in runs.items() if results and results[0].decoder == "possibilities"]
    if not ours:
        return ""
    per_context = {
        name: semantic_diversity([r.texts for r in results], return_per_prompt=True)[
            "semantic_diversity_per_prompt"
        ]
        for name, results in runs.items()
    }
    lines = [
        f"\n## {ours[0]} vs each run: semantic diversity per context\n",
        f"| run | semantic diversity | {ours[0]} minus run | 95% interval (paired bootstrap over contexts) "
        f"| contexts where {ours[0]} is higher |",
        "|---|---:|---:|---|---:|",
    ]
    for name, scores in per_context.items():
        if name == ours[0]:
            continue
        gap = paired_bootstrap(per_context[ours[0]], scores)
        low, high = gap["interval"]
        lines.append(
            f"| {name} | {sum(scores) / len(scores):.3f} | {gap['mean_difference']:+.3f} | "
            f"[{low:+.3f}, {high:+.3f}] | {gap['share_higher']:.0%} |"
        )
    return "\n".join(lines) + "\n"


def _judge_line(run_dir: Path, config: ExperimentConfig) -> str:
    """What the judge column is worth (judge_check.json), or nothing when no judge was used."""
    path = run_dir / "judge_check.json"
    if config.judge is None or not path.is_file():
        return ""
    check = read_json(path, error=ExperimentConfigError, kind=dict)
    prefers = "-" if check["prefers_own"] is None else f"{check['prefers_own']:.2f}"
    return (
        f"\nJudge `{config.judge['model']}`: a context's own human reply rated {_num(check['own_rating'])} vs "
        f"{_num(check['other_rating'])} for a reply from another context; own preferred in {prefers} of "
        f"{check['num_pairs']} contexts (0.5 = chance), {check['num_unparsed']} replies unparsed.\n"
    )


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def plot_diversity_vs_coherence(rows: list[dict[str, Any]], path: Path) -> Path:
    """One point per method: semantic diversity (x) against embedding coherence (y)."""
    with atomic_figure(path, figsize=(6.5, 4.5), dpi=120) as (fig, ax):
        for row in rows:
            x, y = row["scores"].get("semantic_diversity"), row["scores"].get(summary_key("coherence"))
            if x is None or y is None:
                continue
            marker = "*" if row["decoder"] == "possibilities" else "o"
            ax.scatter([x], [y], s=140 if marker == "*" else 60, marker=marker)
            label = f"{row['model']}/{row['decoder']}" + (f"@{row['variant']}" if row.get("variant") else "")
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
        ax.set_xlabel("semantic diversity (1 - mean pairwise SBERT cosine) →")
        ax.set_ylabel("coherence (SBERT relevance to context) →")
        ax.set_title("Diversity vs coherence per method")
        ax.grid(alpha=0.3)
    return path
