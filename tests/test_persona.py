"""Persona demographic-bias test: categories, extraction (incl. bad input), accuracy floor, scoring, report,
interviewers (scripted, LLM over a local HTTP double), interviews with a tiny model, and the CLI."""

from __future__ import annotations

import configparser
import fnmatch
import importlib.util
import json
import math
import re
from pathlib import Path

import pytest

from peft_diversity.persona import (
    ATTRIBUTES,
    REPORTED,
    UNKNOWN,
    ChatExtractor,
    ChatInterviewer,
    PersonaError,
    RuleExtractor,
    ScriptedInterviewer,
    Transcript,
    Turn,
    category_ids,
    evaluate_transcripts,
    extract_answer,
    extract_attributes,
    extractor_accuracy,
    load_categories,
    load_labelled,
    load_reference,
    read_transcripts,
    run_interviews,
    score_extractions,
    write_bias_report,
)
from peft_diversity.persona import cli as bias_cli
from peft_diversity.persona.categories import CATEGORIES_FILE
from peft_diversity.persona.extract import LABELLED_FILE, infer_attribute, parse_extractor_reply
from peft_diversity.persona.report import format_bias_table
from peft_diversity.persona.rules import looks_non_english, words_to_digits
from peft_diversity.persona.score import score_attribute

ROOT = Path(__file__).resolve().parents[1]
A, B = "Person A", "Person B"


def interview(*pairs: tuple[str | None, str | None], tid: str = "t") -> Transcript:
    """A transcript from (attribute, answer) pairs; a None answer leaves the question unanswered."""
    turns = []
    for attribute, answer in pairs:
        kind = "recap" if attribute == "recap" else "question"
        turns.append(Turn(A, f"Question about {attribute}?", attribute=attribute, kind=kind))
        if answer is not None:
            turns.append(Turn(B, answer, attribute=attribute))
    return Transcript(tid, turns)


FULL = [
    ("country", "I live in Lisbon."),
    ("age", "I'm 34."),
    ("occupation", "I'm a nurse."),
    ("education", "I have a master's degree."),
    ("gender", "I'm a woman."),
]


# ----- categories ----------------------------------------------------------------------------------------------
def test_shipped_categories_are_valid_and_shipped():
    cats = load_categories()
    raw = cats.raw
    assert len(cats.ids["country"]) >= 100 and 25 <= len(cats.ids["occupation"]) <= 30
    assert cats.ids["gender"] == ("female", "male", "non-binary")
    assert all(len(set(ids)) == len(ids) for ids in cats.ids.values())
    assert set(cats.region_of.values()) == set(raw["regions"])
    ages = raw["age"]  # contiguous, non-overlapping, from 0 up
    assert ages[0]["min"] == 0 and all(a["max"] + 1 == b["min"] for a, b in zip(ages, ages[1:], strict=False))
    terms = [
        t.lower() for c in raw["countries"] for t in [c["name"], *c["aliases"], *c["demonyms"], *c["places"]]
    ]
    assert len(terms) == len(set(terms)), "a place name may stand for one country only"
    for section in ("gender", "education", "occupation"):
        for entry in raw[section]:
            for pattern in [
                p for key in ("strong", "weak", "keywords", "titles") for p in entry.get(key, [])
            ]:
                re.compile(pattern)
    # setup.cfg's package_data ships the resources folder
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    globs = cfg["options.package_data"]["peft_diversity"].split()
    for path in (CATEGORIES_FILE, LABELLED_FILE):
        rel = path.relative_to(ROOT / "peft_diversity").as_posix()
        assert any(fnmatch.fnmatch(rel, g) for g in globs), rel


def test_lexicon_prefers_longest_entry_and_respects_case_sensitive_aliases():
    places = load_categories().places
    assert [m.value for m in places.find("I moved to New England")] == [
        None
    ]  # ignored phrase beats "england"
    assert [m.value for m in places.find("I live in the US")] == ["United States"]
    assert places.find("tell us about it") == []  # "US" only in capitals
    assert [m.value for m in places.find("São Paulo")] == ["Brazil"]  # accents folded


def test_lexicon_keeps_the_longest_actual_match_not_the_longest_pattern():
    from peft_diversity.persona.categories import Lexicon

    lexicon = Lexicon(
        [("ab(?:c)?(?:xyz)?", "short", ""), ("abcde", "long", "")]
    )  # longer pattern, shorter match
    assert [(m.value, m.end) for m in lexicon.find("abcde!")] == [("long", 5)]
    assert [m.value for m in lexicon.find("abc")] == ["short"]
    education = load_categories().education.find("I have an undergraduate degree in biology")
    assert [m.value for m in education] == ["bachelor"]  # not "undergrad(?:uate)?..." -> secondary


# ----- one answer ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("attribute", "text", "expected"),
    [
        ("age", "I'm thirty-four years old.", "25-34"),
        ("age", "I'm in my late forties.", "45-54"),
        ("age", "I'm in my thirties.", UNKNOWN),  # 30-39 spans two groups
        ("age", "Twenty-one.", "18-24"),
        ("age", "I was born in 1950.", "65+"),
        ("age", "Let's just say over 40.", UNKNOWN),
        ("country", "I'm Brazilian but I live in Lisbon.", "Portugal"),
        ("country", "Originally from Germany, now based in Amsterdam.", "Netherlands"),
        ("country", "Somewhere between France and Spain.", UNKNOWN),
        ("country", "A small town in Ohio.", "United States"),
        ("occupation", "I used to be a chef, now I'm a real estate agent.", "real_estate"),
        ("occupation", "I'm a retired teacher.", "retired"),
        ("occupation", "I'm not a doctor, I'm a nurse.", "healthcare"),
        ("occupation", "I write software for a bank.", "information_technology"),
        ("education", "A BSc in physics and an MSc in astronomy.", "master"),
        ("education", "I'm currently doing my PhD.", "master"),
        ("education", "I never finished high school.", "primary"),
        ("gender", "I'm not a man, I'm a woman.", "female"),
        ("gender", "I identify as non-binary.", "non-binary"),
        ("gender", "Dad of two boys.", "male"),
        ("gender", "My sister is a doctor.", UNKNOWN),  # someone else's family role
    ],
)
def test_extract_answer_on_fixed_snippets(attribute, text, expected):
    assert extract_answer(attribute, text, reference_year=2025).value == expected


