"""`build-data`: input reading, teachers (local tiny model, OpenAI-compatible double on 127.0.0.1), cleaning and
de-duplication, retry policy, kill-and-resume, quality report."""

from __future__ import annotations

import codecs
import email.utils
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter, defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from peft_diversity import cli
from peft_diversity.builder import cli as builder_cli
from peft_diversity.builder import filter as builder_filter
from peft_diversity.builder import inputs as builder_inputs
from peft_diversity.builder.build import BuildSettings, build_config, build_dataset
from peft_diversity.builder.folder import BuildFolder, repair_jsonl
from peft_diversity.builder.inputs import display_name, read_inputs
from peft_diversity.builder.report import quality_report
from peft_diversity.builder.teachers import (
    LocalTeacher,
    OpenAITeacher,
    Sampling,
    TeacherFailure,
    listing_messages,
    prompt_version,
)
from peft_diversity.chat import (
    ChatAuthError,
    ChatModelNotFoundError,
    ChatQuotaError,
    ChatRequestError,
    ChatRetriesExhausted,
    HttpChat,
    RateLimiter,
    RetryPolicy,
    _retry_after,
    make_chat,
)
from peft_diversity.data import load_one_to_many
from peft_diversity.errors import BuildError
from peft_diversity.templates import PossibilityTemplate

ROOT = Path(__file__).resolve().parents[1]
STORY = PossibilityTemplate(task="story")


def bag_of_words(texts):
    """Deterministic stand-in for SBERT: hashed word counts (cosine = word overlap)."""
    out = np.zeros((len(texts), 512))
    for i, text in enumerate(texts):
        for word in text.lower().replace(".", " ").split():
            out[i, zlib.crc32(word.encode()) % 512] += 1
    return out


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ----- a scripted teacher ---------------------------------------------------------------------------------------
class ScriptedTeacher:
    """Replies from a script {id: [reply of attempt 0, reply of attempt 1, ...]}; records every call."""

    name = "scripted"

    def __init__(self, script):
        self.script, self.calls = script, []

    def __call__(self, records, n, attempt):
        self.calls.append(([r["id"] for r in records], n, attempt))
        replies = []
        for record in records:
            answers = self.script[record["id"]]
            reply = answers[min(attempt, len(answers) - 1)]
            replies.append(TeacherFailure(reply.message) if isinstance(reply, TeacherFailure) else reply)
        return replies


# ----- input reading ----------------------------------------------------------------------------------------------
def test_read_inputs_reports_bad_rows_per_record(tmp_path):
    path = tmp_path / "prompts.jsonl"
    rows = [
        {"id": "a", "prompt": "A dragon opens a bakery."},
        {"id": "b", "prompt": "   "},
        {"id": "c", "prompt": "a DRAGON opens   a bakery."},
        {"id": "d", "text": "no prompt column here"},
        {"id": "a", "prompt": "Another prompt with a reused id."},
        {"id": "e", "context": [{"speaker": "Maya", "text": "Hi!"}, {"speaker": "Tom", "text": "Hello."}]},
        {"id": "f", "context": [{"text": "no speaker"}]},
    ]
    data = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    data += b'{"id": "g", "prompt": "caf\xe9 au lait"}\n' + b"{not json\n\n" + b'"a bare string prompt"\n'
    path.write_bytes(data)
    items = read_inputs(path, column=None)
    problems = {item.key: item.problem for item in items}
    assert problems == {
        "a": None,
        "b": "empty_prompt",
        "c": "duplicate_prompt",
        "d": None,
        "a@prompts.jsonl:5": "duplicate_id",
        "e": None,
        "f": "invalid_context",
        "line-8": "invalid_utf8",
        "line-9": "invalid_json",
        "line-11": None,
    }
    by_key = {item.key: item for item in items}
    assert by_key["d"].source == "no prompt column here"  # 'text' is one of the guessed columns
    assert by_key["e"].source[0]["speaker"] == "Maya"
    assert by_key["line-8"].where == "prompts.jsonl:8" and "UTF-8" in by_key["line-8"].detail
    assert "'a'" in by_key["c"].detail
    only_prompt = {item.key: item.problem for item in read_inputs(path, column="prompt")}
    assert only_prompt["d"] == "missing_column" and only_prompt["e"] == "missing_column"


def test_read_inputs_csv_parquet_and_dataset_folder(tmp_path, monkeypatch):
    csv_path = tmp_path / "prompts.csv"
    csv_path.write_bytes(
        b"key,question\n"
        b"q1,What is a good name for a cat?\n"
        b'q2,"A question\nspanning two lines"\n'
        b"q3,caf\xe9?\n"
        b"q4,\n"
        b"q5,What is a good name for a dog?\n"
    )
    items = read_inputs(csv_path, column="question", id_column="key")
    summary = [(i.key, i.where, i.problem) for i in items]
    assert summary == [
        ("q1", "prompts.csv:2", None),
        ("q2", "prompts.csv:3", None),
        ("line-5", "prompts.csv:5", "invalid_utf8"),
        ("q4", "prompts.csv:6", "empty_prompt"),
        ("q5", "prompts.csv:7", None),
    ]
    assert items[1].source == "A question\nspanning two lines"
    table = pa.table(
        {"turns": [[{"speaker": "A", "text": "Hi"}], [{"speaker": "B", "text": "Yo"}]], "title": ["x", "y"]}
    )
    pq.write_table(table, tmp_path / "ctx.parquet")
    items = read_inputs(tmp_path / "ctx.parquet", column="turns")
    assert [(i.key, i.problem, i.source[0]["text"]) for i in items] == [
        ("row-0", None, "Hi"),
        ("row-1", None, "Yo"),
    ]
    hub_like = tmp_path / "hub_like"  # a dataset folder goes through datasets.load_dataset, as a Hub id does
    hub_like.mkdir()
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets_cache")
    pq.write_table(pa.table({"id": ["h1", "h2"], "prompt": ["first", "second"]}), hub_like / "train.parquet")
    items = read_inputs(hub_like, split="train")
    assert [(i.key, i.where, i.source) for i in items] == [
        ("h1", "hub_like[train] row 0", "first"),
        ("h2", "hub_like[train] row 1", "second"),
    ]
    with pytest.raises(BuildError, match="no such input file"):
        read_inputs(tmp_path / "missing.jsonl")


