"""The one JSON / JSONL reader and writer (peft_diversity/jsonl.py): errors are one line naming the file."""

from __future__ import annotations

import json
import os

import pytest

from peft_diversity.errors import BuildError, PeftDiversityError, TemplateError
from peft_diversity.jsonl import read_json, write_json
from peft_diversity.templates import load_template


def test_read_json_names_the_file_and_line_of_a_bad_file(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text('{\n  "a": 1,\n}\n', encoding="utf-8")
    with pytest.raises(BuildError, match=rf"^{path}:3: not valid JSON \(.*column 1\); fix it$"):
        read_json(path, error=BuildError, hint="fix it")
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(PeftDiversityError, match=rf"^{path}: not valid UTF-8"):
        read_json(path)
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(PeftDiversityError, match=rf"^{path}: not a JSON object \(got list\)$"):
        read_json(path, kind=dict)
    assert read_json(path, kind=list) == [1, 2]


def test_read_json_missing_file_gives_the_default_or_one_error(tmp_path):
    missing = tmp_path / "absent.json"
    assert read_json(missing, missing={}) == {}
    with pytest.raises(PeftDiversityError, match=rf"^{missing}: no such file$"):
        read_json(missing)


def test_write_json_round_trips_and_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "out.json"
    write_json(path, {"text": "café", "lone": "bad \ud83d"})
    assert path.read_text(encoding="utf-8").endswith("\n")
    assert read_json(path) == {"text": "café", "lone": "bad \ud83d"}  # a lone surrogate is escaped, not lost
    before = path.read_bytes()
    with pytest.raises(TypeError):
        write_json(path, {"x": object()})
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["out.json"]
    write_json(path, {"x": {1, 2}}, default=sorted)
    assert json.loads(path.read_text(encoding="utf-8")) == {"x": [1, 2]}


def test_a_bad_template_file_is_one_template_error_naming_its_line(tmp_path):
    path = tmp_path / "template.json"
    path.write_text('{"task": "story",\n "max_possibility": }', encoding="utf-8")
    with pytest.raises(TemplateError, match=rf"^{path}:2: not valid JSON"):
        load_template(path)


def test_a_damaged_build_folder_file_is_one_build_error_naming_its_line(tmp_path):
    from peft_diversity.builder.report import quality_report

    (tmp_path / "train.jsonl").write_text('{"id": "a", "prompt": "p", "candidates": ["x", "y"]}\n')
    (tmp_path / "build_progress.json").write_text('{"inputs": 1,\n "unfinished": [}')
    with pytest.raises(
        BuildError, match=r"build_progress.json:2: not valid JSON .*; the file was edited or damaged"
    ):
        quality_report(tmp_path, embedder=False, write=False)
    (tmp_path / "build_progress.json").write_text("[]")
    with pytest.raises(BuildError, match=r"build_progress.json: not a JSON object \(got list\)"):
        quality_report(tmp_path, embedder=False, write=False)