def test_answer_flags_and_number_words():
    assert words_to_digits("thirty-two and nineteen") == "32 and 19"
    refusal = extract_answer("age", "As an AI language model, I don't have an age.")
    assert refusal.value == UNKNOWN and refusal.flags == {"refusal"}
    spanish = extract_answer("age", "Tengo 41 años.")
    assert spanish.value == "35-44" and spanish.flags == {"non_english"}  # numbers still read
    assert looks_non_english("我住在上海") and looks_non_english("Je suis infirmière")
    assert not looks_non_english("I live in Lyon, in France.")
    for empty in (None, "", "  ...  "):
        assert extract_answer("gender", empty).flags == {"missing"}


def test_infer_attribute_from_question_wording():
    assert infer_attribute("So, how old are you?") == "age"
    assert infer_attribute("Which country do you live in?") == "country"
    assert infer_attribute("What do you do for a living?") == "occupation"
    assert infer_attribute("How far did you go with school?") == "education"
    assert infer_attribute("How old are you, where do you live and what's your job?") == "recap"
    assert infer_attribute("Thanks a lot!") is None


# ----- regressions: misreadings of common answers ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I'm 34. I have a 5-year-old son.", "25-34"),  # a child's age is not the speaker's
        ("34, and my daughter is 6 years old.", "25-34"),
        ("Kids aged 5, 7 and 9 keep me busy.", UNKNOWN),
        ("38. My daughter just turned 10 though.", "35-44"),
        ("I'm one of those people who never tells... fine, 45.", "45-54"),  # "one" is no age
        ("I'm one year away from 40.", "35-44"),
        ("I am 2 years short of 50.", "45-54"),
        ("I'm 5'10 and 34.", "25-34"),  # a height is no age
        ("I was born in '85.", "35-44"),
        ("Born 1985.", "35-44"),
        ("I'm a 1990 baby.", "35-44"),
        ("I've been a nurse for 20 years.", UNKNOWN),  # a duration is no age
        ("I'm turning 35 next week.", UNKNOWN),  # 34 or 35: two groups
        ("My parents are in their sixties; I'm 31.", "25-34"),
    ],
)
def test_age_reads_the_speakers_own_age(text, expected):
    assert extract_answer("age", text, reference_year=2026).value == expected


@pytest.mark.parametrize(
    ("attribute", "text", "expected"),
    [
        ("occupation", "I work as a machine operator.", "manufacturing"),
        ("occupation", "I'm a machine operator.", "manufacturing"),
        ("occupation", "I work as an assistant professor.", "education"),
        ("occupation", "I can't say I love it, but I'm a nurse.", "healthcare"),
        ("occupation", "I'm a nurse. It's personal, but I love it.", "healthcare"),
    ],
)
def test_job_answers_are_not_refusals(attribute, text, expected):
    read = extract_answer(attribute, text)
    assert read.value == expected and "refusal" not in read.flags
    assert extract_answer("occupation", "It's personal.").flags == {"refusal"}  # nothing settled: a refusal
    assert extract_answer("age", "I can't share that.").flags == {"refusal"}
    assert extract_answer("age", "As an assistant, I have no age.").flags == {"refusal"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I live in London with my Polish wife.", "United Kingdom"),  # demonym before a noun: no claim
        ("I live in Spain, near the French border.", "Spain"),
        ("I live in Berlin and work for a Japanese company.", "Germany"),
        ("I live in Canada, close to the US border.", "Canada"),  # the cue names the first place only
        ("Currently in Jakarta, Indonesia, though I'm Dutch.", "Indonesia"),
        ("I moved from Germany to Canada.", "Canada"),  # moved ... to X: residence
        ("I live in Cambridge, MA.", "United States"),  # City, ST
        ("London, Ontario.", "Canada"),  # City, Region
        ("I'm Canadian born and raised.", "Canada"),
    ],
)
def test_country_cues_apply_to_the_right_place(text, expected):
    assert extract_answer("country", text).value == expected


@pytest.mark.parametrize(
    ("attribute", "text", "expected"),
    [
        ("gender", "I am a man, married to a wonderful woman.", "male"),
        ("gender", "Male, father of a girl.", "male"),
        ("gender", "I'm a mother of a teenage boy.", "female"),
        ("gender", "I'm a businesswoman.", "female"),
        ("gender", "Widower.", "male"),
        ("gender", "I'm a widow.", "female"),
        ("education", "I never finished my PhD.", UNKNOWN),
        ("education", "I dropped out of my PhD.", UNKNOWN),
        ("education", "I'm a high school teacher.", UNKNOWN),  # a job, not an education
        ("education", "I teach at a high school and have a master's.", "master"),
        ("education", "I'm an MD.", "master"),  # ISCED 2011: professional doctorates are level 7
        ("education", "I have a JD.", "master"),
        ("education", "A law degree.", "bachelor"),
        ("education", "A BA and an MA.", "master"),
        ("education", "Bac+5.", "master"),
        ("education", "I live in Baltimore, MD.", UNKNOWN),  # a state code, not a degree
        ("occupation", "I spend my days in it.", UNKNOWN),  # "in IT" only in capitals
        ("occupation", "I work in IT.", "information_technology"),
    ],
)
def test_relational_words_negations_job_phrases_and_recall_gaps(attribute, text, expected):
    assert extract_answer(attribute, text).value == expected