def test_read_inputs_bom_surrogates_id_column_and_hub_ids(tmp_path, monkeypatch):
    path = tmp_path / "in.jsonl"
    path.write_bytes(
        codecs.BOM_UTF8 + b'{"key": "a", "prompt": "first"}\n'
        b'{"key": "b", "prompt": "bad \\ud83d"}\n'
        b'{"key": "c", "context": [{"speaker": "A", "text": "x \\udc80"}]}\n'
        b'{"prompt": "no key here"}\n'
        b'{"key": "\\ud800", "prompt": "bad id"}\n'
    )
    items = read_inputs(path, id_column="key")
    assert [(i.key, i.problem) for i in items] == [
        ("a", None),
        ("b", "invalid_utf8"),
        ("c", "invalid_utf8"),
        ("line-4", "missing_column"),
        ("line-5", "invalid_utf8"),
    ]
    assert "'key'" in items[3].detail
    with pytest.raises(
        BuildError, match="no row has the column 'kye' \\(--id-column\\)"
    ):  # a typo: no silent line-N ids
        read_inputs(path, id_column="kye")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.json").write_text("[]")
    calls = []
    import datasets

    monkeypatch.setattr(
        datasets, "load_dataset", lambda repo, split: calls.append(repo) or [{"prompt": "hub"}]
    )
    for name in ("prompts", "x.txt", "x.json"):  # only owner/name strings go to the Hub
        with pytest.raises(BuildError, match="no such input file|unsupported input type"):
            read_inputs(name)
    assert [i.source for i in read_inputs("owner/name")] == ["hub"] and calls == ["owner/name"]
    (tmp_path / "tiny").mkdir()
    assert display_name("./tiny") == display_name(str(tmp_path / "tiny/")) == "tiny"
    assert display_name("owner/model") == "owner/model"


def test_csv_bad_bytes_quoting_and_long_cells(tmp_path):
    path = tmp_path / "p.csv"
    long = "w" * 200_000  # over csv's default field limit of 131072
    path.write_bytes(
        b'\xef\xbb\xbfid,prompt\na,"line one\ncaf\xe9 line two"\nb,plain\n' + f'c,"{long}"\n'.encode()
    )
    items = read_inputs(path)  # the bad byte stays in its multi-line cell: later rows are not merged into it
    assert [(i.key, i.where, i.problem) for i in items] == [
        ("line-2", "p.csv:2", "invalid_utf8"),
        ("b", "p.csv:4", None),
        ("c", "p.csv:5", None),
    ]
    assert items[2].source == long
    for data, pattern in [
        (b'id,q\nx,ok\ny,"never closed\nz,lost\n', "p.csv:3: malformed CSV"),
        (b'id,q\nx,"a"b\n', "p.csv:2: malformed CSV"),
        (b"id,q\xff\nx,ok\n", "p.csv:1: the header row is not valid UTF-8"),
    ]:
        path.write_bytes(data)
        with pytest.raises(BuildError, match=pattern):
            read_inputs(path)


