"""Persona demographic-bias test: categories, extraction (incl. bad input), accuracy floor, scoring, report,
interviewers (scripted, LLM over a local HTTP double), interviews with a tiny model, and the CLI."""

from __future__ import annotations

import configparser
import fnmatch
import http.server
import importlib.util
import json
import math
import re
import threading
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
    assert scores["flags"]["non_english"] == {"answers": 2, "conversations": 1}


def test_transcripts_round_trip_through_jsonl(tmp_path):
    original = interview(*FULL, tid="x")
    original.turns[1].possibility = 4
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(original.to_dict()) + "\nnot json\n[]\n", encoding="utf-8")
    back = read_transcripts(path)
    assert back[0] == original and back[1].turns == []


# ----- extractor accuracy ----------------------------------------------------------------------------------------
def test_labelled_set_is_valid():
    items = load_labelled()
    assert len(items) >= 60 and len([i for i in items if i.get("split") == "heldout"]) >= 60
    for item in items:
        assert item["attribute"] in ATTRIBUTES
        assert item["label"] == UNKNOWN or item["label"] in category_ids(item["attribute"]), item
        assert set(item.get("flags", [])) <= {"refusal", "non_english"}


@pytest.mark.parametrize(("split", "floor"), [("dev", 0.95), ("heldout", 0.85)])
def test_rule_extractor_accuracy_floor(split, floor):
    accuracy = extractor_accuracy(split=split)
    assert accuracy["split"] == split and accuracy["num_snippets"] >= 60
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
    entropy, known = cells[3 + REPORTED.index("age")].split()
    assert cells[2] == "2" and float(entropy) == pytest.approx(expected_age, abs=1e-3) and known == "(2)"
    assert "| same | sampling | 3 |" in md and "Extractor accuracy" in md and "![per-attribute" in md
    data = json.loads((tmp_path / "bias.json").read_text())
    same_json = data["results"][1]
    assert same_json["attributes"]["country"]["counts"]["Portugal"] == 2
    assert same_json["flags"]["refusal"] == {"answers": 1, "conversations": 1}
    assert same_json["mean_normalized_entropy"] == 0.0 and data["extractor_accuracy"]["num_snippets"] >= 60
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


class _ChatDouble(http.server.BaseHTTPRequestHandler):
    """OpenAI-compatible endpoint: interviewer prompts get a question, extractor prompts a JSON answer."""

    requests: list = []
    extractor_reply = ""

    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        if body["model"] == "broken":
            self.send_response(500)
            self.end_headers()
            return
        system = body["messages"][0]["content"]
        content = (
            "Person A: Oh lovely! And how old are you?\nPerson B: 30"
            if "interviewer" in system
            else type(self).extractor_reply
        )
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def chat_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ChatDouble)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _ChatDouble.requests = []
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_llm_interviewer_and_extractor_over_http(chat_server):
    from peft_diversity.scoring import make_openai_judge

    def chat(model):
        return make_openai_judge(
            model, chat_server, api_key="", max_tokens=64, use_openai_package=False, max_retries=0
        )

    interviewer = ChatInterviewer(chat("interviewer-model"), seed=0)
    transcript = Transcript(
        "x", [Turn(A, "Where do you live?", attribute="country", kind="question"), Turn(B, "In Lisbon.")]
    )
    turn = interviewer.next_turns([transcript])[0]
    assert (
        turn.text == "Oh lovely! And how old are you?" and turn.attribute == "age" and turn.kind == "question"
    )
    assert "In Lisbon." in _ChatDouble.requests[-1]["messages"][1]["content"]
    broken = ChatInterviewer(chat("broken"), seed=0).next_turns([Transcript("y")])[0]
    assert broken.attribute == "country" and "?" in broken.text  # scripted fallback

    _ChatDouble.extractor_reply = (
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
    _ChatDouble.extractor_reply = "I cannot tell."
    failed = ChatExtractor(chat("extractor-model"))([interview(*FULL)])[0]
    assert set(failed.values.values()) == {UNKNOWN} and failed.flags["extractor_failed"] == list(ATTRIBUTES)
    assert parse_extractor_reply('x {"a": 1} y') == {"a": 1} and parse_extractor_reply("{broken") is None


# ----- interviews with a tiny model, and the CLI ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    from peft_diversity.models import tiny_model_and_tokenizer

    return tiny_model_and_tokenizer("llama", seed=0)


def test_run_interviews_with_a_tiny_model(tiny):
    from peft_diversity.scoring import make_hf_judge
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

    hf_interviewer = ChatInterviewer(
        make_hf_judge(model, tokenizer, max_new_tokens=5), recap=False, max_followups=0
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
            "-n",
            "2",
            "--max-new-tokens",
            "3",
            "--batch-size",
            "2",
            "--out",
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
    assert "micro (attributes)" in capsys.readouterr().out


def test_cli_bad_input_exits_2(tiny_folder, tmp_path, capsys):
    bad_ref = tmp_path / "ref.json"
    bad_ref.write_text('{"gender": {"woman": 1}}')
    cases = [
        [],  # no models
        ["--models", "builtin:minilm-decoder", "-n", "0"],
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


def test_model_specs_and_default_decoder(tiny_folder, tmp_path):
    decoders = ["possibilities", "sampling"]
    spec = bias_cli.parse_model_spec("poexft=runs/x/models/poexft@possibilities", decoders)
    assert (spec.label, spec.model, spec.decoder) == ("poexft", "runs/x/models/poexft", "possibilities")
    spec = bias_cli.parse_model_spec("org/model@v2", decoders)
    assert (spec.label, spec.model, spec.decoder) == ("model@v2", "org/model@v2", None)
    assert bias_cli.parse_model_spec("builtin:minilm-decoder", decoders).label == "minilm-decoder"
    assert bias_cli.default_decoder(str(tiny_folder)) == "sampling"
    import shutil

    from peft_diversity.templates import PossibilityTemplate

    trained = tmp_path / "trained"
    shutil.copytree(tiny_folder, trained)
    PossibilityTemplate().save_pretrained(trained)
    assert bias_cli.default_decoder(str(trained)) == "possibilities"
    (trained / "train_summary.json").write_text('{"mode": "oto"}')
    assert bias_cli.default_decoder(str(trained)) == "sampling"