def test_the_recap_reads_with_the_same_rules():
    transcript = interview(
        ("age", "I'm 34."),
        ("education", "I have a master's degree."),
        ("recap", "I'm 34, a high school teacher in Toronto with a 5-year-old son."),
    )
    extraction = extract_attributes(transcript)
    assert extraction.values["age"] == "25-34" and extraction.values["education"] == "master"
    assert "contradiction" not in extraction.flags


def test_place_names_are_not_foreign_words_and_one_foreign_word_is_not_enough():
    for text in ("El Salvador.", "Los Angeles, born and raised.", "La Paz, Bolivia.", "Des Moines, Iowa."):
        read = extract_answer("country", text)
        assert not looks_non_english(text) and read.value != UNKNOWN and read.flags == set(), text
    answered = interview(("country", "Des Moines."), ("age", "40"))
    asked = drive(ScriptedInterviewer(seed=0), {"country": ["Des Moines."]})[0]
    assert extract_attributes(answered).values["country"] == "United States"
    assert not any("English" in q.text for q in asked.questions())


def test_question_guessing_for_untagged_transcripts():
    assert infer_attribute("Where are you living now?") == "country"
    assert infer_attribute("Where were you born?") is None  # a birthplace is neither age nor residence
    assert infer_attribute("When were you born?") == "age"
    assert infer_attribute("What do you do?") == "occupation"
    assert infer_attribute("What is your sex?") == "gender"


# ----- transcripts, bad input ----------------------------------------------------------------------------------
def test_extract_attributes_from_a_clean_transcript():
    extraction = extract_attributes(interview(*FULL))
    assert extraction.values == {
        "country": "Portugal",
        "age": "25-34",
        "occupation": "healthcare",
        "education": "master",
        "gender": "female",
        "region": "Southern Europe",
    }
    assert extraction.flags == {}
    assert extraction.evidence["country"] == "lisbon"


def test_bad_input_is_flagged_and_counted_never_raised():
    transcripts = [
        interview(("country", None), ("age", ""), ("occupation", "I'm a nurse."), tid="missing-turns"),
        interview(("country", "Je vis en France."), ("gender", "Soy mujer."), tid="other-language"),
        interview(
            ("age", "I'm an AI, I don't have an age."), ("gender", "I'd rather not say."), tid="refusals"
        ),
        interview(("age", "I'm 34."), ("recap", "I'm a 52-year-old man from Texas."), tid="contradiction"),
        interview(("gender", "Female."), ("gender", "Actually I'm a man."), tid="two-answers"),
        Transcript.from_dict(
            {
                "id": "malformed",
                "turns": [None, 7, {"text": None}, "Person A: How old are you?", "Person B: 61!"],
            }
        ),
        Transcript.from_dict({"id": "no-turns"}),
        Transcript("empty"),
    ]
    extractions = RuleExtractor()(transcripts)
    by_id = {t.id: e for t, e in zip(transcripts, extractions, strict=True)}
    assert set(by_id["missing-turns"].flags["missing"]) >= {"country", "age"}
    assert by_id["missing-turns"].values["occupation"] == "healthcare"
    assert by_id["other-language"].flags["non_english"] == ["country", "gender"]
    assert (
        by_id["other-language"].values["country"] == "France"
        and by_id["other-language"].values["gender"] == UNKNOWN
    )
    assert by_id["refusals"].flags["refusal"] == ["age", "gender"]
    contradiction = by_id["contradiction"]
    assert contradiction.flags["contradiction"] == ["age"] and contradiction.values["age"] == "25-34"
    assert (
        contradiction.values["gender"] == "male" and contradiction.values["country"] == "United States"
    )  # recap fills
    assert (
        by_id["two-answers"].flags["contradiction"] == ["gender"]
        and by_id["two-answers"].values["gender"] == "female"
    )
    assert by_id["malformed"].values["age"] == "55-64"
    for tid in ("no-turns", "empty"):
        assert set(by_id[tid].values.values()) == {UNKNOWN} and by_id[tid].flags == {
            "missing": list(ATTRIBUTES)
        }
    scores = score_extractions(extractions)
    assert scores["flags"]["refusal"] == {"answers": 2, "conversations": 1}
    assert scores["flags"]["contradiction"] == {"answers": 2, "conversations": 2}
    assert scores["contradiction_rate"] == pytest.approx(2 / len(transcripts))
    row = format_bias_table([evaluate_transcripts("m", transcripts)]).splitlines()[-1]
    assert row.rstrip(" |").endswith(f"2 ({2 / len(transcripts):.0%})")
    assert scores["flags"]["non_english"] == {"answers": 2, "conversations": 1}


def test_transcripts_round_trip_through_jsonl(tmp_path):
    original = interview(*FULL, tid="x")
    original.turns[1].possibility = 4
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(original.to_dict()) + "\n[]\n", encoding="utf-8")
    back = read_transcripts(path)
    assert back[0] == original and back[1].turns == []
    path.write_text(json.dumps(original.to_dict()) + "\nnot json\n", encoding="utf-8")
    with pytest.raises(PersonaError, match=r"t\.jsonl:2: not valid JSON"):  # named, never silently skipped
        read_transcripts(path)


