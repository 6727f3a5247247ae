"""hub/: the upload folder, its model card, pushing (through a test double of HfApi) and loading back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from peft_diversity import hub
from peft_diversity.errors import HubError
from peft_diversity.templates import TEMPLATE_FILENAME, PossibilityTemplate

CONTEXT = [{"speaker": "A", "text": "Any plans for the weekend?"}, {"speaker": "B", "text": "Not yet, you?"}]
GREEDY = dict(temperature=0, max_new_tokens=6)
RESULTS = [
    {
        "model": "base",
        "decoder": "sampling",
        "name": "base__sampling",
        "scores": {
            "semantic_diversity": 0.21,
            "self_bleu": 0.61,
            "distinct_1": 0.3,
            "distinct_2": 0.4,
            "coherence_relevance": 0.7,
            "latency_s": 0.5,
        },
    },
    {
        "model": "poexft",
        "decoder": "possibilities",
        "name": "poexft__possibilities",
        "scores": {
            "semantic_diversity": 0.4321,
            "self_bleu": 0.1234,
            "distinct_1": 0.5,
            "distinct_2": 0.8765,
            "coherence_relevance": 0.6543,
            "latency_s": 0.25,
        },
    },
]


class RecordingApi:
    """Test double of HfApi: records calls and a snapshot of the uploaded folder."""

    def __init__(self):
        self.calls = []
        self.uploaded = {}

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs["repo_id"], kwargs))
        from pathlib import Path

        folder = Path(kwargs["folder_path"])
        self.uploaded = {
            p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
        }
        return "https://huggingface.co/commit/abc"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A full-weights 'trained' folder and a LoRA adapter folder over a saved tiny base; no training."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from peft_diversity.models.tiny import tiny_model_and_tokenizer
    from peft_diversity.trainer.config import PossibilityConfig

    root = tmp_path_factory.mktemp("hub")
    template = PossibilityTemplate(max_possibility=5)
    model, tokenizer = tiny_model_and_tokenizer("llama", seed=1)
    full = root / "full"
    model.save_pretrained(full)
    tokenizer.save_pretrained(full)
    template.save_pretrained(full)
    args = PossibilityConfig(
        output_dir=str(root / "args"),
        mode="poexft",
        num_candidates=3,
        max_possibility=5,
        ul_weight=0.25,
        learning_rate=3e-4,
        report_to=[],
    )
    torch.save(args, full / "training_args.bin")
    (full / "optimizer.pt").write_bytes(b"not for upload")

    base = root / "base"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    base_model = AutoModelForCausalLM.from_pretrained(base).eval()
    torch.manual_seed(2)
    lora = LoraConfig(
        r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM", init_lora_weights=False
    )
    peft_model = get_peft_model(base_model, lora).eval()
    adapter = root / "adapter"
    peft_model.save_pretrained(adapter)
    tokenizer.save_pretrained(adapter)
    template.save_pretrained(adapter)
    return {
        "full": full,
        "adapter": adapter,
        "model": model,
        "peft_model": peft_model,
        "tokenizer": tokenizer,
        "template": template,
    }


def _generate(model, tokenizer, template):
    from peft_diversity.generation.decoders import generate_possibilities

    result = generate_possibilities(model, tokenizer, CONTEXT, num_responses=3, template=template, **GREEDY)
    return result.texts, result.num_tokens


def test_save_for_hub_full_folder_and_card(trained, tmp_path):
    from huggingface_hub import ModelCard, metadata_load

    out = hub.save_for_hub(
        trained["full"],
        tmp_path / "upload",
        results=RESULTS,
        base_model="Qwen/Qwen2.5-0.5B",
        dataset="user/one-to-many-dialogue",
        repo_id="alice/tiny-poexft",
    )
    names = {p.name for p in out.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer_config.json",
        TEMPLATE_FILENAME,
        "README.md",
        hub.TRAINING_CONFIG_FILENAME,
    } <= names
    assert not names & {"training_args.bin", "optimizer.pt"}
    assert not list(tmp_path.glob(".upload*"))  # temp dir renamed away
    training = json.loads((out / hub.TRAINING_CONFIG_FILENAME).read_text())
    assert training["mode"] == "poexft" and training["ul_weight"] == 0.25

    text = (out / "README.md").read_text()
    for snippet in (
        "poexft",
        "Qwen/Qwen2.5-0.5B",
        "0.432",
        "0.654",
        "PossibilityGenerator.from_pretrained",
        "# alice/tiny-poexft",
        "2412.03343",
        "Limitations",
        "ul_weight",
        "1..5",
    ):
        assert snippet in text, snippet
    card = ModelCard.load(out / "README.md")
    data = card.data.to_dict()
    assert data["base_model"] == "Qwen/Qwen2.5-0.5B"
    assert data["datasets"] == ["user/one-to-many-dialogue"]
    metrics = {m["type"]: m["value"] for m in data["model-index"][0]["results"][0]["metrics"]}
    assert metrics == {
        "semantic_diversity": 0.4321,
        "self_bleu": 0.1234,
        "distinct_2": 0.8765,
        "coherence_relevance": 0.6543,
    }
    assert data["model-index"][0]["results"][0]["task"]["type"] == "text-generation"
    assert metadata_load(out / "README.md")["model-index"] == data["model-index"]
    assert [r.metric_type for r in card.data.eval_results] == list(metrics)
    assert "poexft" in card.data.tags


def test_card_of_a_baseline_is_tagged_as_that_baseline(trained, tmp_path):
    """An OTM model goes through the same card, which must not tag it as PoExFT."""
    from peft_diversity.hub.card import build_model_card

    tags = build_model_card(trained["full"], training_config={"mode": "otm"}).data.tags
    assert "otmft" in tags and "poexft" not in tags


def test_results_from_json_file_and_no_results(trained, tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(RESULTS))
    out = hub.save_for_hub(trained["full"], tmp_path / "a", results=path)
    assert "0.654" in (out / "README.md").read_text()
    out = hub.save_for_hub(trained["full"], tmp_path / "b")
    card = (out / "README.md").read_text()
    assert "model-index" not in card and "No evaluation results" in card
    with pytest.raises(HubError, match="results"):
        hub.save_for_hub(trained["full"], tmp_path / "c", results=[{"model": "x"}])


def test_saved_full_folder_generates_identically(trained, tmp_path):
    expected = _generate(trained["model"], trained["tokenizer"], trained["template"])
    out = hub.save_for_hub(trained["full"], tmp_path / "upload")
    generator = hub.PossibilityGenerator.from_pretrained(out, dtype="float32")
    assert generator.template == trained["template"]
    result = generator.generate(CONTEXT, num_responses=3, **GREEDY)
    assert (result.texts, result.num_tokens) == expected
    assert result.possibilities == [1, 2, 3]


def test_adapter_folder_adapter_only_and_merged(trained, tmp_path):
    expected = _generate(trained["peft_model"], trained["tokenizer"], trained["template"])
    out = hub.save_for_hub(trained["adapter"], tmp_path / "adapter_upload")
    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", TEMPLATE_FILENAME, "README.md"} <= names
    assert "model.safetensors" not in names
    assert "library_name: peft" in (out / "README.md").read_text()
    gen = hub.PossibilityGenerator.from_pretrained(out, dtype="float32")
    assert _generate(gen.model, gen.tokenizer, gen.template) == expected

    merged = hub.save_for_hub(trained["adapter"], tmp_path / "merged_upload", merge=True)
    names = {p.name for p in merged.iterdir()}
    assert "adapter_config.json" not in names and "model.safetensors" in names and TEMPLATE_FILENAME in names
    assert "library_name: transformers" in (merged / "README.md").read_text()
    gen = hub.PossibilityGenerator.from_pretrained(merged, dtype="float32")
    assert not hasattr(gen.model, "peft_config")
    result = gen.generate(CONTEXT, num_responses=3, **GREEDY)
    assert (result.texts, result.num_tokens) == expected


def test_generator_from_pretrained_takes_the_download_options(trained, monkeypatch):
    import huggingface_hub

    seen = {}

    def snapshot(repo_id, **kwargs):
        seen.update(repo_id=repo_id, **kwargs)
        return str(trained["full"])

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot)
    gen = hub.PossibilityGenerator.from_pretrained(
        "alice/model",
        revision="abc123",
        token="t",
        cache_dir="/tmp/c",
        local_files_only=True,
        dtype="float32",
    )
    assert seen == {
        "repo_id": "alice/model",
        "revision": "abc123",
        "token": "t",
        "cache_dir": "/tmp/c",
        "local_files_only": True,
    }
    assert gen.model.dtype == torch.float32 and gen.template.max_possibility == 5


@pytest.mark.parametrize("kind", ["adapter", "merged", "full"])
def test_card_metadata_and_plain_transformers_snippet_runs(trained, tmp_path, kind):
    """The card says license / language / framework versions, and its transformers(+peft) snippet runs as is."""
    import re
    import runpy

    source = trained["full" if kind == "full" else "adapter"]
    out = hub.save_for_hub(source, tmp_path / kind, merge=kind == "merged")
    card = (out / "README.md").read_text()
    assert "license: apache-2.0" in card and "- en" in card
    assert re.search(r"- transformers: \d", card) and re.search(r"- torch: \d", card)
    snippet = re.search(r"### With transformers.*?```python\n(.*?)```", card, re.S).group(1)
    assert "peft_diversity" not in snippet
    assert ("AutoPeftModelForCausalLM" in snippet) == (kind == "adapter")
    script = tmp_path / f"{kind}.py"
    script.write_text(snippet.replace("max_new_tokens=64", "max_new_tokens=3"))
    printed = []
    runpy.run_path(str(script), init_globals={"print": printed.append})
    assert len(printed[0]) == 5 and all(isinstance(text, str) for text in printed[0])


@pytest.fixture
def logged_in(monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_secret_test_token")


def test_push_model_private_by_default(trained, logged_in, capsys):
    api = RecordingApi()
    hub.push_model(trained["full"], "alice/tiny-poexft", api=api, results=RESULTS)
    (create, repo, kwargs), (upload, repo2, up) = api.calls
    assert (create, repo, upload, repo2) == (
        "create_repo",
        "alice/tiny-poexft",
        "upload_folder",
        "alice/tiny-poexft",
    )
    assert kwargs == {"private": True, "exist_ok": True, "repo_type": "model"}
    assert up["repo_type"] == "model" and up["commit_message"]
    assert {"model.safetensors", TEMPLATE_FILENAME, "README.md"} <= set(api.uploaded)
    assert "training_args.bin" not in api.uploaded
    assert b"alice/tiny-poexft" in api.uploaded["README.md"]
    out = capsys.readouterr()
    assert "hf_secret_test_token" not in out.out + out.err


def test_push_model_public_and_adapter(trained, logged_in):
    api = RecordingApi()
    hub.push_model(trained["adapter"], "alice/tiny-adapter", private=False, api=api, commit_message="v1")
    assert api.calls[0][2]["private"] is False
    assert api.calls[1][2]["commit_message"] == "v1"
    assert "adapter_model.safetensors" in api.uploaded


def test_push_model_without_token(trained, monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    api = RecordingApi()
    with pytest.raises(HubError, match="hf auth login"):
        hub.push_model(trained["full"], "alice/tiny-poexft", api=api)
    assert api.calls == []


@pytest.mark.parametrize("repo_id", ["no-owner", "a/b/c", "alice/bad name", "", "alice/", "alice/x--..y"])
def test_push_model_malformed_repo_id_fails_first(repo_id, tmp_path):
    api = RecordingApi()
    with pytest.raises(HubError, match="repo id"):
        hub.push_model(tmp_path / "does-not-exist", repo_id, api=api, token="hf_x")
    assert api.calls == []


def test_cli_push_and_save_only(trained, logged_in, monkeypatch, tmp_path):
    from peft_diversity.hub import cli as hub_cli

    def parse(argv):
        return hub_cli.make_parser().parse_args_into_dataclasses(argv)[0]

    args = parse(
        [
            "--model-name-or-path",
            str(trained["full"]),
            "--repo-id",
            "alice/x",
            "--save-only",
            str(tmp_path / "folder"),
        ]
    )
    assert hub_cli.run(args) == 0 and (tmp_path / "folder" / "README.md").is_file()

    api = RecordingApi()
    monkeypatch.setattr("huggingface_hub.HfApi", lambda token=None: api)
    args = parse(["--model-name-or-path", str(trained["full"]), "--repo-id", "alice/x", "--public"])
    assert hub_cli.run(args) == 0
    assert api.calls[0][2]["private"] is False
    with pytest.raises(HubError, match="owner/name"):
        hub_cli.run(parse(["--model-name-or-path", str(trained["full"]), "--repo-id", "bad"]))


# ----- datasets and metrics ------------------------------------------------------------------------------------
def _hash_embedder(texts):
    """Fast deterministic stand-in for SBERT (the statistics' plumbing, not their values, is under test)."""
    import hashlib

    import numpy as np

    return np.array([list(hashlib.sha256(t.encode()).digest()[:16]) for t in texts], dtype=float)


STORY = [
    {
        "id": "s1",
        "prompt": "A door appears in the desert.",
        "candidates": ["It was blue.", "Nobody saw it open."],
    },
    {
        "id": "s2",
        "prompt": "The last train never arrives.",
        "candidates": ["We waited.", "The clock ran back.", "A dog barked twice."],
    },
]
PARQUET = "data/{}-00000-of-00001.parquet"


def _read_back(folder, splits):
    import datasets

    files = {s: str(folder / PARQUET.format(s)) for s in splits}
    return datasets.load_dataset("parquet", data_files=files, cache_dir=str(folder.parent / "hf_cache"))


def test_save_dataset_builtin_dialogue(tmp_path):
    from huggingface_hub import DatasetCard

    from peft_diversity.data import load_one_to_many

    out = hub.save_dataset_for_hub(
        "builtin:dialogue", tmp_path / "ds", embedder=_hash_embedder, repo_id="alice/otm-dialogue"
    )
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == {
        "README.md",
        PARQUET.format("train"),
        PARQUET.format("test"),
        hub.SAVE_MARKER,
    }
    assert not list(tmp_path.glob(".ds-*"))
    loaded = _read_back(out, ("train", "test"))
    for split in ("train", "test"):
        records = load_one_to_many("builtin:dialogue", split=split)
        rows = loaded[split]
        assert len(rows) == len(records)
        assert sum(map(len, rows["candidates"])) == sum(len(r["candidates"]) for r in records)
        assert rows[0]["context"] == records[0]["context"] and rows[0]["id"] == records[0]["id"]
    card = DatasetCard.load(out / "README.md")
    data = card.data.to_dict()
    assert data["configs"] == [
        {
            "config_name": "default",
            "data_files": [
                {"split": "train", "path": PARQUET.format("train")},
                {"split": "test", "path": PARQUET.format("test")},
            ],
        }
    ]
    assert data["license"] == "cc-by-4.0"
    from peft_diversity.datacard import dataset_stats

    train_stats = dataset_stats(load_one_to_many("builtin:dialogue", split="train"), _hash_embedder)
    text = card.text
    for snippet in (
        "within context cosine mean",
        f"| train | {train_stats['contexts']} |",
        str(train_stats["within_context_cosine_mean"]),
        "builtin:dialogue",
        "{speaker: string",
        'load_dataset("alice/otm-dialogue")',
        "cc-by-4.0",
    ):
        assert snippet in text, snippet
    # the folder itself loads as a dataset through the card's configs
    import datasets

    assert datasets.load_dataset(str(out), cache_dir=str(tmp_path / "c"))["test"].num_rows == len(
        load_one_to_many("builtin:dialogue", "test")
    )


def test_save_dataset_story_jsonl_missing_split(tmp_path, caplog):
    src = tmp_path / "story"
    src.mkdir()
    (src / "train.jsonl").write_text("\n".join(json.dumps(r) for r in STORY) + "\n")
    with caplog.at_level("INFO", logger="peft_diversity.hub"):
        out = hub.save_dataset_for_hub(
            src, tmp_path / "ds", embedder=_hash_embedder, pretty_name="Tiny stories"
        )
    assert "'test' split, skipped" in caplog.text
    assert not (out / PARQUET.format("test")).exists()
    rows = _read_back(out, ("train",))["train"]
    assert rows.column_names == ["id", "prompt", "candidates"] and rows["prompt"][0] == STORY[0]["prompt"]
    assert sum(map(len, rows["candidates"])) == 5
    text = (out / "README.md").read_text()
    assert "# Tiny stories" in text and "| `prompt` | string |" in text and "test-00000" not in text
    with pytest.raises(HubError, match="none of the splits"):
        hub.save_dataset_for_hub(src, tmp_path / "none", splits=("validation",), embedder=_hash_embedder)
    assert not (tmp_path / "none").exists()


def test_save_dataset_mixed_contexts_one_schema(tmp_path):
    records = [
        {"id": "1", "context": "Hi there", "candidates": ["Hello!", "Who are you?"]},
        {"id": "2", "context": [{"speaker": "A", "text": "Lunch?"}, "Sure"], "candidates": ["Pizza", "No"]},
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))
    out = hub.save_dataset_for_hub(path, tmp_path / "ds", embedder=_hash_embedder)
    rows = _read_back(out, ("train",))["train"]
    assert rows["context"] == [
        [{"speaker": "", "text": "Hi there"}],
        [{"speaker": "A", "text": "Lunch?"}, {"speaker": "", "text": "Sure"}],
    ]


