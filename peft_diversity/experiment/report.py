"""The experiment's reports: results.md / .json (table from scoring.report.format_results_table) and the plot."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from peft_diversity.atomic import atomic_path, atomic_write_text
from peft_diversity.experiment.config import ExperimentConfig
from peft_diversity.scoring.report import format_results_table

logger = logging.getLogger(__name__)


# ----- reports -------------------------------------------------------------------------------------------------
def write_reports(rows: list[dict[str, Any]], response_files: list[Path], run_dir: Path,
                  config: ExperimentConfig) -> None:
    atomic_write_text(run_dir / "results.md", f"# {config.name}\n\n{format_results_table(rows)}\n\n"
                f"K = {config.num_responses} responses per context, {rows[0]['scores'].get('num_prompts', '?')} held-out "
                f"contexts of `{config.dataset}` ({config.eval_split}); base model `{config.base_model}`.\n")
    _write_json(run_dir / "results.json", {"experiment": config.name, "results": rows})
    lines = [line for path in response_files for line in Path(path).read_text(encoding="utf-8").splitlines()]
    atomic_write_text(run_dir / "responses.jsonl", "\n".join(lines) + "\n")
    plot_diversity_vs_coherence(rows, run_dir / "diversity_vs_coherence.png")


def plot_diversity_vs_coherence(rows: list[dict[str, Any]], path: Path) -> Path:
    """One point per method: semantic diversity (x) against embedding coherence (y)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5), dpi=120)
    for row in rows:
        x, y = row["scores"].get("semantic_diversity"), row["scores"].get("coherence_relevance")
        if x is None or y is None:
            continue
        marker = "*" if row["decoder"] == "possibilities" else "o"
        ax.scatter([x], [y], s=140 if marker == "*" else 60, marker=marker)
        ax.annotate(f"{row['model']}/{row['decoder']}", (x, y), textcoords="offset points", xytext=(5, 5),
                    fontsize=8)
    ax.set_xlabel("semantic diversity (1 - mean pairwise SBERT cosine) →")
    ax.set_ylabel("coherence (SBERT relevance to context) →")
    ax.set_title("Diversity vs coherence per method")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def _write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str))