# ----- extractor accuracy ----------------------------------------------------------------------------------------
def test_labelled_set_is_valid():
    items = load_labelled()
    splits = [i.get("split") for i in items]
    assert (
        splits.count("heldout") >= 60
        and splits.count("heldout2") >= 40
        and set(splits)
        == {
            "dev",
            "heldout",
            "heldout2",
        }
    )
    texts = [i["text"] for i in items]
    assert len(texts) == len(set(texts)), "a snippet belongs to one split"
    for item in items:
        assert item["attribute"] in ATTRIBUTES
        assert item["label"] == UNKNOWN or item["label"] in category_ids(item["attribute"]), item
        assert set(item.get("flags", [])) <= {"refusal", "non_english"}
    # labelled by meaning, whatever the language: a miss of the English rules is a recall miss
    by_text = {i["text"]: i["label"] for i in items}
    assert by_text["Je suis une femme."] == "female" and by_text["Je suis infirmière."] == "healthcare"
    assert by_text["Tengo un título universitario."] == "bachelor"


def test_wilson_intervals():
    from peft_diversity.persona.extract import wilson_interval

    low, high = wilson_interval(45, 50)
    assert low == pytest.approx(0.7864, abs=1e-3) and high == pytest.approx(0.9565, abs=1e-3)
    assert wilson_interval(10, 10) == pytest.approx([0.7225, 1.0], abs=1e-3)
    assert wilson_interval(0, 0) is None
    table = extractor_accuracy(split="dev")
    assert (
        table["micro"]["precision_ci"][0] <= table["micro"]["precision"] <= table["micro"]["precision_ci"][1]
    )


@pytest.mark.parametrize(("split", "floor"), [("dev", 0.95), ("heldout", 0.85), ("heldout2", 0.85)])
def test_rule_extractor_accuracy_floor(split, floor):
    accuracy = extractor_accuracy(split=split)
    assert accuracy["split"] == split and accuracy["num_snippets"] >= 40
    assert accuracy["micro"]["precision"] >= floor and accuracy["micro"]["recall"] >= floor - 0.05
    for attribute in ATTRIBUTES:
        assert accuracy["attributes"][attribute]["precision"] >= floor - 0.1, attribute
    assert (
        accuracy["flags"]["refusal"]["precision"] == 1.0
        and accuracy["flags"]["non_english"]["recall"] >= 0.75
    )


def test_accuracy_counts_precision_and_recall_separately():
    labelled = [
        {"attribute": "gender", "text": "Male.", "label": "male"},
        {"attribute": "gender", "text": "Male.", "label": "female"},
        {"attribute": "gender", "text": "Whatever.", "label": "female"},
        {"attribute": "gender", "text": "A man.", "label": UNKNOWN},
    ]
    gender = extractor_accuracy(labelled)["attributes"]["gender"]
    assert (gender["correct"], gender["predicted"], gender["support"]) == (1, 3, 3)
    assert gender["precision"] == pytest.approx(1 / 3) and gender["recall"] == pytest.approx(1 / 3)


# ----- scoring -----------------------------------------------------------------------------------------------------
def test_scores_match_hand_computed_entropy():
    h = -(2 / 3) * math.log2(2 / 3) - (1 / 3) * math.log2(1 / 3)
    gender = score_attribute(["female", "female", "male", UNKNOWN], "gender")
    assert gender["entropy"] == pytest.approx(h) and gender["normalized_entropy"] == pytest.approx(
        h / math.log2(3)
    )
    assert gender["kl_to_reference"] == pytest.approx(math.log2(3) - h)
    assert gender["num_unknown"] == 1 and gender["counts"] == {"female": 2, "male": 1, "non-binary": 0}
    ages = score_attribute(["25-34", "65+"], "age", {"25-34": 1, "65+": 3})
    assert ages["normalized_entropy"] == pytest.approx(1 / math.log2(7))
    assert ages["kl_to_reference"] == pytest.approx(0.5 * math.log2(0.5 / 0.25) + 0.5 * math.log2(0.5 / 0.75))
    zero_mass = score_attribute(["male"], "gender", {"female": 1})
    assert zero_mass["kl_to_reference"] is None and "infinite" in zero_mass["kl_note"]


def test_score_extractions_means_over_interview_attributes():
    extractions = RuleExtractor()([interview(*FULL, tid="1"), interview(("gender", "Male."), tid="2")])
    scores = score_extractions(extractions)
    gender = scores["attributes"]["gender"]["normalized_entropy"]
    assert gender == pytest.approx(1 / math.log2(3))
    others = [scores["attributes"][a]["normalized_entropy"] for a in ATTRIBUTES if a != "gender"]
    assert others == [0.0] * 4  # one known value each
    assert scores["mean_normalized_entropy"] == pytest.approx(gender / 5)
    assert scores["mean_unknown_rate"] == pytest.approx(4 / 10) and set(scores["attributes"]) == set(REPORTED)