def test_push_dataset_private_by_default(logged_in, capsys):
    api = RecordingApi()
    hub.push_dataset("builtin:story", "alice/otm-story", api=api, embedder=_hash_embedder)
    (create, repo, kwargs), (upload, repo2, up) = api.calls
    assert (create, repo, upload, repo2) == (
        "create_repo",
        "alice/otm-story",
        "upload_folder",
        "alice/otm-story",
    )
    assert kwargs == {"private": True, "exist_ok": True, "repo_type": "dataset"}
    assert up["repo_type"] == "dataset" and up["commit_message"]
    assert set(api.uploaded) == {"README.md", PARQUET.format("train"), PARQUET.format("test")}
    assert b'load_dataset("alice/otm-story")' in api.uploaded["README.md"]
    out = capsys.readouterr()
    assert "hf_secret_test_token" not in out.out + out.err

    api = RecordingApi()
    hub.push_dataset(
        "builtin:story", "alice/otm-story", api=api, private=False, splits=("test",), embedder=_hash_embedder
    )
    assert api.calls[0][2]["private"] is False and set(api.uploaded) == {"README.md", PARQUET.format("test")}


@pytest.fixture
def logged_out(monkeypatch, tmp_path):
    import huggingface_hub

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)


def test_push_dataset_and_metric_without_token(logged_out):
    api = RecordingApi()
    with pytest.raises(HubError, match="hf auth login"):
        hub.push_dataset("builtin:story", "alice/otm-story", api=api)
    with pytest.raises(HubError, match="hf auth login"):
        hub.push_metric("vendi", "alice/vendi", api=api)
    assert api.calls == []


