"""Self-BLEU: each response scored against the other K-1 responses of its prompt."""

import datasets
import evaluate

from peft_diversity.scoring import self_bleu

_CITATION = """\
@inproceedings{zhu2018texygen,
    title = {Texygen: A Benchmarking Platform for Text Generation Models},
    author = {Zhu, Yaoming and Lu, Sidi and Zheng, Lei and Guo, Jiaxian and Zhang, Weinan and Wang, Jun and Yu, Yong},
    booktitle = {SIGIR},
    year = {2018},
}
@inproceedings{papineni2002bleu,
    title = {BLEU: a Method for Automatic Evaluation of Machine Translation},
    author = {Papineni, Kishore and Roukos, Salim and Ward, Todd and Zhu, Wei-Jing},
    booktitle = {ACL},
    year = {2002},
}
"""

_DESCRIPTION = """\
Self-BLEU of the K responses of each prompt: every response is the hypothesis and the other
K-1 responses are its references (multi-reference sentence BLEU, uniform weights up to
`max_order`). Lower is more diverse; `self_bleu_diversity` = 1 - self-BLEU. The arithmetic is
NLTK's `sentence_bleu` (same smoothing methods), computed with n-gram counts built once per
response. Tokenisation is a download-free regex (words and punctuation, lower-cased).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `str`): the K responses of each prompt.
    max_order (`int`, optional): highest n-gram order, default 4.
    smoothing (`str`, optional): "none" (NLTK method0), "method1" (default), "method2", "method3".
    epsilon (`float`, optional): method1's epsilon, default 0.1.
    tokenizer (`str` or callable, optional): "regex" (default), "whitespace" or a function.
    lowercase (`bool`, optional): lower-case before tokenising, default True.
    return_per_prompt (`bool`, optional): also return per-prompt and per-response values.

Returns:
    self_bleu (`float`): mean over prompts of the mean self-BLEU of the prompt's responses.
    self_bleu_pooled (`float`): mean over all responses pooled.
    self_bleu_diversity, self_bleu_diversity_pooled (`float`): 1 - the above.
    num_prompts (`int`).

Examples:
    >>> metric = evaluate.load("self_bleu")
    >>> metric.compute(predictions=[["the cat sat on the mat", "the cat sat on the mat"]])["self_bleu"]
    1.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SelfBleu(evaluate.Metric):
    """Leave-one-out self-BLEU of K responses per prompt."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("string"))}),
            reference_urls=[
                "https://arxiv.org/abs/1802.01886",
                "https://www.nltk.org/api/nltk.translate.bleu_score.html",
            ],
        )

    def _compute(
        self,
        predictions,
        max_order=4,
        smoothing="method1",
        epsilon=0.1,
        tokenizer="regex",
        lowercase=True,
        return_per_prompt=False,
    ):
        return self_bleu(predictions, max_order, smoothing, epsilon, tokenizer, lowercase, return_per_prompt)
