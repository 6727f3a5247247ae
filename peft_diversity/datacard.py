"""Statistics of a one-to-many dataset, for its card: counts, lengths, within-context SBERT similarity.

    python -m peft_diversity.datacard            # print the bundled data's statistics
    python -m peft_diversity.datacard --write    # refresh the table in peft_diversity/data/README.md
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
from statistics import mean, median
from typing import Any

import numpy as np

from peft_diversity.atomic import atomic_write_text
from peft_diversity.data import BUNDLED, BUNDLED_DIR, load_one_to_many

CARD = BUNDLED_DIR / "README.md"
BEGIN, END = "<!-- stats:begin -->", "<!-- stats:end -->"


def within_context_cosines(records: list[dict[str, Any]], embedder: Any = None) -> list[list[float]]:
    """SBERT cosine of every pair of candidates of the same record, per record (one batched encode).

    A record with fewer than two candidates has an empty list.
    """
    from peft_diversity.scoring.embeddings import encode_texts

    cands = [r["candidates"] for r in records]
    flat = [c for group in cands for c in group]
    if not flat:
        return [[] for _ in cands]
    emb = encode_texts(flat, embedder)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True).clip(min=1e-12)
    out, start = [], 0
    for group in cands:
        block = emb[start : start + len(group)]
        start += len(group)
        out.append([float(block[i] @ block[j]) for i, j in itertools.combinations(range(len(group)), 2)])
    return out


def dataset_stats(records: list[dict[str, Any]], embedder: Any = None) -> dict[str, Any]:
    """Counts, word lengths, and SBERT cosine between candidates of the same context (one batched encode)."""
    cands = [r["candidates"] for r in records]
    flat = [c for group in cands for c in group]
    sims = within_context_cosines(records, embedder)
    per_context = [mean(s) for s in sims if s]
    pooled = [x for s in sims for x in s]
    top = max([0.0, *pooled])
    turns = [len(r["context"]) if isinstance(r.get("context"), list) else 1 for r in records]
    lengths = [len(c.split()) for c in flat]
    return {
        "contexts": len(records),
        "candidates": len(flat),
        "candidates_per_context": f"{min(map(len, cands))}–{max(map(len, cands))}",
        "turns_per_context": f"{min(turns)}–{max(turns)}",
        "words_per_candidate_mean": round(mean(lengths), 1),
        "words_per_candidate_median": median(lengths),
        "words_per_candidate_max": max(lengths),
        "within_context_cosine_mean": round(mean(per_context), 3),
        "within_context_cosine_pooled": round(mean(pooled), 3),
        "within_context_cosine_max": round(top, 3),
    }


def bundled_table(embedder: Any = None) -> str:
    rows = []
    for name in BUNDLED:
        for split in ("train", "test"):
            stats = dataset_stats(load_one_to_many(f"builtin:{name}", split=split), embedder)
            rows.append((f"{name}/{split}", stats))
    keys = list(rows[0][1])
    lines = ["| split | " + " | ".join(k.replace("_", " ") for k in keys) + " |",
             "|---|" + "---:|" * len(keys)]
    lines += [f"| {name} | " + " | ".join(str(s[k]) for k in keys) + " |" for name, s in rows]
    return "\n".join(lines)


def write_card_table(table: str, card: Path = CARD) -> None:
    text = card.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise ValueError(f"{card} has no {BEGIN} … {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    atomic_write_text(card, f"{head}{BEGIN}\n{table}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help=f"update the table in {CARD}")
    args = parser.parse_args()
    table = bundled_table()
    print(table)
    if args.write:
        write_card_table(table)


if __name__ == "__main__":
    main()
