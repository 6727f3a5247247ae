"""evaluate.load of this project's metric modules: bare name from any directory, offline; by path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from peft_diversity.metrics_install import METRIC_NAMES, install_metric, install_metrics, metrics_source_dir

ROOT = Path(__file__).resolve().parents[1]

LOAD_ALL = r"""
import json, sys, evaluate
from peft_diversity.metrics_install import load_metric
judge = lambda conversations: ["Rating: 8"] * len(conversations)
out = {
    "diversity_sim": evaluate.load("diversity_sim").compute(predictions=[["I love tea.", "I love tea."]]),
    "self_bleu": evaluate.load("self_bleu").compute(predictions=[["the cat sat on the mat"] * 2]),
    "distinct_n": evaluate.load("distinct_n").compute(predictions=[["a b", "a c"]], orders=[1]),
    "vendi": evaluate.load("vendi").compute(predictions=[["red apple", "blue sky"]], kernel="ngram"),
    "distinct_k": evaluate.load("distinct_k").compute(predictions=[["a cat", "a cat", "two dogs"]], method="ngram"),
    "coherence": evaluate.load("coherence").compute(
        predictions=[["Fine, thanks."]], contexts=["How are you?"], method="judge", judge=judge),
    "coherence_turns": evaluate.load("coherence").compute(
        predictions=[["Fine."], ["Yes"]], contexts=[["A: hi", "B: how are you?"], ["Q?"]]),
    "demographic_bias": evaluate.load("demographic_bias").compute(attributes=["female", "male", "unknown", "male"]),
    "by_path": evaluate.load(sys.argv[1] + "/diversity_sim").compute(predictions=[["a", "a"]]),
    "load_metric": load_metric("self_bleu").compute(predictions=[["x y z w"] * 2]),
}
print("RESULT" + json.dumps(out))
"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "XDG_CACHE"))}
    env.update(
        HF_HUB_OFFLINE="1",
        HF_HOME=str(tmp_path / "hf"),
        HF_MODULES_CACHE=str(tmp_path / "hf" / "modules"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    )
    return env


def test_install_is_idempotent_and_atomic(tmp_path):
    cache = tmp_path / "modules"
    first = install_metrics(modules_cache=cache)
    assert set(first) == set(METRIC_NAMES)
    second = install_metrics(modules_cache=cache)
    assert first == second
    for name, path in first.items():
        assert path.read_bytes() == (metrics_source_dir() / name / f"{name}.py").read_bytes()
        assert len(path.parent.name) == 64 and (path.parent / "__init__.py").exists()
        siblings = [p.name for p in path.parent.parent.iterdir()]
        assert not [s for s in siblings if s.startswith(".tmp-")]
    assert first["demographic_bias"].parent.parent.name == "evaluate-measurement--demographic_bias"
    assert first["diversity_sim"].parent.parent.name == "evaluate-metric--diversity_sim"


def test_reinstall_becomes_newest_version(tmp_path):
    cache = tmp_path / "modules"
    path = install_metric("self_bleu", cache)
    other = path.parent.parent / ("0" * 64)
    other.mkdir()
    (other / "self_bleu.py").write_text("# another version\n")
    future = path.stat().st_mtime + 100
    os.utime(other / "self_bleu.py", (future, future))
    assert install_metric("self_bleu", cache) == path
    assert path.stat().st_mtime >= future  # evaluate loads the most recently modified hash


def test_unknown_metric_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        install_metric("no_such_metric", tmp_path)


def _run(code: str, cwd: Path, env: dict[str, str], *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.split("RESULT", 1)[1])


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh HF cache with the metrics installed by the set-up command, and an unrelated cwd."""
    tmp_path = tmp_path_factory.mktemp("evaluate_load")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = _env(tmp_path)
    setup = [sys.executable, "-m", "peft_diversity.metrics_install"]
    subprocess.run(setup, cwd=cwd, env=env, check=True, capture_output=True, text=True, timeout=120)
    return cwd, env


def test_bare_name_load_with_hub_offline_only(installed):
    """The user's exact command: evaluate 0.4.6 ignores HF_HUB_OFFLINE, tries the Hub, falls back to the cache."""
    cwd, env = installed
    code = 'import evaluate, json; print("RESULT" + json.dumps(evaluate.load("diversity_sim").compute(predictions=[["a b", "c d"]])))'
    assert 0.0 < _run(code, cwd, env)["semantic_diversity"] <= 2.0


def test_all_metrics_load_by_bare_name_and_path(installed):
    cwd, env = installed
    out = _run(LOAD_ALL, cwd, {**env, "HF_EVALUATE_OFFLINE": "1"}, str(ROOT / "metrics"))
    assert out["diversity_sim"]["semantic_diversity"] == pytest.approx(0.0, abs=1e-9)
    assert out["self_bleu"]["self_bleu"] == pytest.approx(1.0)
    assert out["distinct_n"]["distinct_1"] == pytest.approx(0.75)
    assert out["vendi"]["vendi_score"] == pytest.approx(2.0)
    assert out["distinct_k"]["distinct_k"] == 2.0
    assert out["coherence"]["coherence_rating"] == 8.0
    assert -1.0 <= out["coherence_turns"]["coherence_relevance"] <= 1.0
    assert out["demographic_bias"]["entropy"] == pytest.approx(0.9182958340544896)
    assert out["by_path"]["semantic_diversity"] == pytest.approx(0.0, abs=1e-9)
    assert out["load_metric"]["self_bleu"] == pytest.approx(1.0)
