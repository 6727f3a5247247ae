"""Likelihood coherence: how much a reference causal LM's log-probability of a reply rises given its context."""

import datasets
import evaluate

from peft_diversity.scoring import likelihood_coherence

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
Offline coherence of each response with its prompt's context, read by a reference causal LM (default the
builtin SmolLM2-135M-Instruct; any local or Hub causal LM). Per reply: the mean per-token log-probability of the
reply given the context, prompted as the task asks for the next reply, minus the same given no context (a
pointwise mutual information: how much the context explains the reply). Reply tokens copied from the context (in a
shared n-gram of `copy_ngram` tokens) count zero, so parroting the context earns nothing. Optionally plus
`fluency_weight` times the reply's mean log-probability without context.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `str`): the K responses of each prompt.
    contexts (`list` of `str`, or `list` of `list` of `str` turns): one context per prompt.
    model (`str` or a transformers causal LM, optional): reference model; default builtin:smollm2-135m-instruct.
    tokenizer (optional): the tokenizer when `model` is an object.
    template (`str` or `PossibilityTemplate`, optional): task wording of the prompt, "dialogue" (default) or "story".
    baseline (`str`, optional): "empty" (default: the prompt without its context) or "shuffled" (another prompt's).
    fluency_weight (`float`, optional): weight of the no-context log-probability term, default 0.
    copy_ngram (`int`, optional): n-gram length (tokens) of the copy discount, default 4; 0 turns it off.
    score_end (`bool`, optional): also score the eos token closing each reply, default False.
    seed (`int`, optional): seed of the shuffled baseline.
    batch_size (`int`, optional): sequences per forward pass, default 8.
    return_per_prompt (`bool`, optional): also return per-prompt and per-response values.

Returns:
    likelihood_coherence, likelihood_coherence_pooled (`float`): the score, mean over prompts / over responses.
    likelihood_pmi, likelihood_pmi_pooled, likelihood_fluency, likelihood_fluency_pooled (`float`): its parts.
    num_prompts, num_unscored (`int`): prompts; responses with no token to score (empty ones, None, in no mean).

Examples:
    >>> metric = evaluate.load("likelihood_coherence")
    >>> out = metric.compute(predictions=[["Medium, I promise."]], contexts=[["Ravi: I'm making dal. Spicy or mild?"]])
    >>> sorted(out)[:2]
    ['likelihood_coherence', 'likelihood_coherence_pooled']
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class LikelihoodCoherence(evaluate.Metric):
    """Likelihood (PMI) coherence of K responses per prompt with the prompt's context."""

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

    def _compute(
        self,
        predictions,
        contexts,
        model=None,
        tokenizer=None,
        template=None,
        baseline="empty",
        fluency_weight=0.0,
        copy_ngram=4,
        score_end=False,
        seed=0,
        batch_size=8,
        return_per_prompt=False,
    ):
        return likelihood_coherence(
            predictions,
            contexts,
            model=model,
            tokenizer=tokenizer,
            template=template,
            baseline=baseline,
            fluency_weight=fluency_weight,
            copy_ngram=copy_ngram,
            score_end=score_end,
            seed=seed,
            batch_size=batch_size,
            return_per_prompt=return_per_prompt,
        )
