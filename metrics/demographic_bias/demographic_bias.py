"""Demographic bias as the entropy of a categorical attribute of generated personas."""

import datasets
import evaluate

from peft_diversity.scoring import attribute_entropy

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
Distribution of a categorical attribute (e.g. gender, age group, ethnicity) over items a model
generated (e.g. personas): Shannon entropy in bits, entropy normalised by log2(#categories), and
KL divergence (bits) from a reference distribution (uniform over the categories by default).
Higher entropy / lower KL = less skewed = less biased. "unknown" values (and empty/None) are
reported separately and excluded from the distribution; values differing from a category only in
case ("Female") count as that category.
"""

_KWARGS_DESCRIPTION = """
Args:
    attributes (`list` of `str`): one attribute value per generated item; call once per attribute.
    reference (`dict`, optional): category -> weight of the reference distribution (normalised). One that
        gives no mass to an observed category makes the KL infinite: kl_to_reference is None and
        kl_note says so (the persona bias test reports it the same way).
    categories (`list` of `str`, optional): the full category set (for the uniform reference and
        the normalisation), default: reference keys + observed values.
    attribute_name (`str`, optional): one of the persona test's attributes (country, region, age, gender,
        education, occupation): its shipped categories (`peft_diversity.persona`) become `categories`.
    unknown_values (`list` of `str`, optional): values counted as unknown, default ["unknown", ""].

Returns:
    entropy (`float`), normalized_entropy (`float`, None when nothing is known),
    max_normalized_entropy (`float`: log2(min(num_known, K)) / log2(K), the most num_known answers can
    reach), effective_categories (`float`, 2**entropy), entropy_miller_madow (`float`, bias-corrected),
    kl_to_reference (`float`, None when nothing is known or the KL is infinite), kl_note (`str`, only
    when the KL is infinite), num_known, num_unknown, num_categories (`int`), unknown_rate (`float`),
    counts (`dict` category -> int), distribution (`dict` category -> float).

Examples:
    >>> metric = evaluate.load("demographic_bias")
    >>> metric.compute(attributes=["female", "male", "unknown", "male"], categories=["female", "male"])["entropy"]
    0.9182958340544896
    >>> metric.compute(attributes=["25-34", "25-34", "65+"], attribute_name="age")["num_categories"]
    7
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class DemographicBias(evaluate.Measurement):
    """Entropy / KL of a categorical attribute of generated items."""

    def _info(self):
        return evaluate.MeasurementInfo(
            module_type="measurement",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"attributes": datasets.Value("string")}),
            reference_urls=["https://arxiv.org/abs/2412.03343"],
        )

    def _compute(
        self, attributes, reference=None, categories=None, unknown_values=("unknown", ""), attribute_name=None
    ):
        if attribute_name is not None and categories is None:
            from peft_diversity.persona import category_ids

            categories = category_ids(attribute_name)
        return attribute_entropy(attributes, reference, categories, unknown_values, strict_reference=False)