def test_cli_errors_are_one_line_with_exit_2(tmp_path, capsys):
    bad_csv = tmp_path / "p.csv"
    bad_csv.write_bytes(b'id,q\nx,"a"b\n')
    assert cli.main(["build-data", "--input", str(bad_csv), "--output-dir", str(tmp_path / "o")]) == 2
    (tmp_path / "o2").mkdir()
    (tmp_path / "o2" / "train.jsonl").write_text('{"id": "a"}\n{damaged\n')
    assert cli.main(["build-data", "--report-only", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert (
        "p.csv:2: malformed CSV" in err and "train.jsonl:2: not valid JSON" in err and "Traceback" not in err
    )


def test_wording_flags_conflict_as_in_generate():
    def template(*argv):
        (args,) = cli.parse_command(builder_cli.make_parser(), list(argv))
        return builder_cli.make_template(args, [])

    with pytest.raises(BuildError, match="--template sets the whole wording: drop --task, --system-prompt"):
        template("--template", "x.json", "--task", "story", "--system-prompt", "Be brief.")
    with pytest.raises(BuildError, match="--instruction makes a custom task"):
        template("--task", "story", "--instruction", "Q: {input}")
    assert template("--instruction", "Q: {input}").task == "custom"
    assert template("--task", "custom").instruction == "{input}"


# ----- the build with a scripted teacher (exact assertions) ---------------------------------------------------------
def test_build_cleans_dedups_retries_and_records_provenance(tmp_path):
    inputs = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "a", "prompt": "A dragon opens a bakery."},
            {"id": "b", "prompt": "A robot learns to paint."},
            {"id": "c", "prompt": ""},
            {"id": "d", "prompt": "A ghost haunts a library."},
        ],
    )
    script = {
        # a: an exact duplicate and an echo of the prompt, then a near-duplicate (5 of 6 words) and a gap,
        # then one more than needed (surplus) after a duplicate
        "a": [
            "1. Red bread rises at dawn.\n2. red  bread rises at dawn.\n3. A dragon opens a bakery.",
            "1. Red bread rises at dawn today.\n2. The oven sings.\n3.",
            "1. Customers flee.\n2. Scales in the dough.\n3. The oven sings.",
        ],
        "b": ["1. Brush strokes hum.\n2. Canvas breathes.\n3. Oil meets metal."],
        "d": ["1.\n2.\n3.", "A ghost haunts a library.", ""],
    }
    teacher = ScriptedTeacher(script)
    settings = BuildSettings(
        num_candidates=3, min_candidates=2, max_retries=2, similarity_threshold=0.85, batch_size=8
    )
    summary = build_dataset(
        read_inputs(inputs),
        teacher,
        tmp_path / "out",
        STORY,
        settings,
        embedder=bag_of_words,
        log=lambda _: None,
    )
    assert (summary.kept, summary.shortfall, dict(summary.rejected)) == (
        2,
        0,
        {"empty_prompt": 1, "too_few_candidates": 1},
    )
    # retries only ask for inputs that still lack candidates
    assert teacher.calls == [(["a", "b", "d"], 3, 0), (["a", "d"], 3, 1), (["a", "d"], 3, 2)]
    kept = {r["id"]: r for r in lines_of(tmp_path / "out" / "train.jsonl")}
    assert kept["a"]["candidates"] == ["Red bread rises at dawn.", "The oven sings.", "Customers flee."]
    assert kept["a"]["prompt"] == "A dragon opens a bakery."
    prov = kept["a"]["provenance"]
    assert prov["teacher"] == "scripted" and prov["prompt_version"] == prompt_version(STORY)
    assert prov["attempts"] == 3 and prov["parse_failures"] == [[], [3], []] and prov["shortfall"] == 0
    assert prov["dropped"] == {"echo": 1, "duplicate": 2, "near_duplicate": 1, "surplus": 1}
    assert prov["input"] == "in.jsonl:1"
    rejected = {r["id"]: r for r in lines_of(tmp_path / "out" / "rejected.jsonl")}
    assert rejected["c"]["reason"] == "empty_prompt"
    assert rejected["d"]["reason"] == "too_few_candidates" and rejected["d"]["provenance"]["attempts"] == 3
    assert rejected["d"]["provenance"]["dropped"] == {"echo": 1}
    loaded = load_one_to_many(tmp_path / "out", split="train")
    assert [r["id"] for r in loaded] == ["a", "b"] and loaded[1]["candidates"] == [
        "Brush strokes hum.",
        "Canvas breathes.",
        "Oil meets metal.",
    ]


def test_resume_repairs_torn_line_and_refuses_changed_settings(tmp_path):
    inputs = write_jsonl(
        tmp_path / "in.jsonl", [{"id": f"p{i}", "prompt": f"prompt number {i}"} for i in range(4)]
    )
    script = {f"p{i}": [f"1. first answer {i}\n2. second reply {i}"] for i in range(4)}
    out = tmp_path / "out"
    settings = BuildSettings(num_candidates=2, batch_size=2)
    build_dataset(
        read_inputs(inputs)[:2],
        ScriptedTeacher(script),
        out,
        STORY,
        settings,
        embedder=False,
        log=lambda _: None,
    )
    with open(out / "train.jsonl", "ab") as handle:  # what a kill in the middle of a write leaves
        handle.write(b'{"id": "p2", "prompt": "prompt num')
    teacher = ScriptedTeacher(script)
    summary = build_dataset(
        read_inputs(inputs), teacher, out, STORY, settings, embedder=False, log=lambda _: None
    )
    assert summary.already_done == 2 and summary.kept == 2
    assert [ids for ids, _, _ in teacher.calls] == [["p2", "p3"]]
    assert [r["id"] for r in lines_of(out / "train.jsonl")] == ["p0", "p1", "p2", "p3"]
    with pytest.raises(BuildError, match=r"num_candidates: 2 -> 3"):
        build_dataset(
            read_inputs(inputs), teacher, out, STORY, BuildSettings(num_candidates=3), embedder=False
        )
    (out / "train.jsonl").write_text('{"id": "x"}\nnot json\n')
    with pytest.raises(BuildError, match="train.jsonl:2: not valid JSON"):
        repair_jsonl(out / "train.jsonl")