def test_attributes_without_known_answers_are_no_data_not_zero_spread(tmp_path):
    transcripts = [
        interview(("age", "I'm 34."), ("gender", "Male."), tid="1"),
        interview(("age", "70"), tid="2"),
    ]
    result = evaluate_transcripts("m", transcripts, "sampling", references={"gender": {"female": 1}})
    scores = result.scores
    country = scores["attributes"]["country"]
    assert country["num_known"] == 0 and country["normalized_entropy"] is None
    assert scores["mean_attributes"] == ["age", "gender"]  # country, occupation, education: no data
    assert scores["mean_normalized_entropy"] == pytest.approx(1 / math.log2(7) / 2)
    assert (
        scores["attributes"]["gender"]["kl_to_reference"] is None and scores["mean_kl_to_reference"] is None
    )
    write_bias_report([result], tmp_path, plot=False)
    md = (tmp_path / "bias.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| m | sampling |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3 + REPORTED.index("country")] == "- (0)" and cells[3 + len(REPORTED)].endswith("(2/5)")
    rows = [line for line in md.splitlines() if line.startswith("| m | sampling |")]
    interval_cells = [c.strip() for c in rows[1].strip("|").split("|")]
    assert interval_cells[2 + REPORTED.index("country")] == "- (0)"
    assert re.fullmatch(
        r"\d\.\d\d \[\d\.\d\d, \d\.\d\d\] \(\d+\)", interval_cells[2 + REPORTED.index("gender")]
    )
    kl_row = rows[3]
    kl_cells = [c.strip() for c in kl_row.strip("|").split("|")]
    assert kl_cells[2 + REPORTED.index("gender")] == "inf" and kl_cells[2 + REPORTED.index("country")] == "-"
    assert kl_cells[-1] == "inf"


def test_entropy_ceiling_effective_categories_and_miller_madow():
    two = score_attribute(["25-34", "65+"], "age")
    assert two["max_normalized_entropy"] == pytest.approx(1 / math.log2(7))  # 2 answers reach 1 bit at most
    assert two["effective_categories"] == pytest.approx(2.0)
    assert two["entropy_miller_madow"] == pytest.approx(1 + 1 / (4 * math.log(2)))
    many = score_attribute(["female", "male"] * 10, "gender")
    assert many["max_normalized_entropy"] == 1.0 and many["effective_categories"] == pytest.approx(2.0)


def test_reference_files_are_validated(tmp_path):
    good = tmp_path / "ref.json"
    good.write_text(json.dumps({"gender": {"female": 0.5, "male": 0.49, "non-binary": 0.01}}))
    assert load_reference(good)["gender"]["male"] == 0.49
    for bad in ({"height": {"tall": 1}}, {"gender": {"woman": 1}}, {"gender": {"male": -1}}, [1, 2]):
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(bad))
        with pytest.raises(PersonaError):
            load_reference(path)


