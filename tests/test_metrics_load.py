"""evaluate.load of this project's metric modules: bare name from any directory, offline, through the start-up
hook (peft_diversity/evaluate_hook.py, installed as a .pth); by path; load_metric."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from peft_diversity import evaluate_hook
from peft_diversity.errors import PeftDiversityError
from peft_diversity.evaluate_hook import PTH_LINE, PTH_NAME, load_metric, write_pth

ROOT = Path(__file__).resolve().parents[1]

LOAD_ALL = r"""
import json, sys, evaluate
from peft_diversity import load_metric
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
    "likelihood_coherence": evaluate.load("likelihood_coherence").compute(
        predictions=[["Mild, please.", "Nine."]], contexts=[["A: spicy or mild?"]], model=sys.argv[2]),
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


def _run(code: str, cwd: Path, env: dict[str, str], *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.split("RESULT", 1)[1])


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh HF cache, an unrelated cwd, and a site dir holding the start-up .pth the wheel installs."""
    tmp_path = tmp_path_factory.mktemp("evaluate_load")
    cwd, site_dir = tmp_path / "elsewhere", tmp_path / "site"
    cwd.mkdir()
    site_dir.mkdir()
    write_pth(site_dir)
    return cwd, _env(tmp_path), site_dir


def _with_site(code: str, site_dir: Path) -> str:
    """Process `site_dir`'s .pth files first, as the interpreter does for site-packages at start-up."""
    return f"import site; site.addsitedir({str(site_dir)!r})\n{code}"


def test_bare_name_load_offline_prints_no_warning(installed):
    """The user's exact command after a wheel install: no Hub look-up, no warning."""
    cwd, env, site_dir = installed
    code = 'import evaluate, json; print("RESULT" + json.dumps(evaluate.load("diversity_sim").compute(predictions=[["a b", "c d"]])))'
    proc = subprocess.run(
        [sys.executable, "-c", _with_site(code, site_dir)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 0.0 < json.loads(proc.stdout.split("RESULT", 1)[1])["semantic_diversity"] <= 2.0
    # no evaluate warning ("Using the latest cached version ...") and no Hub error; a weights-loading progress
    # bar from the embedder is all that may appear
    assert "warn" not in proc.stderr.lower() and "hub" not in proc.stderr.lower(), proc.stderr


def test_hook_never_asks_the_hub_and_leaves_other_names_alone(monkeypatch, tmp_path):
    import evaluate.loading as loading

    def no_hub(*args, **kwargs):
        raise AssertionError("Hub look-up")

    monkeypatch.setattr(loading, "HubEvaluationModuleFactory", no_hub)
    monkeypatch.setattr(loading, "evaluation_module_factory", loading.evaluation_module_factory)
    monkeypatch.chdir(tmp_path)
    evaluate_hook.patch(loading)
    assert loading.evaluation_module_factory("self_bleu").module_path  # the packaged script, no Hub
    assert evaluate_hook.packaged_script("bleu") is None  # not ours: evaluate's own rules apply
    (tmp_path / "self_bleu").mkdir()
    (tmp_path / "self_bleu" / "self_bleu.py").write_text("# the user's own module")
    assert evaluate_hook.packaged_script("self_bleu") is None  # a ./self_bleu/ folder wins, as in evaluate


def test_pth_line_matches_setup_py():
    # Read the values, not the text, so that formatting setup.py cannot break the check.
    tree = ast.parse((ROOT / "setup.py").read_text())
    values = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id.startswith("PTH_")
    }
    assert values == {"PTH_NAME": PTH_NAME, "PTH_LINE": PTH_LINE}


def test_hook_can_be_turned_off(installed):
    cwd, env, site_dir = installed
    code = "import sys; import evaluate.loading as l; print('RESULT' + str(getattr(l.evaluation_module_factory, '_peft_diversity', False)).lower())"
    assert _run(_with_site(code, site_dir), cwd, env) is True
    assert _run(_with_site(code, site_dir), cwd, {**env, "PEFT_DIVERSITY_EVALUATE_HOOK": "0"}) is False


def test_hook_is_small_at_start_up_and_leaves_no_finder_behind(installed):
    """It runs in every interpreter: start-up imports nothing heavy, and once evaluate.loading is wrapped the
    import system is as it was."""
    cwd, env, site_dir = installed
    code = (
        "import json, site, sys; before = set(sys.modules); site.addsitedir(sys.argv[1]); "
        "print('RESULT' + json.dumps(sorted(set(sys.modules) - before)))"
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code, str(site_dir)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )  # -S: nothing else at start-up, so only the .pth's imports are new
    assert proc.returncode == 0, proc.stderr[-3000:]
    new = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert "peft_diversity.evaluate_hook" in new
    assert not {"pathlib", "importlib.abc", "importlib.util", "functools", "evaluate"} & set(new), new
    code = "import json, sys; import evaluate.loading; print('RESULT' + json.dumps([type(f).__name__ for f in sys.meta_path]))"
    assert "_PatchOnImport" not in _run(_with_site(code, site_dir), cwd, env)


def test_load_metric_rejects_unknown_names():
    with pytest.raises(PeftDiversityError, match="unknown metric 'bleu'"):
        load_metric("bleu")


def test_all_metrics_load_by_bare_name_and_path(installed, tiny_dir):
    cwd, env, site_dir = installed
    out = _run(
        _with_site(LOAD_ALL, site_dir),
        cwd,
        {**env, "HF_EVALUATE_OFFLINE": "1"},
        str(ROOT / "metrics"),
        str(tiny_dir),
    )
    assert out["diversity_sim"]["semantic_diversity"] == pytest.approx(0.0, abs=1e-9)
    assert out["self_bleu"]["self_bleu"] == pytest.approx(1.0)
    assert out["distinct_n"]["distinct_1"] == pytest.approx(0.75)
    assert out["vendi"]["vendi_score"] == pytest.approx(2.0)
    assert out["distinct_k"]["distinct_k"] == 2.0
    assert out["coherence"]["coherence_rating"] == 8.0
    assert -1.0 <= out["coherence_turns"]["coherence_relevance"] <= 1.0
    likelihood = out["likelihood_coherence"]
    assert likelihood["num_prompts"] == 1 and likelihood["likelihood_fluency"] < 0  # a mean log-probability
    assert likelihood["likelihood_coherence"] == pytest.approx(
        likelihood["likelihood_pmi"], abs=1e-12
    )  # weight 0
    assert out["demographic_bias"]["entropy"] == pytest.approx(0.9182958340544896)
    assert out["by_path"]["semantic_diversity"] == pytest.approx(0.0, abs=1e-9)
    assert out["load_metric"]["self_bleu"] == pytest.approx(1.0)


@pytest.mark.parametrize(("predictions", "contexts"), [(["a flat list"], ["x"]), ([["a"]], [1])])
def test_coherence_wrong_shape_is_one_line_naming_the_fields(predictions, contexts):
    metric = load_metric("coherence")
    with pytest.raises(ValueError) as err:  # was KeyError: 'references' from inside evaluate
        metric.compute(
            predictions=predictions, contexts=contexts, method="judge", judge=lambda c: ["Rating: 8"] * len(c)
        )
    message = str(err.value)
    assert "\n" not in message and "predictions = one list of response strings per prompt" in message
    assert "contexts = one string (or list of turn strings) per prompt" in message
