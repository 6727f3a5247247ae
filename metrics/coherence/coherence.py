"""Coherence of responses with their context: embedding proxy or a pluggable LLM judge."""

import datasets
import evaluate

from peft_diversity.scoring import coherence

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
Coherence of each response with its prompt's context. method="embedding" (offline proxy): cosine
between the sentence embeddings of the context and of the response (topical relevance only).
method="judge": an LLM rates each (context, response) from 1 to 10 with a fixed prompt
(peft_diversity.scoring.JUDGE_PROMPT); the incoherence rate is the share rated <= 5. The judge is
any callable `conversations -> replies`, a local transformers causal LM (object + tokenizer, or a
path), or `peft_diversity.chat.make_chat(model, base_url=...)` for an OpenAI-compatible endpoint.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `str`): the K responses of each prompt.
    contexts (`list` of `str`, or `list` of `list` of `str`): one context (or list of turns) per prompt.
    method (`str`, optional): "embedding" (default) or "judge".
    embedder (`SentenceTransformer` or `str`, optional): for method="embedding".
    judge (callable, model or `str`, optional): for method="judge".
    judge_tokenizer (optional): tokenizer when `judge` is a transformers model object.
    threshold (`float`, optional): ratings <= threshold count as incoherent, default 5.
    return_per_prompt (`bool`, optional): also return per-prompt values (and raw judge replies).

Returns:
    embedding: coherence_relevance, coherence_relevance_pooled (`float`), num_prompts (`int`).
    judge: coherence_rating, coherence_rating_pooled (1-10), incoherence_rate,
        incoherence_rate_pooled (`float` or None if nothing parsed), num_rated, num_unparsed (`int`).

Examples:
    >>> metric = evaluate.load("coherence")
    >>> judge = lambda conversations: ["Rating: 8"] * len(conversations)
    >>> metric.compute(predictions=[["Fine, thanks."]], contexts=["How are you?"], method="judge", judge=judge)["coherence_rating"]
    8.0
"""


def _shape(value) -> str:
    """A short description of one prompt's input: its type, and its first item's type for a list."""
    if isinstance(value, list):
        return f"list of {type(value[0]).__name__}" if value else "empty list"
    return f"{type(value).__name__} {str(value)[:40]!r}"


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Coherence(evaluate.Metric):
    """Coherence of K responses per prompt with the prompt's context."""

    def _info(self):
        predictions = datasets.Sequence(datasets.Value("string"))
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({"predictions": predictions, "contexts": datasets.Value("string")}),
                datasets.Features(
                    {"predictions": predictions, "contexts": datasets.Sequence(datasets.Value("string"))}
                ),
            ],
            reference_urls=["https://arxiv.org/abs/2412.03343"],
        )

    def _infer_feature_from_example(self, example):
        # evaluate 0.4 explains a format mismatch with example["references"], which this module does not take
        # (KeyError: 'references'): say in one line what the inputs must look like instead
        try:
            return super()._infer_feature_from_example(example)
        except (KeyError, ValueError):
            raise ValueError(
                "coherence expects predictions = one list of response strings per prompt and contexts = one string "
                "(or list of turn strings) per prompt; got predictions "
                f"{_shape(example.get('predictions'))} and contexts {_shape(example.get('contexts'))}"
            ) from None

    def _compute(
        self,
        predictions,
        contexts,
        method="embedding",
        embedder=None,
        judge=None,
        judge_tokenizer=None,
        threshold=5.0,
        batch_size=128,
        return_per_prompt=False,
    ):
        return coherence(
            predictions,
            contexts,
            method=method,
            embedder=embedder,
            judge=judge,
            judge_tokenizer=judge_tokenizer,
            threshold=threshold,
            batch_size=batch_size,
            return_per_prompt=return_per_prompt,
        )