def test_surrogates_are_rejected_or_dropped_and_never_stop_the_build(tmp_path, monkeypatch):
    inputs = tmp_path / "in.jsonl"
    inputs.write_bytes(b'{"id": "bad", "prompt": "bad \\ud83d"}\n{"id": "ok", "prompt": "A fox sails."}\n')
    reply = "1. The wind turns.\n2. Lost \ud83d at sea.\n3. Gulls laugh."
    teacher, out = ScriptedTeacher({"ok": [reply], "bad": [reply]}), tmp_path / "out"
    settings = BuildSettings(num_candidates=3, max_retries=0)
    summary = build_dataset(
        read_inputs(inputs), teacher, out, STORY, settings, embedder=False, log=lambda _: None
    )
    assert (summary.kept, dict(summary.rejected)) == (1, {"invalid_utf8": 1})
    (kept,), (rejected,) = lines_of(out / "train.jsonl"), lines_of(out / "rejected.jsonl")
    assert kept["candidates"] == ["The wind turns.", "Gulls laugh."]
    assert kept["provenance"]["dropped"] == {"invalid_utf8": 1} and rejected["prompt"] == "bad \ud83d"
    again = build_dataset(
        read_inputs(inputs), teacher, out, STORY, settings, embedder=False, log=lambda _: None
    )
    assert again.already_done == 2 and len(teacher.calls) == 1  # the escaped rejection matches its input
    for module in (builder_inputs, builder_filter):  # if a surrogate slipped past the checks ...
        monkeypatch.setattr(module, "encodable", lambda _: True)
    summary = build_dataset(
        read_inputs(inputs), teacher, tmp_path / "out2", STORY, settings, embedder=False, log=lambda _: None
    )
    assert (summary.kept, dict(summary.rejected)) == (
        0,
        {"invalid_utf8": 2},
    )  # ... each record becomes a rejection
    assert all("cannot be written" in r["detail"] for r in lines_of(tmp_path / "out2" / "rejected.jsonl"))


def test_resume_redoes_fixed_rejections_and_refuses_changed_inputs(tmp_path):
    inputs, out = tmp_path / "in.jsonl", tmp_path / "out"
    teacher = ScriptedTeacher(defaultdict(lambda: ["1. alpha one\n2. beta two"]))
    settings = BuildSettings(num_candidates=2)

    def build(lines, **kwargs):
        inputs.write_text("".join(line + "\n" for line in lines))
        return build_dataset(
            read_inputs(inputs), teacher, out, STORY, settings, embedder=False, log=lambda _: None, **kwargs
        )

    build(['"first prompt"', "{not json", '{"prompt": ""}', '"second prompt"'])  # ids line-1 .. line-4
    assert [(r["id"], r["reason"]) for r in lines_of(out / "rejected.jsonl")] == [
        ("line-2", "invalid_json"),
        ("line-3", "empty_prompt"),
    ]
    summary = build(['"first prompt"', '"fixed prompt"', '{"prompt": ""}', '"second prompt"'])
    assert summary.already_done == 3 and teacher.calls[-1][0] == ["line-2"]  # only the fixed row
    assert [r["id"] for r in lines_of(out / "rejected.jsonl")] == ["line-3"]
    assert [r["id"] for r in lines_of(out / "train.jsonl")] == ["line-1", "line-4", "line-2"]
    moved = ['"a new first row"', '"first prompt"', '"fixed prompt"', '{"prompt": ""}', '"second prompt"']
    with pytest.raises(BuildError, match="in.jsonl:1: id 'line-1' holds a different input"):
        build(moved)
    assert (
        build(moved, force=True).kept == 2
    )  # --force keeps the old records, builds line-3 (was rejected) and line-5


def test_a_folder_is_locked_while_a_build_writes_to_it(tmp_path):
    items = read_inputs(write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "prompt": "A fox sails."}]))
    teacher, settings = ScriptedTeacher({"a": ["1. one\n2. two"]}), BuildSettings(num_candidates=2)
    config = build_config(STORY, teacher, settings, semantic=False)
    holder = BuildFolder(tmp_path / "out")
    holder.open(config, items)
    with pytest.raises(BuildError, match="in use by another build"):
        build_dataset(items, teacher, tmp_path / "out", STORY, settings, embedder=False, config=config)
    holder.close()
    assert (
        build_dataset(
            items,
            teacher,
            tmp_path / "out",
            STORY,
            settings,
            embedder=False,
            config=config,
            log=lambda _: None,
        ).kept
        == 1
    )


def test_consecutive_failures_stop_after_the_batch_is_written(tmp_path):
    inputs = write_jsonl(
        tmp_path / "in.jsonl", [{"id": i, "prompt": f"prompt {i}"} for i in ("f0", "ok", "f2")]
    )
    down = [TeacherFailure("HTTP 503")]
    teacher = ScriptedTeacher({"f0": down, "ok": ["1. one\n2. two"], "f2": down})
    settings = BuildSettings(num_candidates=2, batch_size=3, max_consecutive_failures=1)
    with pytest.raises(BuildError, match="failed 1 inputs in a row"):
        build_dataset(
            read_inputs(inputs),
            teacher,
            tmp_path / "out",
            STORY,
            settings,
            embedder=False,
            log=lambda _: None,
        )
    assert [r["id"] for r in lines_of(tmp_path / "out" / "train.jsonl")] == ["ok"]


# ----- the HTTP double ----------------------------------------------------------------------------------------
def chat_reply(text: str):
    return 200, {}, {"choices": [{"message": {"role": "assistant", "content": text}}]}


@pytest.fixture
def double(chat_double):
    return chat_double


def prompt_of(body) -> str:
    """The input text inside a listing request (the line after the story instruction)."""
    return body["messages"][-1]["content"].split("\n")[1]


