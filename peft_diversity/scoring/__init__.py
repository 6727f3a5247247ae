"""Pure metric functions over ``predictions: list[list[str]]`` (K responses per prompt).

Every function returns a plain dict of JSON-serialisable values: the per-prompt mean under
the metric's name, the pooled variant under ``<name>_pooled`` where it differs, counts as
ints, and ``*_per_prompt`` lists when ``return_per_prompt=True``. No ``evaluate`` import and no
network here; ``metrics/<name>/<name>.py`` wraps these for ``evaluate.load``.
"""

from ._common import resolve_tokenizer, tokenize, whitespace_tokenize
from .bias import attribute_entropies, attribute_entropy
from .bleu import batch_leave_one_out_bleu, leave_one_out_bleu, self_bleu
from .coherence import coherence
from .distinct import distinct_n, expected_distinct
from .distinct_k import distinct_k, greedy_partition
from .embeddings import CachedEmbedder, default_embedder_path, encode_texts, load_embedder
from .judges import (
    JUDGE_PROMPT,
    JUDGE_SYSTEM_PROMPT,
    build_judge_messages,
    make_judge,
    parse_rating,
)
from .likelihood import check_likelihood_coherence, likelihood_coherence
from .report import METRICS, score_predictions
from .semantic import semantic_diversity
from .vendi import vendi_from_kernel, vendi_score

__all__ = [
    "JUDGE_PROMPT",
    "JUDGE_SYSTEM_PROMPT",
    "METRICS",
    "CachedEmbedder",
    "attribute_entropies",
    "attribute_entropy",
    "batch_leave_one_out_bleu",
    "build_judge_messages",
    "check_likelihood_coherence",
    "coherence",
    "default_embedder_path",
    "distinct_k",
    "distinct_n",
    "encode_texts",
    "expected_distinct",
    "greedy_partition",
    "leave_one_out_bleu",
    "likelihood_coherence",
    "load_embedder",
    "make_judge",
    "parse_rating",
    "resolve_tokenizer",
    "score_predictions",
    "self_bleu",
    "semantic_diversity",
    "tokenize",
    "vendi_from_kernel",
    "vendi_score",
    "whitespace_tokenize",
]
