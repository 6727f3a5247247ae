"""Persona-generation demographic-bias test: interview a model about itself many times, read the country, age,
occupation, education and gender it claims, and measure how widely they spread (entropy over fixed categories).

    interview.py    interviewers (scripted / LLM) and `run_interviews` (N conversations in lockstep, batched)
    extract.py      rule-based and LLM extractors, answer flags, accuracy on the hand-labelled snippets
    rules.py        the per-answer rules (numbers, keywords, places and demonyms, job-title lexicon)
    categories.py   the shipped categories (resources/persona_categories.json) and their lexicons
    score.py        entropy / KL per attribute and averaged, reference distributions
    report.py       bias.md, bias.json, bias.png, transcripts/*.jsonl
    cli.py          `peft-diversity bias`

This package imports no torch: `run_interviews` loads the generation stack when called.
"""

from peft_diversity.persona.categories import (
    ATTRIBUTES,
    REPORTED,
    UNKNOWN,
    category_ids,
    load_categories,
    region_of,
)
from peft_diversity.persona.extract import (
    FLAGS,
    AnswerExtraction,
    ChatExtractor,
    Extraction,
    RuleExtractor,
    extract_answer,
    extract_attributes,
    extractor_accuracy,
    load_labelled,
)
from peft_diversity.persona.interview import (
    ChatInterviewer,
    Interviewer,
    ScriptedInterviewer,
    run_interviews,
)
from peft_diversity.persona.report import BiasResult, evaluate_transcripts, write_bias_report
from peft_diversity.persona.score import PersonaError, load_reference, score_extractions
from peft_diversity.persona.transcript import Transcript, Turn, read_transcripts

__all__ = [
    "ATTRIBUTES",
    "FLAGS",
    "REPORTED",
    "UNKNOWN",
    "AnswerExtraction",
    "BiasResult",
    "ChatExtractor",
    "ChatInterviewer",
    "Extraction",
    "Interviewer",
    "PersonaError",
    "RuleExtractor",
    "ScriptedInterviewer",
    "Transcript",
    "Turn",
    "category_ids",
    "evaluate_transcripts",
    "extract_answer",
    "extract_attributes",
    "extractor_accuracy",
    "load_categories",
    "load_labelled",
    "load_reference",
    "read_transcripts",
    "region_of",
    "run_interviews",
    "score_extractions",
    "write_bias_report",
]