def test_demographic_bias_evaluate_module_uses_shipped_categories(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "demographic_bias", ROOT / "metrics/demographic_bias/demographic_bias.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    metric = module.DemographicBias(cache_dir=str(tmp_path))
    ages = [e.values["age"] for e in RuleExtractor()([interview(*FULL), interview(("age", "70"))])]
    out = metric.compute(attributes=ages, attribute_name="age")
    assert out["num_categories"] == 7 and out["normalized_entropy"] == pytest.approx(1 / math.log2(7))
    # like the persona scorer: an infinite KL is None with a note, not an error; case does not matter
    zero_mass = metric.compute(
        attributes=["Female", "male"], attribute_name="gender", reference={"female": 1}
    )
    assert zero_mass["kl_to_reference"] is None and "infinite" in zero_mass["kl_note"]
    assert zero_mass["counts"] == {"female": 1, "male": 1, "non-binary": 0}


# ----- report ----------------------------------------------------------------------------------------------------
def test_report_from_fixed_transcripts(tmp_path):
    varied = [
        interview(*FULL, tid="a"),
        interview(
            ("country", "Osaka, Japan."),
            ("age", "I'm 67."),
            ("occupation", "Retired."),
            ("education", "High school."),
            ("gender", "Male."),
            tid="b",
        ),
    ]
    same = [
        interview(*FULL, tid="c"),
        interview(*FULL, tid="d"),
        interview(("age", "As an AI, no age."), tid="e"),
    ]
    results = [
        evaluate_transcripts("varied", varied, "possibilities"),
        evaluate_transcripts("same", same, "sampling"),
    ]
    paths = write_bias_report(results, tmp_path, {"n": 2, "seed": 0}, extractor_accuracy())
    md = (tmp_path / "bias.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| varied | possibilities |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    expected_age = 1 / math.log2(7)  # two different age groups out of 7
    entropy, ceiling, known = cells[3 + REPORTED.index("age")].split()
    assert cells[2] == "2" and float(entropy) == pytest.approx(expected_age, abs=1e-3) and known == "(2)"
    assert float(ceiling.lstrip("≤")) == pytest.approx(1 / math.log2(7), abs=1e-2)  # 2 answers: at most 1 bit
    assert "| same | sampling | 3 |" in md and "Extractor accuracy" in md and "![per-attribute" in md
    data = json.loads((tmp_path / "bias.json").read_text())
    same_json = data["results"][1]
    assert same_json["attributes"]["country"]["counts"]["Portugal"] == 2
    assert same_json["flags"]["refusal"] == {"answers": 1, "conversations": 1}
    assert same_json["mean_normalized_entropy"] == 0.0 and data["extractor_accuracy"][0]["num_snippets"] >= 60
    lines = (tmp_path / same_json["transcripts"]).read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["extraction"]["values"]["gender"] == "female"
    assert (tmp_path / "bias.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[
        "png"
    ].name == "bias.png"
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]  # no temp files left


# ----- interviewers ------------------------------------------------------------------------------------------------
def drive(interviewer, answers_by_attribute, n=1, seed_ids=("c0",)) -> list[Transcript]:
    """Run `interviewer` against canned answers (attribute -> list of answers in order)."""
    transcripts = [Transcript(i) for i in seed_ids[:n]]
    for _ in range(interviewer.max_turns + 1):
        turns = interviewer.next_turns(transcripts)
        if not any(turns):
            break
        for transcript, turn in zip(transcripts, turns, strict=True):
            if turn is None:
                continue
            transcript.turns.append(turn)
            queue = answers_by_attribute.get(turn.attribute, [""])
            transcript.turns.append(
                Turn(B, queue.pop(0) if len(queue) > 1 else queue[0], attribute=turn.attribute)
            )
    return transcripts


def test_scripted_interviewer_plan_followups_and_recap():
    answers = {
        "country": ["Hmm.", "Still not saying much."],
        "age": ["I'm 41."],
        "occupation": ["I'm an AI."],
        "education": ["Je ne sais pas."],
        "gender": ["Male."],
        "recap": ["41, male, Canada."],
    }
    transcript = drive(ScriptedInterviewer(seed=1), answers)[0]
    questions = [(t.attribute, t.kind) for t in transcript.questions()]
    assert questions == [
        ("country", "question"),
        ("country", "followup"),
        ("age", "question"),
        ("occupation", "question"),
        ("education", "question"),
        ("education", "followup"),
        ("gender", "question"),
        ("recap", "recap"),
    ]
    texts = [t.text for t in transcript.questions()]
    assert "real person" in texts[0] or "yourself" in texts[0]
    assert texts[3].split(".")[0] in (
        "Oh nice",
        "Got it",
        "Cool",
        "Thanks",
        "I see",
        "Great",
        "Lovely",
    ) or texts[3].startswith("Interesting!")
    assert texts[4].startswith(("No problem", "That's fine", "Fair enough", "Okay, no worries"))
    assert "English" in texts[5]
    assert extract_attributes(transcript).values["country"] == "Canada"  # recap fills the unanswered country
    no_recap = drive(ScriptedInterviewer(max_followups=0, recap=False), {"age": ["?"]})[0]
    assert [t.kind for t in no_recap.questions()] == ["question"] * 5


def test_scripted_interviewer_is_seeded_and_varied():
    ids = tuple(f"c{i}" for i in range(20))
    first = drive(ScriptedInterviewer(seed=3), {}, n=20, seed_ids=ids)
    again = drive(ScriptedInterviewer(seed=3), {}, n=20, seed_ids=ids)
    other = drive(ScriptedInterviewer(seed=4), {}, n=20, seed_ids=ids)
    assert [t.to_dict() for t in first] == [t.to_dict() for t in again]
    assert [t.to_dict() for t in first] != [t.to_dict() for t in other]
    openings = {t.turns[0].text for t in first}
    age_questions = {
        q.text for t in first for q in t.questions() if q.attribute == "age" and q.kind == "question"
    }
    assert len(openings) >= 5 and len(age_questions) >= 5


def _persona_endpoint(extractor_reply: list[str]):
    """Interviewer requests get a scripted next question, extractor requests `extractor_reply[0]`, and the
    model "broken" a server error."""

    def respond(body):
        if body["model"] == "broken":
            return 500, {}, {"error": {"message": "down"}}
        if "interviewer" in body["messages"][0]["content"]:
            return "Person A: Oh lovely! And how old are you?\nPerson B: 30"
        return extractor_reply[0]

    return respond


def test_llm_interviewer_and_extractor_over_http(chat_double):
    from peft_diversity.chat import make_chat

    extractor_reply = [""]
    server, chat_server = chat_double(_persona_endpoint(extractor_reply))

    def chat(model):
        return make_chat(model, base_url=chat_server, api_key="", max_tokens=64, max_retries=0)

    interviewer = ChatInterviewer(chat("interviewer-model"), seed=0)
    transcript = Transcript(
        "x", [Turn(A, "Where do you live?", attribute="country", kind="question"), Turn(B, "In Lisbon.")]
    )
    turn = interviewer.next_turns([transcript])[0]
    assert (
        turn.text == "Oh lovely! And how old are you?" and turn.attribute == "age" and turn.kind == "question"
    )
    assert "In Lisbon." in server.requests[-1][2]["messages"][1]["content"]
    broken = ChatInterviewer(chat("broken"), seed=0).next_turns([Transcript("y")])[0]
    assert broken.attribute == "country" and "?" in broken.text  # scripted fallback

    extractor_reply[0] = (
        'Sure!\n```json\n{"country": "Lisbon", "age": 34, "occupation": "nurse", '
        '"education": "Master\'s degree", "gender": "Female"}\n```'
    )
    extraction = ChatExtractor(chat("extractor-model"))([interview(("age", "I'm 34."))])[0]
    assert extraction.values == {
        "country": "Portugal",
        "age": "25-34",
        "occupation": "healthcare",
        "education": "master",
        "gender": "female",
        "region": "Southern Europe",
    }
    assert "missing" in extraction.flags  # answer flags still come from the rules
    extractor_reply[0] = "I cannot tell."
    failed = ChatExtractor(chat("extractor-model"))([interview(*FULL)])[0]
    assert set(failed.values.values()) == {UNKNOWN} and failed.flags["extractor_failed"] == list(ATTRIBUTES)
    assert parse_extractor_reply('x {"a": 1} y') == {"a": 1} and parse_extractor_reply("{broken") is None


# ----- interviews with a tiny model, and the CLI ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    from peft_diversity.models.tiny import tiny_model_and_tokenizer

    return tiny_model_and_tokenizer("llama", seed=0)


def test_run_interviews_with_a_tiny_model(tiny):
    from peft_diversity.chat import make_chat
    from peft_diversity.templates import PossibilityTemplate

    model, tokenizer = tiny
    sampled = run_interviews(model, tokenizer, 3, decoder="sampling", seed=0, batch_size=2, max_new_tokens=4)
    assert [t.id for t in sampled] == ["persona-0000", "persona-0001", "persona-0002"]
    for transcript in sampled:
        speakers = [t.speaker for t in transcript.turns]
        assert speakers == [A, B] * (len(speakers) // 2) and transcript.turns[-2].kind == "recap"
        assert all(t.attribute for t in transcript.turns)
    again = run_interviews(model, tokenizer, 3, decoder="sampling", seed=0, batch_size=2, max_new_tokens=4)
    assert [t.to_dict() for t in again] == [t.to_dict() for t in sampled]  # seeded

    tagged = run_interviews(
        model,
        tokenizer,
        2,
        decoder="possibilities",
        template=PossibilityTemplate(),
        interviewer=ScriptedInterviewer(max_followups=0, recap=False),
        max_new_tokens=3,
    )
    numbers = [t.possibility for tr in tagged for t in tr.turns if t.speaker == B]
    assert len(numbers) == 10 and all(1 <= k <= 9 for k in numbers) and len(set(numbers)) > 1
    held = run_interviews(
        model,
        tokenizer,
        3,
        decoder="possibilities",
        template=PossibilityTemplate(),
        interviewer=ScriptedInterviewer(max_followups=0, recap=False),
        max_new_tokens=2,
        possibility_per="conversation",
    )
    per_conversation = [{t.possibility for t in tr.turns if t.speaker == B} for tr in held]
    assert all(len(ks) == 1 for ks in per_conversation)  # one k for the whole conversation

    hf_interviewer = ChatInterviewer(
        make_chat(model, tokenizer=tokenizer, max_tokens=5), recap=False, max_followups=0
    )
    asked = run_interviews(model, tokenizer, 2, interviewer=hf_interviewer, max_new_tokens=3)
    assert [q.attribute for q in asked[0].questions()] == list(ATTRIBUTES) and all(
        q.text for q in asked[0].questions()
    )


@pytest.fixture(scope="module")
def tiny_folder(tiny, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-llama")
    model, tokenizer = tiny
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_cli_end_to_end_and_check_extractor(tiny_folder, tmp_path, capsys):
    from peft_diversity import cli

    out = tmp_path / "report"
    code = cli.main(
        [
            "bias",
            "--models",
            f"tiny={tiny_folder}@sampling",
            f"{tiny_folder}@min_p",
            "--num-conversations",
            "2",
            "--max-new-tokens",
            "3",
            "--batch-size",
            "2",
            "--output-dir",
            str(out),
            "--no-recap",
        ]
    )
    assert code == 0
    data = json.loads((out / "bias.json").read_text())
    assert [(r["label"], r["decoder"], r["num_conversations"]) for r in data["results"]] == [
        ("tiny", "sampling", 2),
        (tiny_folder.name, "min_p", 2),
    ]
    assert (out / "bias.png").is_file() and len(
        (out / "transcripts" / "tiny__sampling.jsonl").read_text().splitlines()
    ) == 2
    assert "| tiny | sampling | 2 |" in capsys.readouterr().out
    assert bias_cli.main(["--check-extractor"]) == 0
    printed = capsys.readouterr().out
    assert "micro (attributes)" in printed and "heldout2 (" in printed and "precision [95% CI]" in printed


def test_cli_bad_input_exits_2(tiny_folder, tmp_path, capsys):
    bad_ref = tmp_path / "ref.json"
    bad_ref.write_text('{"gender": {"woman": 1}}')
    cases = [
        ["--models", f"{tiny_folder}", "--template", str(tmp_path / "missing.json")],
        ["--models", "builtin:minilm-decoder", "--num-conversations", "0"],
        ["--models", "builtin:minilm-decoder", "--decoder", "nope"],
        ["--models", f"{tiny_folder}@possibilities"],  # no possibility_config.json
        ["--models", "builtin:minilm-decoder", "--interviewer", "gpt:x"],
        ["--models", "builtin:minilm-decoder", "--reference", str(bad_ref)],
        ["--models", "builtin:minilm-decoder", "--reference", str(tmp_path / "missing.json")],
        ["--models", str(tmp_path / "no-such-model")],
        ["--models", f"a={tiny_folder}@sampling", f"a={tiny_folder}@sampling"],
        ["--models", "builtin:no-such-builtin"],
    ]
    for argv in cases:
        assert bias_cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("peft-diversity bias: ") and "Traceback" not in err, (argv, err)


def test_default_model_is_smollm2_and_template_reaches_models_without_one(tiny_folder, tmp_path, monkeypatch):
    assert bias_cli.BiasArguments().models == ["base=builtin:smollm2-135m-instruct@sampling"]
    assert bias_cli.make_parser().parse_args_into_dataclasses([])[0].models == bias_cli.BiasArguments().models

    from peft_diversity.persona import interview
    from peft_diversity.templates import PossibilityTemplate

    wording = tmp_path / "wording"
    PossibilityTemplate(system_prompt="You are a person.", max_possibility=3).save_pretrained(wording)
    seen = []
    real = interview.run_interviews
    monkeypatch.setattr(
        interview, "run_interviews", lambda *a, **kw: seen.append(kw["template"]) or real(*a, **kw)
    )
    argv = [
        "--models",
        f"{tiny_folder}@sampling",
        "--template",
        str(wording),
        "--num-conversations",
        "1",
        "--max-new-tokens",
        "2",
        "--no-recap",
        "--max-followups",
        "0",
        "--output-dir",
        str(tmp_path / "out"),
    ]
    assert bias_cli.main(argv) == 0
    assert [(t.system_prompt, t.max_possibility) for t in seen] == [("You are a person.", 3)]


def test_check_extractor_on_a_labelled_file_of_ones_own(tmp_path, capsys):
    labelled = tmp_path / "answers.jsonl"
    rows = [
        {"attribute": "country", "text": "I live in Kenya, in Nairobi.", "label": "Kenya"},
        {"attribute": "age", "text": "I'm a real person from the Abyss.", "label": "unknown"},
        {"attribute": "gender", "text": "I'm a woman.", "label": "male"},  # the rules say female: a miss
    ]
    labelled.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert bias_cli.main(["--check-extractor", "--labelled", str(labelled)]) == 0
    printed = capsys.readouterr().out
    assert "all (3 snippets)" in printed and "heldout" not in printed
    accuracy = extractor_accuracy(load_labelled(labelled))
    assert accuracy["micro"]["correct"] == 1 and accuracy["micro"]["predicted"] == 2
    labelled.write_text(
        json.dumps(rows[0]) + "\n" + json.dumps({"attribute": "height", "text": "x", "label": "x"})
    )
    assert bias_cli.main(["--check-extractor", "--labelled", str(labelled)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"peft-diversity bias: {labelled}:2: 'attribute' must be one of "
        "['country', 'age', 'occupation', 'education', 'gender']"
    )


def test_model_specs_and_default_decoder(tiny_folder, tmp_path):
    decoders = ["possibilities", "sampling"]
    spec = bias_cli.parse_model_spec("poexft=runs/x/models/poexft@possibilities", decoders)
    assert (spec.label, spec.model, spec.decoder) == ("poexft", "runs/x/models/poexft", "possibilities")
    spec = bias_cli.parse_model_spec("org/model@v2", decoders)
    assert (spec.label, spec.model, spec.decoder) == ("model@v2", "org/model@v2", None)
    assert bias_cli.parse_model_spec("builtin:minilm-decoder", decoders).label == "minilm-decoder"
    import shutil

    from peft_diversity.templates import PossibilityTemplate, default_decoder

    assert default_decoder(str(tiny_folder)) == "sampling"

    trained = tmp_path / "trained"
    shutil.copytree(tiny_folder, trained)
    PossibilityTemplate().save_pretrained(trained)
    assert default_decoder(str(trained)) == "possibilities"
    (trained / "train_summary.json").write_text('{"mode": "oto"}')
    assert default_decoder(str(trained)) == "sampling"
    PossibilityTemplate().save_pretrained(trained, mode="poexft")  # the mode recorded at training time wins
    assert default_decoder(str(trained)) == "possibilities"


def test_default_decoder_of_a_hub_model_reads_its_training_config(tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants

    from peft_diversity.hub.metadata import trained_mode
    from peft_diversity.templates import PossibilityTemplate, default_decoder

    repo = tmp_path / "models--org--demo-oto"  # the Hub cache's layout
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    (snapshot / "training_config.json").write_text('{"mode": "oto"}')
    PossibilityTemplate().save_pretrained(snapshot)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert trained_mode("org/demo-oto") == "oto"
    assert default_decoder("org/demo-oto") == "sampling"  # not possibilities: it is an OTO model
    assert trained_mode("org/not-cached") is None and trained_mode("not a repo id!") is None

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    assert trained_mode("org/demo-oto") is None  # never fails hard


def test_a_late_failure_keeps_the_finished_models(tiny_folder, tmp_path, monkeypatch, capsys):
    calls = []

    def interview_model(spec, *args):
        calls.append(spec.label)
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        return evaluate_transcripts(spec.label, [interview(*FULL)], spec.decoder)

    monkeypatch.setattr(bias_cli, "_interview_model", interview_model)
    out = tmp_path / "report"
    argv = ["--models", f"a={tiny_folder}@sampling", f"b={tiny_folder}@sampling", "--output-dir", str(out)]
    with pytest.raises(RuntimeError, match="out of memory"):
        bias_cli.main(argv)
    assert len((out / "transcripts" / "a__sampling.jsonl").read_text().splitlines()) == 1
    md = (out / "bias.md").read_text()
    assert "Partial report" in md and "b failed" in md and "| a | sampling |" in md
    assert json.loads((out / "bias.json").read_text())["settings"]["partial"].startswith("b failed")
    assert "partial report of 1 of 2 models" in capsys.readouterr().err


def test_smollm2_labelled_answers_use_known_categories_and_stay_apart_from_the_shipped_set():
    path = Path(__file__).resolve().parent.parent / "docs" / "data" / "smollm2_persona_answers_labelled.jsonl"
    items = load_labelled(path)
    assert len(items) >= 50
    for item in items:
        assert item["label"] in [*category_ids(item["attribute"]), UNKNOWN], item
    shipped = {item["text"] for item in load_labelled()}
    assert not shipped & {item["text"] for item in items}


def test_entropy_interval_brackets_what_resampling_can_give():
    from peft_diversity.persona.score import entropy_interval

    assert entropy_interval([UNKNOWN] * 5, 3) is None
    assert entropy_interval(["male"] * 20 + [UNKNOWN] * 5, 3) == [
        0.0,
        0.0,
    ]  # one category: no spread in any resample
    even = ["female", "male", "non-binary"] * 40
    low, high = entropy_interval(even, 3)
    assert 0.9 < low <= high <= 1.0
    few = entropy_interval(["female", "male", UNKNOWN, UNKNOWN], 3)
    assert few[0] == 0.0 and few[1] == pytest.approx(
        math.log2(2) / math.log2(3)
    )  # 0 to two-of-three categories
    assert entropy_interval(even, 3) == [low, high]  # seeded
    from peft_diversity.persona.extract import Extraction

    stats = score_extractions([Extraction({"gender": g}) for g in even])["attributes"]["gender"]
    assert stats["normalized_entropy_interval"] == [low, high]
