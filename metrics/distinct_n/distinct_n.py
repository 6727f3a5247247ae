"""Distinct-n and expectation-adjusted distinct (EAD) of the K responses of each prompt."""

import datasets
import evaluate

from peft_diversity.scoring import distinct_n

_CITATION = """\
@inproceedings{li2016diversity,
    title = {A Diversity-Promoting Objective Function for Neural Conversation Models},
    author = {Li, Jiwei and Galley, Michel and Brockett, Chris and Gao, Jianfeng and Dolan, Bill},
    booktitle = {NAACL},
    year = {2016},
}
@inproceedings{liu2022rethinking,
    title = {Rethinking and Refining the Distinct Metric},
    author = {Liu, Siyang and Sabour, Sahand and Zheng, Yinhe and Ke, Pei and Zhu, Xiaoyan and Huang, Minlie},
    booktitle = {ACL},
    year = {2022},
}
"""

_DESCRIPTION = """\
Distinct-n: unique n-grams / total n-grams (n-grams never cross response boundaries), within
the K responses of each prompt (averaged over prompts) and over all responses pooled. EAD divides
the unique count by its expectation under uniform draws, V * (1 - ((V - 1) / V) ** C), with C the
n-gram total and V = vocab_size ** n (default vocab_size 50,000) or an explicit {n: V_n}.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `str`): the K responses of each prompt.
    orders (`list` of `int`, optional): n-gram orders, default [1, 2, 3, 4].
    vocab_size (`int` or `dict`, optional): V for EAD, default 50000 (V_n = vocab_size ** n).
    tokenizer (`str` or callable, optional): "regex" (default), "whitespace" or a function.
    lowercase (`bool`, optional): default True.
    return_per_prompt (`bool`, optional): also return per-prompt lists.

Returns:
    distinct_{n}, distinct_{n}_pooled, ead_{n}, ead_{n}_pooled (`float`) for each n; num_prompts (`int`).

Examples:
    >>> metric = evaluate.load("distinct_n")
    >>> metric.compute(predictions=[["a b", "a c"]], orders=[1])["distinct_1"]
    0.75
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class DistinctN(evaluate.Metric):
    """Distinct-n and EAD of K responses per prompt."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("string"))}),
            reference_urls=[
                "https://aclanthology.org/N16-1014",
                "https://aclanthology.org/2022.acl-short.86",
            ],
        )

    def _compute(
        self,
        predictions,
        orders=(1, 2, 3, 4),
        vocab_size=50_000,
        tokenizer="regex",
        lowercase=True,
        return_per_prompt=False,
    ):
        return distinct_n(predictions, orders, vocab_size, tokenizer, lowercase, return_per_prompt)
