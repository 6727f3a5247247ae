"""Vendi score of the K responses of each prompt (embedding-cosine or n-gram kernel)."""

import datasets
import evaluate

from peft_diversity.scoring import vendi_score

_CITATION = """\
@article{friedman2023vendi,
    title = {The Vendi Score: A Diversity Evaluation Metric for Machine Learning},
    author = {Friedman, Dan and Dieng, Adji Bousso},
    journal = {Transactions on Machine Learning Research},
    year = {2023},
}
"""

_DESCRIPTION = """\
Vendi score: the exponential of the Shannon entropy of the eigenvalues of K / n, where K is the
n x n similarity matrix of a prompt's responses (unit diagonal). It is the effective number of
distinct responses: 1 when all are identical, n when all are orthogonal. Kernels: "embedding"
(cosine of sentence embeddings, default all-MiniLM-L6-v2) or "ngram" (cosine of bag-of-n-gram
count vectors, n = 1..max_order).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `str`): the K responses of each prompt.
    kernel (`str`, optional): "embedding" (default) or "ngram".
    embedder (`SentenceTransformer` or `str`, optional): for the embedding kernel.
    max_order (`int`, optional): highest n-gram order of the n-gram kernel, default 2.
    return_per_prompt (`bool`, optional): also return `vendi_score_per_prompt`.

Returns:
    vendi_score (`float`): mean over prompts, in [1, K].
    vendi_score_normalized (`float`): mean of score / K, in [1/K, 1].
    num_prompts (`int`).

Examples:
    >>> metric = evaluate.load("vendi")
    >>> round(metric.compute(predictions=[["red apple", "blue sky"]], kernel="ngram")["vendi_score"], 6)
    2.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Vendi(evaluate.Metric):
    """Vendi score of K responses per prompt."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("string"))}),
            reference_urls=["https://arxiv.org/abs/2210.02410"],
        )

    def _compute(
        self,
        predictions,
        kernel="embedding",
        embedder=None,
        max_order=2,
        batch_size=128,
        return_per_prompt=False,
    ):
        return vendi_score(
            predictions,
            kernel=kernel,
            embedder=embedder,
            max_order=max_order,
            batch_size=batch_size,
            return_per_prompt=return_per_prompt,
        )
