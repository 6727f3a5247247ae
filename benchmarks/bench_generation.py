"""Latency of diverse generation: K possibilities in one call vs one response, shared prefix vs plain, baselines.

    python benchmarks/bench_generation.py [--repeats 3] [--num-responses 5] [--new-tokens 48] [--only p1,p2,p3] [--markdown out.md]
    python benchmarks/bench_generation.py --model-name-or-path builtin:smollm2-135m-instruct --only p1,p3

P1  `--model` (default builtin:minilm-decoder), 256-token context: K possibilities (one call) / one response
    (target <= 1.3).
P2  a tiny-but-not-trivial random Llama (hidden 256, 4 layers), 1024-token context: plain batched K full
    prompts / shared-prefix path (target >= 1.5), for `--new-tokens` and for the first token alone (the prefill,
    the only part the shared prefix saves: decoding K rows costs the same on both paths).
P3  `--model`, 128-token context (listing's K x 48 tokens must fit MiniLM's 512-token window):
    listing and iterative latency / possibilities (expected about K).
Every response is forced to exactly `--new-tokens` tokens (min_new_tokens = max_new_tokens). Variants are timed
interleaved, `--repeats` times after a warm-up; the medians are reported and ratios come from one run.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from peft_diversity import generation as gen  # noqa: E402
from peft_diversity.cli import reject_renamed  # noqa: E402
from peft_diversity.models.loading import load_model_and_tokenizer  # noqa: E402
from peft_diversity.models.minilm import minilm_decoder_tokenizer
from peft_diversity.templates import PossibilityTemplate  # noqa: E402

DEFAULT_MODEL = "builtin:minilm-decoder"
SENTENCES = [
    "I went to the market this morning and the tomatoes were finally in season.",
    "Did you hear that the bridge on the north road is closed until next month?",
    "My sister keeps sending me photos of her new puppy chewing on everything.",
    "We should plan the trip before the tickets get expensive again.",
    "The meeting ran late because nobody could agree on the budget.",
    "I started reading that mystery novel you lent me, and I cannot put it down.",
    "The rain kept the kids inside all weekend, so we built a cardboard castle.",
    "Honestly I think the new cafe on the corner makes the best bread in town.",
]


def synthetic_dialogue(tokenizer, num_tokens: int) -> list[dict[str, str]]:
    """Alternating turns whose rendered text is exactly `num_tokens` tokens (the last turn is cut to fit)."""
    template, turns, index = PossibilityTemplate(), [], 0
    while len(gen.encode(tokenizer, template.render_input({"context": turns}))) < num_tokens:
        turns.append({"speaker": ("Maya", "Sam")[index % 2], "text": SENTENCES[index % len(SENTENCES)]})
        index += 1
    excess = len(gen.encode(tokenizer, template.render_input({"context": turns}))) - num_tokens
    while excess > 0:
        words = turns[-1]["text"].split()
        turns[-1]["text"] = " ".join(words[:-1])
        excess = len(gen.encode(tokenizer, template.render_input({"context": turns}))) - num_tokens
    return turns


def time_variants(variants: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per variant: one warm-up each, then `repeats` rounds, variants interleaved."""
    for call in variants.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, call in variants.items():
            start = time.perf_counter()
            result = call()
            times[name].append(time.perf_counter() - start)
            _check_lengths(name, result)
    return {name: statistics.median(values) for name, values in times.items()}


def _check_lengths(name: str, result) -> None:
    lengths = {n for r in (result if isinstance(result, list) else [result]) for n in r.num_tokens}
    if len(lengths) != 1 and not name.startswith("listing"):
        raise RuntimeError(f"{name}: responses of unequal lengths {lengths}; min_new_tokens not honoured")


def bench_p1(model, tokenizer, k: int, new_tokens: int, repeats: int) -> dict[str, float]:
    context = synthetic_dialogue(tokenizer, 256)
    common = dict(
        template=PossibilityTemplate(), max_new_tokens=new_tokens, min_new_tokens=new_tokens, seed=0
    )
    times = time_variants(
        {
            "one response": lambda: gen.generate_possibilities(
                model, tokenizer, context, possibilities=[1], **common
            ),
            f"{k} possibilities": lambda: gen.generate_possibilities(
                model, tokenizer, context, num_responses=k, **common
            ),
            f"{k} possibilities, plain path": lambda: gen.generate_possibilities(
                model, tokenizer, context, num_responses=k, shared_prefix=False, **common
            ),
            f"{k} samples (sampling)": lambda: gen.generate_sampling(
                model, tokenizer, context, num_responses=k, **common
            ),
        },
        repeats,
    )
    times["ratio"] = times[f"{k} possibilities"] / times["one response"]
    return times