def test_http_teacher_builds_a_loadable_dataset(tmp_path, double, monkeypatch):
    replies = {
        "A lighthouse keeper finds a message in a bottle.":  # three good, one SBERT near-duplicate
        "1. The note was addressed to her, in her own handwriting.\n"
        "2. The note was addressed to her, in her own hand-writing!\n"
        "3. It was a map of an island that did not exist.\n4. It asked her to switch off the light.",
        "A child befriends the moon.":  # too few items and an exact duplicate: a retry fills up
        "1. The moon came down to the garden.\n2. The moon came down to the garden.",
        "A clock that runs backwards.": "Sorry, I cannot help with that.",
    }
    calls = Counter()

    def respond(body):
        prompt = prompt_of(body)
        calls[prompt] += 1
        if prompt == "A child befriends the moon." and calls[prompt] > 1:
            return chat_reply(
                "1. Every night she left a glass of milk on the roof.\n2. They played chess with stars."
                "\n3. The moon came down to the garden.\n4. The moon borrowed her bicycle."
            )
        return chat_reply(replies[prompt])

    server, url = double(respond)
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"id": f"s{i}", "prompt": p} for i, p in enumerate(replies)])
    monkeypatch.setenv("TEST_TEACHER_KEY", "sk-test-123")
    out = tmp_path / "out"
    code = cli.main(
        [
            "build-data",
            "--input",
            str(inputs),
            "--output-dir",
            str(out),
            "--model-name-or-path",
            "teacher-model",
            "--base-url",
            url,
            "--api-key-env",
            "TEST_TEACHER_KEY",
            "--task",
            "story",
            "--num-candidates",
            "4",
            "--max-retries",
            "1",
            "--min-candidates",
            "2",
        ]
    )
    assert code == 0
    records = {r["id"]: r for r in load_one_to_many(out, split="train")}
    assert set(records) == {"s0", "s1"}
    assert records["s0"]["candidates"] == [
        "The note was addressed to her, in her own handwriting.",
        "It was a map of an island that did not exist.",
        "It asked her to switch off the light.",
    ]
    assert records["s1"]["candidates"] == [
        "The moon came down to the garden.",
        "Every night she left a glass of milk on the roof.",
        "They played chess with stars.",
        "The moon borrowed her bicycle.",
    ]
    raw = {r["id"]: r for r in lines_of(out / "train.jsonl")}
    assert raw["s0"]["provenance"]["dropped"] == {
        "duplicate": 3,
        "near_duplicate": 2,
    }  # the retry repeated itself
    assert raw["s0"]["provenance"]["shortfall"] == 1 and raw["s0"]["provenance"]["attempts"] == 2
    assert raw["s1"]["provenance"]["dropped"] == {"duplicate": 2}
    assert raw["s1"]["provenance"]["teacher"] == f"openai:teacher-model@{url}"
    rejected = lines_of(out / "rejected.jsonl")
    assert [(r["id"], r["reason"]) for r in rejected] == [("s2", "too_few_candidates")]
    # the request: the listing decoder's wording, the model, the key, a higher temperature on the retry
    path, auth, body = server.requests[0]
    assert (
        path == "/v1/chat/completions" and auth == "Bearer sk-test-123" and body["model"] == "teacher-model"
    )
    record = {"id": "s0", "prompt": "A lighthouse keeper finds a message in a bottle."}
    first = [b for _, _, b in server.requests if prompt_of(b) == record["prompt"]]
    assert first[0]["messages"] == listing_messages(STORY, record, 4)
    assert [b["temperature"] for b in first] == [1.0, 1.2] and first[0]["max_tokens"] == 4 * 64
    report = json.loads((out / "quality_report.json").read_text())
    assert (
        report["records"]["kept"] == 2
        and report["records"]["rejected_by_reason"]["too_few_candidates"]["count"] == 1
    )
    assert report["loads"] == {"ok": True} and report["within_record_cosine"]["count"] == 3 + 6
    assert "sk-test-123" not in (out / "build_config.json").read_text()


def test_refused_request_is_a_rejection_and_moved_input_resumes(tmp_path, double, monkeypatch):
    def respond(body):
        if prompt_of(body) == "prompt 1":
            return 400, {}, {"error": {"message": "prompt is too long"}}
        return chat_reply("1. one answer\n2. another answer")

    server, url = double(respond)
    (tmp_path / "a").mkdir()
    write_jsonl(tmp_path / "a" / "in.jsonl", [{"id": f"p{i}", "prompt": f"prompt {i}"} for i in range(3)])
    out = tmp_path / "out"
    args = [
        "--output-dir",
        str(out),
        "--model-name-or-path",
        "m",
        "--base-url",
        url,
        "--task",
        "story",
        "--num-candidates",
        "2",
        "--no-report",
        "--no-semantic-dedup",
        "--max-consecutive-failures",
        "1",
        "--concurrency",
        "12",
    ]
    assert cli.main(["build-data", "--input", str(tmp_path / "a" / "in.jsonl"), *args]) == 0
    assert [r["id"] for r in lines_of(out / "train.jsonl")] == ["p0", "p2"]
    (rejected,) = lines_of(out / "rejected.jsonl")
    assert rejected["reason"] == "teacher_rejected" and "prompt is too long" in rejected["detail"]
    assert sum(prompt_of(b) == "prompt 1" for _, _, b in server.requests) == 1  # a 400 is not retried
    config = json.loads((out / "build_config.json").read_text())
    assert (
        config["input"] == "in.jsonl" and config["settings"]["batch_size"] == 12
    )  # a round fills the concurrency
    (tmp_path / "a").rename(tmp_path / "b")  # the checkout moved: the resume goes on
    monkeypatch.chdir(tmp_path / "b")
    assert cli.main(["build-data", "--input", "in.jsonl", *args]) == 0 and len(server.requests) == 3