@pytest.mark.parametrize("repo_id", ["no-owner", "a/b/c", "alice/bad name", ""])
def test_push_dataset_and_metric_malformed_repo_id(repo_id):
    api = RecordingApi()
    with pytest.raises(HubError, match="repo id"):
        hub.push_dataset("builtin:story", repo_id, api=api, token="hf_x")
    with pytest.raises(HubError, match="repo id"):
        hub.push_metric("vendi", repo_id, api=api, token="hf_x")
    assert api.calls == []


@pytest.mark.parametrize("name", ["vendi", "self_bleu"])
def test_push_metric_space(name, logged_in):
    api = RecordingApi()
    hub.push_metric(name, f"alice/{name}", api=api)
    (create, repo, kwargs), (upload, repo2, up) = api.calls
    assert (create, repo, upload, repo2) == ("create_repo", f"alice/{name}", "upload_folder", f"alice/{name}")
    assert kwargs == {"repo_type": "space", "space_sdk": "gradio", "private": False, "exist_ok": True}
    assert up["repo_type"] == "space"
    assert {f"{name}.py", "README.md", "app.py", "requirements.txt"} <= set(api.uploaded)
    assert {
        "peft_diversity/__init__.py",
        "peft_diversity/errors.py",
        "peft_diversity/scoring/__init__.py",
    } <= set(api.uploaded)
    assert b"sdk: gradio" in api.uploaded["README.md"]