def tiny_llama(tokenizer):
    """Random Llama, hidden 256, 4 layers: big enough that a 1024-token prefill costs real time."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def bench_p2(tokenizer, k: int, new_tokens: int, repeats: int) -> dict[str, float]:
    model = tiny_llama(tokenizer)
    context = synthetic_dialogue(tokenizer, 1024)
    common = dict(
        template=PossibilityTemplate(), k=k, max_new_tokens=new_tokens, min_new_tokens=new_tokens, seed=0
    )
    first = {**common, "max_new_tokens": 1, "min_new_tokens": 1}  # time to first token: the prefill alone
    times = time_variants(
        {
            "shared prefix": lambda: gen.generate_possibilities(model, tokenizer, context, **common),
            "plain batched": lambda: gen.generate_possibilities(
                model, tokenizer, context, shared_prefix=False, **common
            ),
            "shared prefix, first token": lambda: gen.generate_possibilities(
                model, tokenizer, context, **first
            ),
            "plain batched, first token": lambda: gen.generate_possibilities(
                model, tokenizer, context, shared_prefix=False, **first
            ),
        },
        repeats,
    )
    times["speed-up"] = times["plain batched"] / times["shared prefix"]
    times["first-token speed-up"] = times["plain batched, first token"] / times["shared prefix, first token"]
    return times


def bench_p3(model, tokenizer, k: int, new_tokens: int, repeats: int) -> dict[str, float]:
    context = synthetic_dialogue(tokenizer, 128)
    common = dict(num_responses=k, max_new_tokens=new_tokens, min_new_tokens=new_tokens, seed=0)
    times = time_variants(
        {
            "possibilities": lambda: gen.generate_possibilities(
                model, tokenizer, context, template=PossibilityTemplate(), **common
            ),
            "listing": lambda: gen.generate_listing(model, tokenizer, context, **common),
            "iterative": lambda: gen.generate_iterative(model, tokenizer, context, **common),
        },
        repeats,
    )
    times["listing / possibilities"] = times["listing"] / times["possibilities"]
    times["iterative / possibilities"] = times["iterative"] / times["possibilities"]
    return times


def markdown(results: dict[str, dict[str, float]], args: argparse.Namespace) -> str:
    k, n = args.num_responses, args.new_tokens
    name = args.model.removeprefix("builtin:")
    model_flag = "" if args.model == DEFAULT_MODEL else f" --model-name-or-path {args.model}"
    lines = [
        f"### Generation latency ({datetime.date.today().isoformat()}, 2-core CPU, torch {torch.__version__}, "
        f"torch threads: {torch.get_num_threads()}, {platform.machine()})",
        "",
        f"`python benchmarks/bench_generation.py{model_flag} --only {args.only} --repeats {args.repeats} --num-responses {k} --new-tokens {n} "
        f"--threads {args.threads}` — "
        f"median of {args.repeats} interleaved runs after a warm-up; every response exactly {n} new tokens; "
        "ratios from one run.",
        "",
        "| id | setting | measured | median s | ratio | target |",
        "|---|---|---|---|---|---|",
    ]
    if "p1" in results:
        r = results["p1"]
        lines += [
            f"| P1 | {name}, 256-token context | one response | {r['one response']:.3f} | | |",
            f"| P1 | | {k} possibilities, one call (shared prefix) | {r[f'{k} possibilities']:.3f} | "
            f"**{r['ratio']:.2f}x** one response | <= 1.3 |",
            f"| P1 | | {k} possibilities, plain path | {r[f'{k} possibilities, plain path']:.3f} | "
            f"{r[f'{k} possibilities, plain path'] / r['one response']:.2f}x | |",
            f"| P1 | | {k} samples (`sampling`) | {r[f'{k} samples (sampling)']:.3f} | "
            f"{r[f'{k} samples (sampling)'] / r['one response']:.2f}x | |",
        ]
    if "p2" in results:
        r = results["p2"]
        lines += [
            f"| P2 | random Llama h256 x 4 layers, 1024-token context, K={k} | plain batched K prompts | "
            f"{r['plain batched']:.3f} | | |",
            f"| P2 | | shared prefix | {r['shared prefix']:.3f} | **{r['speed-up']:.2f}x faster** | >= 1.5 |",
            f"| P2 | same, first token only (prefill) | plain batched | {r['plain batched, first token']:.3f} | | |",
            f"| P2 | | shared prefix | {r['shared prefix, first token']:.3f} | "
            f"{r['first-token speed-up']:.2f}x faster | |",
        ]
    if "p3" in results:
        r = results["p3"]
        lines += [
            f"| P3 | {name}, 128-token context, K={k} | possibilities | {r['possibilities']:.3f} | 1 | |",
            f"| P3 | | listing (one {k}x{n}-token generation) | {r['listing']:.3f} | "
            f"{r['listing / possibilities']:.2f}x | about K |",
            f"| P3 | | iterative ({k} sequential calls) | {r['iterative']:.3f} | "
            f"{r['iterative / possibilities']:.2f}x | about K |",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model-name-or-path",
        dest="model",
        default=DEFAULT_MODEL,
        help=f"model of P1 and P3 (default {DEFAULT_MODEL})",
    )
    reject_renamed(
        parser, {"--model": "--model-name-or-path"}
    )  # one flag name per concept (docs/architecture.md)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-responses", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--only", default="p1,p2,p3", help="comma-separated subset of p1,p2,p3")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared 2-core machine, 2 OpenMP threads stall "
        "whenever another process runs, which swamps the ratios); 0 = torch's choice",
    )
    parser.add_argument("--markdown", type=Path, help="also write the snippet here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    wanted = set(args.only.split(","))
    results: dict[str, dict[str, float]] = {}
    if wanted & {"p1", "p3"}:
        model, tokenizer = load_model_and_tokenizer(args.model)
        if "p1" in wanted:
            results["p1"] = bench_p1(model, tokenizer, args.num_responses, args.new_tokens, args.repeats)
            print("P1", results["p1"], flush=True)
        if "p3" in wanted:
            results["p3"] = bench_p3(model, tokenizer, args.num_responses, args.new_tokens, args.repeats)
            print("P3", results["p3"], flush=True)
    if "p2" in wanted:
        long_tokenizer = minilm_decoder_tokenizer()
        long_tokenizer.model_max_length = 2048  # the Llama's window, not MiniLM's 512
        results["p2"] = bench_p2(long_tokenizer, args.num_responses, args.new_tokens, args.repeats)
        print("P2", results["p2"], flush=True)
    snippet = markdown(results, args) + (
        f"\n1-minute load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (other jobs share the CPU).\n"
    )
    print(snippet)
    if args.markdown:
        args.markdown.write_text(snippet, encoding="utf-8")


if __name__ == "__main__":
    main()