@pytest.mark.parametrize("client", ["huggingface_hub", "openai"])
def test_endpoint_names_hide_credentials_and_redirects_keep_the_key(double, client):
    if client == "openai":
        pytest.importorskip("openai")
    chat = make_chat(
        "m", base_url="http://user:s3cret@example.test:8000/v1?key=abc", api_key="", client=client
    )
    teacher = OpenAITeacher(chat, STORY)
    assert teacher.name == "openai:m@http://example.test:8000/v1" and "s3cret" not in repr(teacher.client)
    target, target_url = double(lambda body: chat_reply("1. hijacked"))
    target_url = target_url.replace(
        "127.0.0.1", "localhost"
    )  # another origin: a redirect there drops the key
    server, url = double(scripted_statuses((302, {"Location": f"{target_url}/chat/completions?sig=abc"}, {})))
    with pytest.raises(ChatRequestError) as info:  # the followed redirect arrives as a GET, which is refused
        HttpChat("m", url, api_key="sk-live-1", client=client, policy=RetryPolicy(max_retries=0)).complete([])
    assert len(server.requests) == 1 and server.requests[0][1] == "Bearer sk-live-1"
    assert [auth for _, auth, _ in target.requests] == [None]  # the key never reaches the new host
    assert "sk-live-1" not in str(info.value)


# ----- retry policy --------------------------------------------------------------------------------------------
def scripted_statuses(*responses):
    """respond() returning the given (status, headers, payload) in order, then the last one forever."""
    queue = list(responses)

    def respond(_body):
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return respond


def test_retry_after_is_honoured_then_success(double):
    server, url = double(
        scripted_statuses(
            (429, {"Retry-After": "2"}, {"error": {"message": "slow down"}}),
            (503, {}, {"error": "overloaded"}),
            chat_reply("1. ok"),
        )
    )
    sleeps = []
    client = HttpChat(
        "m",
        url,
        api_key="",
        policy=RetryPolicy(max_retries=3, base_delay_s=0.5),
        sleep=sleeps.append,
        client="huggingface_hub",
    )
    assert client.complete([{"role": "user", "content": "hi"}]) == "1. ok"
    assert len(server.requests) == 3
    assert (
        2.0 < sleeps[0] <= 2.4 and 0.5 <= sleeps[1] <= 1.0
    )  # Retry-After + jitter, then backoff 0.5*2**1*[0.5, 1]


@pytest.mark.parametrize(
    ("status", "payload", "error", "pattern"),
    [
        (
            401,
            {"error": {"message": "Incorrect API key provided: sk-secret-42"}},
            ChatAuthError,
            "TEST_KEY_ENV",
        ),
        (
            429,
            {"error": {"message": "You exceeded your quota", "type": "insufficient_quota"}},
            ChatQuotaError,
            "quota",
        ),
        (404, {"error": {"message": "The model `nope` does not exist"}}, ChatModelNotFoundError, "not found"),
    ],
)
def test_fatal_errors_are_clear_and_not_retried(double, monkeypatch, status, payload, error, pattern):
    server, url = double(scripted_statuses((status, {}, payload)))
    monkeypatch.setenv("TEST_KEY_ENV", "sk-secret-42")
    client = HttpChat("nope", url, api_key_env="TEST_KEY_ENV", sleep=lambda _: None, client="huggingface_hub")
    with pytest.raises(error, match=pattern) as info:
        client.complete([{"role": "user", "content": "hi"}])
    assert (
        len(server.requests) == 1
        and "sk-secret-42" not in str(info.value)
        and "sk-secret-42" not in repr(client)
    )


def test_server_errors_exhaust_retries_with_backoff(double):
    server, url = double(scripted_statuses((500, {}, {"error": {"message": "boom"}})))
    sleeps = []
    policy = RetryPolicy(max_retries=3, base_delay_s=1.0, max_delay_s=3.0)
    with pytest.raises(ChatRetriesExhausted, match="gave up after 4 attempts.*HTTP 500"):
        HttpChat("m", url, api_key="", policy=policy, sleep=sleeps.append, client="huggingface_hub").complete(
            []
        )
    assert len(server.requests) == 4
    assert [0.5 <= sleeps[0] <= 1.0, 1.0 <= sleeps[1] <= 2.0, 1.5 <= sleeps[2] <= 3.0] == [True] * 3