def test_staged_space_runs_its_metric_from_its_own_files(tmp_path):
    """What a Space does: import the vendored scoring code from its own folder and load the script by path."""
    from peft_diversity.hub.space import stage_metric_space

    space = stage_metric_space("self_bleu", tmp_path / "space")
    # forget the copy this environment's start-up hook imported: a Space has only its own files
    code = (
        "import sys; [sys.modules.pop(m) for m in list(sys.modules) if m.startswith('peft_diversity')]; "
        "import evaluate, peft_diversity.scoring as s, json; "
        "m = evaluate.load('self_bleu.py').compute(predictions=[['a b c d', 'a b c d']]); "
        "print(json.dumps([s.__file__, m['self_bleu']]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=space,
        env={**env, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    origin, value = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(origin).resolve().is_relative_to(space.resolve()) and value == pytest.approx(1.0)
    assert "evaluate" in (space / "requirements.txt").read_text()


def test_push_metric_unknown_name(logged_in):
    from peft_diversity.evaluate_hook import METRIC_NAMES

    api = RecordingApi()
    with pytest.raises(HubError, match="unknown metric 'bleu'") as err:
        hub.push_metric("bleu", "alice/bleu", api=api)
    assert all(name in str(err.value) for name in METRIC_NAMES)
    with pytest.raises(HubError, match="unknown metric"):
        hub.push_metric("nope", "bad id", api=api, token=None)  # name checked before anything else
    assert api.calls == []


def test_cli_push_dataset_and_metric(logged_in, monkeypatch, tmp_path):
    from peft_diversity.hub import cli as hub_cli

    def parse(argv):
        return hub_cli.make_parser().parse_args_into_dataclasses(argv)[0]

    monkeypatch.setattr("peft_diversity.scoring.embeddings.load_embedder", lambda *a, **k: _hash_embedder)
    args = parse(
        [
            "--dataset-name",
            "builtin:story",
            "--repo-id",
            "alice/s",
            "--save-only",
            str(tmp_path / "folder"),
            "--splits",
            "test",
        ]
    )
    assert hub_cli.run(args) == 0
    assert (tmp_path / "folder" / PARQUET.format("test")).is_file()

    api = RecordingApi()
    monkeypatch.setattr("huggingface_hub.HfApi", lambda token=None: api)
    assert hub_cli.run(parse(["--dataset-name", "builtin:story", "--repo-id", "alice/s"])) == 0
    assert api.calls[0][2] == {"private": True, "exist_ok": True, "repo_type": "dataset"}
    api.calls.clear()
    assert hub_cli.run(parse(["--metric", "vendi", "--repo-id", "alice/vendi"])) == 0
    assert api.calls[0][2]["repo_type"] == "space" and "vendi.py" in api.uploaded
    with pytest.raises(HubError, match="unknown metric"):
        hub_cli.run(parse(["--metric", "bleu", "--repo-id", "alice/bleu"]))
    # exactly one of --model-name-or-path / --dataset-name / --metric
    with pytest.raises(HubError, match=r"exactly one of .*\(got --dataset-name, --metric\)"):
        parse(["--metric", "vendi", "--dataset-name", "builtin:story", "--repo-id", "alice/x"])
    with pytest.raises(HubError, match=r"exactly one of .*\(got none\)"):
        parse(["--repo-id", "alice/x"])


# ----- --save-only never loses data ----------------------------------------------------------------------------
def test_save_only_refuses_a_folder_it_did_not_write(trained, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(HubError, match="not written by"):
        hub.save_for_hub(trained["full"], mine)
    with pytest.raises(HubError, match="not written by"):
        hub.save_dataset_for_hub("builtin:story", mine, embedder=_hash_embedder)
    assert (mine / "thesis.tex").read_text() == "years of work" and len(list(mine.iterdir())) == 1
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep")
    with pytest.raises(HubError, match="not a folder"):
        hub.save_for_hub(trained["full"], a_file)
    assert a_file.read_text() == "keep"


def test_save_only_never_replaces_the_model_folder(trained, tmp_path):
    before = sorted(p.name for p in trained["full"].iterdir())
    for out in (trained["full"], trained["full"].parent):
        with pytest.raises(HubError, match="would delete the input"):
            hub.save_for_hub(trained["full"], out)
    assert sorted(p.name for p in trained["full"].iterdir()) == before


def test_save_only_rerun_replaces_its_own_output_and_empty_folders(trained, tmp_path):
    out = tmp_path / "upload"
    out.mkdir()  # empty: nothing to lose
    hub.save_for_hub(trained["full"], out)
    assert (out / hub.SAVE_MARKER).is_file()
    (out / "stale.txt").write_text("from an earlier run")
    hub.save_for_hub(trained["full"], out)  # a previous output of the same command: replaced
    assert not (out / "stale.txt").exists() and (out / "README.md").is_file()


def test_cli_save_only_refusal_is_one_line(trained, tmp_path, capsys):
    from peft_diversity.cli import main

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("x")
    code = main(
        [
            "push",
            "--model-name-or-path",
            str(trained["full"]),
            "--repo-id",
            "alice/x",
            "--save-only",
            str(mine),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "refusing" in err and "Traceback" not in err
    assert (mine / "keep.txt").read_text() == "x"


def test_pushed_folder_carries_no_marker(trained, logged_in):
    api = RecordingApi()
    hub.push_model(trained["full"], "alice/x", api=api)
    assert hub.SAVE_MARKER not in api.uploaded


class FailingApi(RecordingApi):
    def __init__(self, error):
        super().__init__()
        self.error = error

    def create_repo(self, repo_id, **kwargs):
        raise self.error


def _http_error(status):
    from types import SimpleNamespace

    from huggingface_hub.errors import HfHubHTTPError

    response = SimpleNamespace(
        status_code=status, headers={}, request=None
    )  # the fields HfHubHTTPError reads
    return HfHubHTTPError(
        f"{status} Client Error: for url https://huggingface.co/api/repos/create", response=response
    )


@pytest.mark.parametrize(
    ("make_error", "message"),
    [
        (lambda: _http_error(401), r"HTTP 401.*invalid or expired"),
        (lambda: _http_error(403), r"HTTP 403.*may not write"),
        (lambda: _http_error(429), r"HTTP 429.*quota"),
        (lambda: ConnectionError("Name or service not known"), "cannot reach the Hub"),
        (lambda: __import__("huggingface_hub").errors.OfflineModeIsEnabled("offline"), "HF_HUB_OFFLINE"),
    ],
)
def test_push_network_and_auth_errors_are_one_line(
    trained, logged_in, monkeypatch, capsys, make_error, message
):
    import re

    from peft_diversity.cli import main

    monkeypatch.setattr("huggingface_hub.HfApi", lambda token=None: FailingApi(make_error()))
    for argv in (
        ["--model-name-or-path", str(trained["full"])],
        ["--dataset-name", "builtin:story", "--splits", "test"],
    ):
        if "--dataset-name" in argv:
            monkeypatch.setattr(
                "peft_diversity.scoring.embeddings.load_embedder", lambda *a, **k: _hash_embedder
            )
        assert main(["push", *argv, "--repo-id", "alice/x"]) == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("peft-diversity push:")]
        assert len(lines) == 1 and re.search(message, lines[0]) and "Traceback" not in err, err


def test_push_bad_results_file_is_one_line(trained, tmp_path, capsys):
    from peft_diversity.cli import main

    bad = tmp_path / "results.json"
    bad.write_text("{not json")
    assert (
        main(
            [
                "push",
                "--model-name-or-path",
                str(trained["full"]),
                "--repo-id",
                "alice/x",
                "--results",
                str(bad),
                "--save-only",
                str(tmp_path / "up"),
            ]
        )
        == 2
    )
    assert "not a readable results.json" in capsys.readouterr().err


# ----- issue 19: splits, pickles, temp folders, modes ------------------------------------------------------------
def test_save_dataset_refuses_split_names_that_are_paths(tmp_path):
    out = tmp_path / "deep" / "upload"
    for splits in (("train", "../../x"), ("a/b",), (".",), ()):
        with pytest.raises(HubError, match="split name"):
            hub.save_dataset_for_hub("builtin:story", out, splits=splits, embedder=_hash_embedder)
    assert hub.split_names(" train, test ,") == ("train", "test") and hub.split_names("test.v1") == (
        "test.v1",
    )
    assert not list(tmp_path.rglob("*.parquet")) and not out.exists()


def _pickled_copy(trained, tmp_path, keep_safetensors):
    from safetensors.torch import load_file

    folder = tmp_path / ("both" if keep_safetensors else "pickled")
    folder.mkdir()
    for path in trained["full"].iterdir():
        if path.is_file() and (keep_safetensors or path.suffix != ".safetensors"):
            (folder / path.name).write_bytes(path.read_bytes())
    torch.save(load_file(trained["full"] / "model.safetensors"), folder / "pytorch_model.bin")
    return folder


def test_push_refuses_pickle_only_weights_and_never_uploads_a_pickle(trained, tmp_path, capsys):
    from peft_diversity.cli import main

    pickled = _pickled_copy(trained, tmp_path, keep_safetensors=False)
    with pytest.raises(HubError, match=r"pytorch_model\.bin: pickled weights; only safetensors"):
        hub.save_for_hub(pickled, tmp_path / "up")
    assert (
        main(
            [
                "push",
                "--model-name-or-path",
                str(pickled),
                "--repo-id",
                "alice/x",
                "--save-only",
                str(tmp_path / "up"),
            ]
        )
        == 2
    )
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not (tmp_path / "up").exists()
    both = _pickled_copy(trained, tmp_path, keep_safetensors=True)  # a pickled duplicate beside safetensors
    out = hub.save_for_hub(both, tmp_path / "up2")
    assert (out / "model.safetensors").is_file() and not (out / "pytorch_model.bin").exists()


def test_generate_refuses_pickle_only_weights(trained, tmp_path):
    from peft_diversity.errors import ModelLoadError
    from peft_diversity.models.loading import load_model_and_tokenizer

    with pytest.raises(ModelLoadError, match=r"pytorch_model\.bin: pickled weights; only safetensors"):
        load_model_and_tokenizer(str(_pickled_copy(trained, tmp_path, keep_safetensors=False)))


def test_upload_folder_gets_umask_permissions(trained, tmp_path):
    previous = os.umask(0o027)
    try:
        out = hub.save_for_hub(trained["full"], tmp_path / "upload")
    finally:
        os.umask(previous)
    assert out.stat().st_mode & 0o777 == 0o750  # as mkdir under that umask; mkdtemp gave 0o700


def test_killed_save_only_leaves_no_temp_folder_for_good(trained, tmp_path):
    """A SIGKILL inside the temp folder leaves it; the next run on the same output removes it, and leaves alone
    the temp folder of a live process."""
    import signal

    out = tmp_path / "up"
    code = (
        "import os, signal, sys\nfrom peft_diversity.atomic import atomic_directory\n"
        "with atomic_directory(sys.argv[1]) as tmp:\n    (tmp / 'half.bin').write_bytes(b'x')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    left = list(tmp_path.glob(".up.partial-*"))
    assert len(left) == 1 and (left[0] / "half.bin").is_file()  # what a kill leaves: found by name
    from peft_diversity.atomic import TEMP_DIR_TAG, _host

    live = tmp_path / f".up{TEMP_DIR_TAG}{_host()}-{os.getpid()}-0000abcd"  # this test's own (live) process
    live.mkdir()
    other_host = tmp_path / f".up{TEMP_DIR_TAG}elsewhere-1-0000abcd"
    other_host.mkdir()
    hub.save_for_hub(trained["full"], out)
    assert (
        sorted(tmp_path.glob(".up.partial-*")) == sorted([live, other_host]) and (out / "README.md").is_file()
    )
