"""Benchmark the scoring functions against the reference loops in ``reference_metrics.py``.

    python benchmarks/bench_metrics.py [--prompts 300] [--num-responses 10] [--seed 0] [--markdown out.md]

On seeded synthetic responses (K per prompt, sharing a per-prompt topic vocabulary like real
sampled responses do), times: self-BLEU (fast leave-one-out vs an NLTK ``sentence_bleu`` loop)
and semantic diversity (one batched encode vs one encode per prompt), checks that the values
agree, and prints a markdown snippet for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import random
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent

SUBJECTS = "I|my sister|our neighbour|the old man|a friend of mine|my boss|the kids|we|my grandmother|the new teacher".split(
    "|"
)
VERBS = "visited|painted|cooked|found|lost|built|read|watched|planned|fixed|sold|borrowed|climbed|discovered".split(
    "|"
)
ADJECTIVES = "small|quiet|bright|broken|strange|cheap|lovely|ancient|noisy|tiny|huge|cozy|red|wooden".split(
    "|"
)
PLACES = "near the river|in the city|at the market|after work|on the weekend|before dinner|in the park|at school".split(
    "|"
)
ENDINGS = (
    "and it was worth it|but nobody noticed|so we laughed about it|which surprised everyone|"
    "and then it started to rain|because it felt right|although it took hours|and I still think about it"
).split("|")
TOPICS = [
    "bike|garden|guitar|cake|boat|letter|painting|house|car|book".split("|"),
    "kitten|puppy|horse|parrot|rabbit|turtle|goldfish|hamster".split("|"),
    "movie|concert|game|festival|museum|library|beach|mountain|lake".split("|"),
    "job|exam|project|recipe|startup|podcast|novel|poem|song".split("|"),
]


def synthetic_predictions(num_prompts: int = 300, k: int = 10, seed: int = 0) -> list[list[str]]:
    """``num_prompts`` lists of ``k`` realistic sentences; a prompt's responses share a topic."""
    rng = random.Random(seed)
    predictions = []
    for _ in range(num_prompts):
        topic = rng.choice(TOPICS)
        responses = []
        for _ in range(k):
            sentence = (
                f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} a {rng.choice(ADJECTIVES)} {rng.choice(topic)}"
            )
            if rng.random() < 0.7:
                sentence += f" {rng.choice(PLACES)}"
            if rng.random() < 0.6:
                sentence += f", {rng.choice(ENDINGS)}"
            responses.append(sentence[0].upper() + sentence[1:] + rng.choice([".", "!", "."]))
        predictions.append(responses)
    return predictions


def _reference_module():
    spec = importlib.util.spec_from_file_location("reference_metrics", _HERE / "reference_metrics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def bench_self_bleu(predictions, ref, repeat: int) -> dict:
    from peft_diversity.scoring import self_bleu, tokenize

    fast_t, fast = _best_of(lambda: self_bleu(predictions, return_per_prompt=True), repeat)
    slow_t, slow = _best_of(lambda: ref.nltk_self_bleu(predictions, tokenize), 1)
    diff = max(
        abs(a - b)
        for x, y in zip(fast["self_bleu_per_response"], slow, strict=True)
        for a, b in zip(x, y, strict=True)
    )
    return {"name": "self-BLEU (4-gram, method1)", "fast": fast_t, "reference": slow_t, "max_abs_diff": diff}


def bench_semantic(predictions, ref, repeat: int) -> dict:
    from peft_diversity.scoring import load_embedder, semantic_diversity

    model = load_embedder()
    model.encode(["warm-up"] * 8, show_progress_bar=False)
    fast_t, fast = _best_of(lambda: semantic_diversity(predictions, model, return_per_prompt=True), repeat)
    slow_t, slow = _best_of(lambda: ref.loop_semantic_diversity(predictions, model), 1)
    diff = max(abs(a - b) for a, b in zip(fast["semantic_diversity_per_prompt"], slow, strict=True))
    return {"name": "semantic diversity (MiniLM)", "fast": fast_t, "reference": slow_t, "max_abs_diff": diff}


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    import torch

    lines = [
        f"### Metric speed ({args.prompts} prompts x {args.num_responses} responses, seed {args.seed})",
        "",
        f"Command: `python benchmarks/bench_metrics.py --prompts {args.prompts} --num-responses {args.num_responses} --seed {args.seed}`  ",
        f"Machine: {os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}), torch threads "
        f"{torch.get_num_threads()}, Python {platform.python_version()}; date {datetime.date.today().isoformat()}; "
        f"load average at the end {os.getloadavg()[0]:.1f}; fast paths: best of {args.repeat} runs, references: one run, "
        "all in one process.",
        "",
        "| metric | reference loop (s) | peft_diversity (s) | speed-up | max abs diff |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['reference']:.3f} | {r['fast']:.3f} | {r['reference'] / r['fast']:.1f}x | {r['max_abs_diff']:.1e} |"
        )
    lines += [
        "",
        "Reference loops: NLTK `sentence_bleu` per response against the other K-1; one "
        "`SentenceTransformer.encode` call per prompt. Targets: self-BLEU >= 20x, semantic diversity >= 3x.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print times, ratios and the markdown snippet; exit 1 if a target is missed."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=300)
    parser.add_argument("--num-responses", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs of the fast paths (best kept); references run once"
    )
    parser.add_argument("--markdown", type=Path, default=None, help="also write the snippet here")
    args = parser.parse_args(argv)
    predictions = synthetic_predictions(args.prompts, args.num_responses, args.seed)
    ref = _reference_module()
    rows = [bench_self_bleu(predictions, ref, args.repeat), bench_semantic(predictions, ref, args.repeat)]
    targets = {rows[0]["name"]: 20.0, rows[1]["name"]: 3.0}
    ok = True
    for r in rows:
        ratio = r["reference"] / r["fast"]
        ok &= ratio >= targets[r["name"]]
        print(
            f"{r['name']}: reference {r['reference']:.3f}s, fast {r['fast']:.3f}s, {ratio:.1f}x (target {targets[r['name']]:.0f}x), max |diff| {r['max_abs_diff']:.1e}"
        )
    snippet = markdown(rows, args)
    print("\n" + snippet)
    if args.markdown:
        args.markdown.write_text(snippet + "\n", encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
