"""distinct_k: number of equivalence classes among the K responses of each prompt."""

import datasets
import evaluate

from peft_diversity.scoring import distinct_k

_CITATION = """\
@misc{zhang2025noveltybench,
    title = {NoveltyBench: Evaluating Language Models for Humanlike Diversity},
    author = {Zhang, Yiming and Diddee, Harshita and Holm, Susan and Liu, Hanchen and Liu, Xinyue and Samuel, Vinay and Wang, Barry and Ippolito, Daphne},
    year = {2025},
    eprint = {2504.05228},
    archivePrefix = {arXiv},
}
"""

_DESCRIPTION = """\
distinct_k partitions the K responses of a prompt greedily into equivalence classes, in the manner
of NoveltyBench: each response is compared with the first member of every class found so far and
joins the first one it is equivalent to, else opens a new class. Equivalence here is a similarity
threshold (sentence-embedding cosine >= 0.85, or bag-of-n-gram cosine >= 0.6), NOT NoveltyBench's
official trained classifier, so values are not comparable with NoveltyBench's leaderboard.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `str`): the K responses of each prompt.
    method (`str`, optional): "embedding" (default) or "ngram".
    threshold (`float`, optional): equivalence threshold (default 0.85 / 0.6 by method).
    embedder (`SentenceTransformer` or `str`, optional): for method="embedding".
    max_order (`int`, optional): n-gram orders 1..max_order for method="ngram", default 2.
    return_per_prompt (`bool`, optional): also return per-prompt counts and class labels.

Returns:
    distinct_k (`float`): mean number of classes per prompt, in [1, K].
    distinct_k_ratio (`float`): mean of classes / K.
    num_prompts (`int`).

Examples:
    >>> metric = evaluate.load("distinct_k")
    >>> metric.compute(predictions=[["a cat", "a cat", "two dogs"]], method="ngram")["distinct_k"]
    2.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class DistinctK(evaluate.Metric):
    """Number of distinct responses per prompt by greedy equivalence partition."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("string"))}),
            reference_urls=["https://arxiv.org/abs/2504.05228"],
        )

    def _compute(
        self,
        predictions,
        method="embedding",
        threshold=None,
        embedder=None,
        max_order=2,
        batch_size=128,
        return_per_prompt=False,
    ):
        return distinct_k(
            predictions,
            method=method,
            threshold=threshold,
            embedder=embedder,
            max_order=max_order,
            batch_size=batch_size,
            return_per_prompt=return_per_prompt,
        )