def test_rate_limiter_spaces_requests():
    now, sleeps = [0.0], []

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(120, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        limiter.wait()
    assert sleeps == [0.5, 0.5]


def test_rate_limiter_gives_threads_distinct_slots():
    clock_lock, slept = threading.Lock(), []

    def clock():  # time stands still: each thread must get its own slot, 0.5 s after the one before
        with clock_lock:
            time.sleep(0.001)  # invite a thread switch
            return 100.0

    limiter = RateLimiter(120, clock=clock, sleep=slept.append)
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        limiter.wait()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(slept) == [0.5 * i for i in range(1, 8)]  # the first starts at once


def test_retry_after_utc_date_and_jitter(monkeypatch):
    monkeypatch.setenv(
        "TZ", "XST-5"
    )  # local time 5 h ahead of UTC: a "-0000" date read as local is hours off
    time.tzset()
    try:
        value = email.utils.formatdate(time.time() + 30)
        assert value.endswith("-0000") and 25 < _retry_after(value) <= 31
    finally:
        monkeypatch.undo()
        time.tzset()
    waits = [RetryPolicy().delay(0, 10.0) for _ in range(20)]
    assert all(10.0 <= w <= 12.0 for w in waits) and len(set(waits)) > 1


def test_teacher_errors_leave_inputs_for_resume_and_fatal_errors_stop(tmp_path, double, capsys):
    broken = {"on": True}

    def respond(body):
        if broken["on"] and prompt_of(body) == "prompt 1":
            return 500, {}, {"error": {"message": "internal"}}
        return chat_reply("1. one answer\n2. another answer")

    server, url = double(respond)
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"id": f"p{i}", "prompt": f"prompt {i}"} for i in range(3)])
    args = [
        "build-data",
        "--input",
        str(inputs),
        "--output-dir",
        str(tmp_path / "out"),
        "--model-name-or-path",
        "m",
        "--base-url",
        url,
        "--task",
        "story",
        "--num-candidates",
        "2",
        "--http-max-retries",
        "1",
        "--no-report",
        "--no-semantic-dedup",
    ]
    assert cli.main(args) == 1  # p1 unfinished, the others written
    err = capsys.readouterr().err
    assert "id 'p1' not built, teacher error" in err and "run the same command again" in err
    assert [r["id"] for r in lines_of(tmp_path / "out" / "train.jsonl")] == ["p0", "p2"]
    assert not (tmp_path / "out" / "rejected.jsonl").read_text()
    broken["on"] = False
    assert cli.main(args) == 0
    assert sorted(r["id"] for r in lines_of(tmp_path / "out" / "train.jsonl")) == ["p0", "p1", "p2"]
    # an endpoint refusing the key stops at once with one clear line
    _, bad_url = double(scripted_statuses((401, {}, {"error": {"message": "invalid key"}})))
    code = cli.main([*args[:4], str(tmp_path / "out2"), *args[5:8], bad_url, *args[9:]])
    assert code == 2 and "check OPENAI_API_KEY / --api-key-env" in capsys.readouterr().err
    assert not (tmp_path / "out2" / "train.jsonl").read_text()


# ----- local teacher -------------------------------------------------------------------------------------------
def test_local_teacher_tiny_model_folder(tmp_path, tiny_models):
    model, tokenizer = tiny_models("llama")
    folder = tmp_path / "tiny"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    inputs = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": f"t{i}", "prompt": p}
            for i, p in enumerate(["A cat runs a hotel.", "Rain falls upwards.", "A map redraws itself."])
        ],
    )
    teacher = LocalTeacher(str(folder), STORY, Sampling(max_new_tokens=6, seed=0), batch_size=3)
    settings = BuildSettings(num_candidates=2, min_candidates=1, max_retries=1)
    summary = build_dataset(
        read_inputs(inputs), teacher, tmp_path / "out", STORY, settings, embedder=False, log=lambda _: None
    )
    kept, rejected = lines_of(tmp_path / "out" / "train.jsonl"), lines_of(tmp_path / "out" / "rejected.jsonl")
    assert sorted(r["id"] for r in kept + rejected) == ["t0", "t1", "t2"] and summary.kept == len(kept)
    assert summary.kept == 3  # deterministic with seed 0: a build that rejected everything must not pass
    assert all(r["provenance"]["teacher"] == "local:tiny" for r in kept)  # the folder's name, not its path
    assert len(load_one_to_many(tmp_path / "out", split="train")) == 3


def test_local_teacher_keeps_truncation_warnings(monkeypatch, caplog):
    from peft_diversity.generation import decoders, inputs

    def fake_listing(model, tokenizer, contexts, num_responses, **kwargs):
        inputs.logger.warning(
            "context of record %r is %d tokens too long for the model window; truncating it from the left",
            "a",
            7,
        )
        decoders.logger.warning("listing: could not parse items %s of %d for record %r", [2], 2, "a")
        return [SimpleNamespace(settings={"raw_output": "1. x"}) for _ in contexts]

    monkeypatch.setattr(decoders, "generate_listing", fake_listing)
    teacher = LocalTeacher(object(), STORY, tokenizer=object())
    with caplog.at_level(logging.WARNING, logger="peft_diversity.generation"):
        assert teacher([{"id": "a", "prompt": "p"}], 2, 0) == ["1. x"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("too long for the model window" in m for m in messages)
    assert not any("could not parse" in m for m in messages)  # the builder records those per record itself


# ----- kill and resume ------------------------------------------------------------------------------------------
def test_kill_and_resume_writes_every_input_exactly_once(tmp_path, double):
    prompts = [f"story seed number {i}" for i in range(16)]
    server, url = double(
        lambda body: chat_reply(f"1. {prompt_of(body)} begins\n2. {prompt_of(body)} ends"), delay=0.15
    )
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"id": f"k{i}", "prompt": p} for i, p in enumerate(prompts)])
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "peft_diversity.cli",
        "build-data",
        "--input",
        str(inputs),
        "--output-dir",
        str(out),
        "--model-name-or-path",
        "m",
        "--base-url",
        url,
        "--task",
        "story",
        "--num-candidates",
        "2",
        "--batch-size",
        "2",
        "--concurrency",
        "2",
        "--no-semantic-dedup",
        "--no-report",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    train = out / "train.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and (not train.is_file() or train.read_text().count("\n") < 4):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = [json.loads(line) for line in train.read_text().split("\n")[:-1]]  # complete lines
    assert 4 <= len(first) < 16, proc.stderr.read().decode()
    requested_before = len(server.requests)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    ids = [json.loads(line)["id"] for line in train.read_text().splitlines()]  # every line parses
    ids += [json.loads(line)["id"] for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(f"k{i}" for i in range(16))  # each exactly once
    asked_again = {prompt_of(body) for _, _, body in server.requests[requested_before:]}
    assert not asked_again & {r["prompt"] for r in first}  # finished records were not requested again
    assert f"already done: {len(first)}" in done.stderr


# ----- quality report -------------------------------------------------------------------------------------------
def test_quality_report_on_a_fixed_dataset(tmp_path):
    prov = {"teacher": "t", "prompt_version": "v", "requested": 3}
    write_jsonl(
        tmp_path / "train.jsonl",
        [
            {
                "id": "a",
                "prompt": "p",
                "candidates": ["red green", "red blue", "yellow"],
                "provenance": {
                    **prov,
                    "attempts": 1,
                    "parse_failures": [[]],
                    "dropped": {"duplicate": 2},
                    "shortfall": 0,
                },
            },
            {
                "id": "b",
                "prompt": "q",
                "candidates": ["one two three four", "five"],
                "provenance": {
                    **prov,
                    "attempts": 3,
                    "parse_failures": [[2, 3], [3], [2, 3]],
                    "dropped": {"near_duplicate": 1},
                    "shortfall": 1,
                },
            },
        ],
    )
    write_jsonl(
        tmp_path / "rejected.jsonl",
        [
            {"id": "c", "reason": "empty_prompt", "detail": "", "input": "x:3"},
            {
                "id": "d",
                "reason": "too_few_candidates",
                "detail": "",
                "input": "x:4",
                "candidates": [],
                "provenance": {
                    **prov,
                    "attempts": 3,
                    "parse_failures": [[1, 2, 3]] * 3,
                    "dropped": {"echo": 1},
                    "shortfall": 3,
                },
            },
        ],
    )
    (tmp_path / "build_config.json").write_text(
        json.dumps({"teacher": "t", "prompt_version": "v", "num_candidates": 3})
    )
    (tmp_path / "build_progress.json").write_text(json.dumps({"inputs": 6, "unfinished": {"e": "HTTP 500"}}))
    report = quality_report(tmp_path, embedder=bag_of_words)
    counts = report["records"]
    assert (
        counts["inputs"],
        counts["kept"],
        counts["rejected"],
        counts["unfinished"],
        counts["not_processed"],
    ) == (6, 2, 2, 1, 1)
    assert counts["rejected_by_reason"] == {
        "empty_prompt": {"count": 1, "share": 0.1667},
        "too_few_candidates": {"count": 1, "share": 0.1667},
    }
    assert counts["shortfall_records"] == 1
    assert report["candidates_per_record"] == {
        "count": 2,
        "min": 2,
        "max": 3,
        "mean": 2.5,
        "histogram": {"2": 1, "3": 1},
    }
    assert report["candidate_words"]["mean"] == pytest.approx(2.0) and report["candidate_words"]["max"] == 4
    sims = report["within_record_cosine"]  # pairs: 0.5, 0, 0 (record a), 0 (record b)
    assert sims["count"] == 4 and sims["mean"] == pytest.approx(0.125) and sims["max"] == pytest.approx(0.5)
    assert sims["per_record_mean"] == pytest.approx((0.5 / 3 + 0) / 2, abs=1e-3)
    assert [c for _, _, c in sims["histogram"]] == [3, 0, 0, 0, 0, 1, 0, 0, 0, 0]
    assert report["dropped_candidates"] == {
        "by_reason": {"echo": 1, "duplicate": 2, "near_duplicate": 1},
        "unparsed_items": 2 + 1 + 2 + 9,
        "requested_items": 3 * 7,
    }
    assert report["attempts"]["histogram"] == {"1": 1, "3": 2} and report["loads"] == {"ok": True}
    markdown = (tmp_path / "quality_report.md").read_text()
    for line in (
        "| kept | 2 | 33.3% |",
        "| rejected: empty_prompt | 1 | 16.7% |",
        "| unfinished (teacher errors; a resume retries them) | 1 | |",
        "(shortfall): 1.",
        "Teacher items that could not be parsed: 14 of 21 requested.",
        "| near_duplicate | 1 |",
    ):
        assert line in markdown
    assert json.loads((tmp_path / "quality_report.json").read_text()) == report


def test_http_settings_with_a_local_teacher_are_refused(tmp_path, capsys):
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"id": "p0", "prompt": "a prompt"}])
    code = cli.main(
        [
            "build-data",
            "--input",
            str(inputs),
            "--output-dir",
            str(tmp_path / "out"),
            "--task",
            "story",
            "--http-max-retries",
            "2",
            "--timeout",
            "5",
        ]
    )
    assert code == 2
    assert (
        "--http-max-retries, --timeout apply to an HTTP teacher only (--base-url)" in capsys.readouterr().err
    )
