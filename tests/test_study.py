"""The multi-seed frontier study: per-run generation seeds, the temperature sweep, the two-level bootstrap,
the equal-coherence comparison, and a 2-seed x 2-temperature experiment end to end on a tiny model."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import yaml

from peft_diversity.errors import ExperimentConfigError, ScoringInputError
from peft_diversity.experiment.config import ExperimentConfig
from peft_diversity.experiment.frontier import (
    compare_at_equal_coherence,
    gaps_at_equal_coherence,
    interpolate_at,
    verdict,
)
from peft_diversity.experiment.runs import context_seed, generation_seed
from peft_diversity.scoring.paired import (
    paired_bootstrap,
    two_level_indices,
    two_level_means,
    two_level_paired_bootstrap,
)

SWEEP_RUNS = [
    {"model": "base", "decoder": "sampling"},
    {"model": "oto", "decoder": "sampling"},
    {"model": "poexft", "decoder": "possibilities"},
]


def _minimal(**overrides) -> dict:
    config = {"name": "x", "base_model": "m", "dataset": "builtin:dialogue", "runs": SWEEP_RUNS}
    config.update(overrides)
    return config


# ----- generation seeds and the sweep ------------------------------------------------------------------------------
def test_each_run_gets_its_own_stable_generation_seed():
    seeds = {name: generation_seed(42, name) for name in ("base__sampling", "oto__sampling", "otm__sampling")}
    assert len(set(seeds.values())) == 3  # base / OTO / OTM no longer draw with one seed
    assert generation_seed(42, "oto__sampling") == seeds["oto__sampling"]  # a re-run draws the same
    assert (
        generation_seed(43, "oto__sampling") != seeds["oto__sampling"]
    )  # another training seed, other draws
    # the documented derivation: first 4 bytes of sha256("<seed>:<run name>"), big-endian
    import hashlib

    assert seeds["base__sampling"] == int.from_bytes(hashlib.sha256(b"42:base__sampling").digest()[:4], "big")


def test_sweep_expands_every_sampling_run_into_named_runs():
    runs = [
        *SWEEP_RUNS,
        {"model": "base", "decoder": "diverse_beam"},
        {"model": "base", "decoder": "listing", "settings": {"temperature": 1.0}},
    ]
    config = ExperimentConfig.from_dict(
        _minimal(runs=runs, modes=["poexft", "oto"], sweep={"temperature": [0.6, 1.2]})
    )
    assert [r.name for r in config.runs] == [
        "base__sampling@t=0.6",
        "base__sampling@t=1.2",
        "oto__sampling@t=0.6",
        "oto__sampling@t=1.2",
        "poexft__possibilities@t=0.6",
        "poexft__possibilities@t=1.2",
        "base__diverse_beam",  # deterministic: one run
        "base__listing",  # pins its own temperature: one run
    ]
    assert config.runs[1].variant == {"temperature": 1.2} and config.runs[1].method == "base__sampling"
    # expanding again (a config rebuilt from its own fields) changes nothing
    from dataclasses import asdict

    again = ExperimentConfig.from_dict(asdict(config))
    assert [r.name for r in again.runs] == [r.name for r in config.runs]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sweep": {"temperature": [0.6], "top_p": [0.9]}}, "ONE sampling setting"),
        ({"sweep": {"max_new_tokens": [4, 8]}}, "'max_new_tokens' is not a sampling setting"),
        ({"sweep": {"temperature": []}}, "non-empty list of numbers"),
        ({"sweep": {"temperature": [0.8, 0.8]}}, "repeats a value"),
        ({"seeds": [1, 2], "seed": 3}, "not both"),
        ({"seeds": [1, 1]}, "must not repeat"),
        ({"seeds": "1"}, "seeds: must be a list of"),  # the generic type check (experiment/checks.py)
        ({"coherence_metric": "fluency"}, "coherence_metric 'fluency' is not a metric"),
        ({"runs": [*SWEEP_RUNS, {"model": "base", "decoder": "sampling"}]}, "listed twice"),
    ],
)
def test_bad_study_keys_fail_before_training(change, message):
    with pytest.raises(ExperimentConfigError, match=message):
        ExperimentConfig.from_dict(_minimal(modes=["poexft", "oto"], **change))


def test_extends_merges_train_settings_and_replaces_other_keys(tmp_path):
    (tmp_path / "base.yaml").write_text(
        yaml.safe_dump(
            _minimal(
                modes=["poexft", "oto"],
                train={"ul_weight": 0.5, "num_candidates": 4},
                generation={"top_p": 0.9},
                seeds=[1, 2],
            )
        )
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "variant.yaml").write_text(
        "extends: ../base.yaml\nname: y\ntrain: {ul_weight: 1.0}\nmodes: [poexft]\n"
        "runs: [{model: poexft, decoder: possibilities}]\n"
    )
    config = ExperimentConfig.from_yaml(tmp_path / "sub" / "variant.yaml")
    assert config.name == "y" and config.train == {"ul_weight": 1.0, "num_candidates": 4}
    assert config.generation == {"top_p": 0.9} and config.seeds == [1, 2] and config.modes == ["poexft"]
    assert [r.name for r in config.runs] == ["poexft__possibilities"]
    (tmp_path / "loop.yaml").write_text("extends: loop.yaml\nname: z\n")
    with pytest.raises(ExperimentConfigError, match="'extends' loops back"):
        ExperimentConfig.from_yaml(tmp_path / "loop.yaml")
    (tmp_path / "missing.yaml").write_text("extends: nowhere.yaml\n")
    with pytest.raises(ExperimentConfigError, match="nowhere.yaml: cannot read"):
        ExperimentConfig.from_yaml(tmp_path / "missing.yaml")


def test_study_recipes_are_the_papers_regime_and_variants_change_one_thing():
    from dataclasses import asdict

    from peft_diversity.assets import asset_path

    folder = asset_path("recipes") / "experiments"
    for task in ("dialogue", "story"):
        study = ExperimentConfig.from_yaml(folder / f"study-{task}-smollm2.yaml")
        assert study.train["max_negatives"] is None and study.train["num_train_epochs"] == 1
        assert "max_steps" not in study.train and study.train["num_candidates"] == 4 and len(study.seeds) >= 2
        assert (
            study.sweep == {"temperature": [0.6, 0.8, 1.0, 1.2]}
            and study.coherence_metric == "likelihood_coherence"
        )
        assert sorted({r.method for r in study.runs}) == [
            "base__sampling",
            "otm__sampling",
            "oto__sampling",
            "poexft__possibilities",
        ]
        assert len(study.runs) == 16
    variants = {
        "study-dialogue-smollm2-ul1": {"ul_weight": 1.0},
        "study-dialogue-smollm2-k6": {"num_candidates": 6},
        "study-story-smollm2-ul1": {"ul_weight": 1.0},
    }
    for name, change in variants.items():
        variant = asdict(ExperimentConfig.from_yaml(folder / f"{name}.yaml"))
        study = asdict(ExperimentConfig.from_yaml(folder / f"{name.rsplit('-', 1)[0]}.yaml"))
        assert {k: v for k, v in variant["train"].items() if study["train"].get(k) != v} == change
        same = {k for k in study if study[k] == variant[k]}
        assert set(study) - same == {"name", "train", "modes", "runs"}  # only the runs (and modes) are cut


# ----- the two-level bootstrap ---------------------------------------------------------------------------------------
def test_two_level_bootstrap_sees_seeds_that_disagree():
    # seed 1: ours is +1 on every context; seed 2: -1. Pooled over contexts the mean is 0 and looks precise;
    # resampling seeds first, a bootstrap sample draws (1,1), (1,2)/(2,1) or (2,2): means +1, 0, -1.
    first, second = [[1.0] * 30, [-1.0] * 30], [[0.0] * 30, [0.0] * 30]
    two = two_level_paired_bootstrap(first, second, num_samples=4000, seed=3)
    assert two["mean_difference"] == pytest.approx(0.0, abs=1e-12)  # exact up to float summation
    assert two["interval"] == pytest.approx([-1.0, 1.0])  # both seeds' values are reached: exact
    assert two["per_seed_difference"] == pytest.approx([1.0, -1.0]) and two["num_seeds"] == 2
    one = paired_bootstrap([1.0] * 30 + [-1.0] * 30, [0.0] * 60, num_samples=4000, seed=3)
    assert one["interval"][1] - one["interval"][0] < 0.6  # pooled contexts: blind to the seed split
    assert two_level_paired_bootstrap(first, second, num_samples=4000, seed=3) == two  # fixed rng: same


def test_two_level_bootstrap_of_a_constant_gap_is_that_gap_and_means_keep_shape():
    gap = two_level_paired_bootstrap([[0.5, 0.7], [0.6, 0.8]], [[0.3, 0.5], [0.4, 0.6]], num_samples=500)
    assert gap["interval"] == pytest.approx([0.2, 0.2])  # every difference is 0.2 (up to float rounding)
    values = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)  # (metrics, seeds, contexts)
    means = two_level_means(values, two_level_indices(3, 4, num_samples=50, seed=1))
    assert means.shape == (50, 2)
    assert np.all((means >= values.min(axis=(1, 2))) & (means <= values.max(axis=(1, 2))))


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        ([[1.0, 2.0]], [[1.0, 2.0], [3.0, 4.0]], "same seeds and prompts"),
        ([[1.0, 2.0], [3.0]], [[1.0, 2.0], [3.0, 4.0]], "same number of prompts"),
        ([[]], [[]], "non-empty"),
    ],
)
def test_two_level_bootstrap_rejects_ragged_or_mismatched_scores(first, second, message):
    with pytest.raises(ScoringInputError, match=message):
        two_level_paired_bootstrap(first, second)


# ----- the frontier, on synthetic curves where the answer is known -------------------------------------------------
# a baseline curve: diversity falls linearly as coherence rises (y = 0.6 - 0.5 x on x in [0.2, 0.8])
BASE_X, BASE_Y = [0.8, 0.6, 0.4, 0.2], [0.2, 0.3, 0.4, 0.5]


def _comparison(ours_x, ours_y, noise=0.0, samples=300):
    """Means (points, 2) for ours then the baseline, and bootstrap means jittered by `noise`."""
    means = np.array([[x, y] for x, y in zip([*ours_x, *BASE_X], [*ours_y, *BASE_Y], strict=True)])
    rng = np.random.default_rng(0)
    boot = means[None] + rng.normal(0.0, noise, size=(samples, *means.shape))
    ours = list(range(len(ours_x)))
    return compare_at_equal_coherence(means, boot, ours, list(range(len(ours_x), len(means))))


def test_interpolation_reads_the_curve_inside_its_range_only():
    assert interpolate_at(BASE_X, BASE_Y, 0.5) == pytest.approx(
        0.35
    )  # halfway between (0.4, 0.4), (0.6, 0.3)
    assert interpolate_at(BASE_X, BASE_Y, 0.2) == pytest.approx(0.5)  # an end point is inside
    assert math.isnan(interpolate_at(BASE_X, BASE_Y, 0.85)) and math.isnan(
        interpolate_at(BASE_X, BASE_Y, 0.1)
    )
    gaps = gaps_at_equal_coherence([0.3, 0.9], [0.6, 0.6], BASE_X, BASE_Y)
    assert gaps[0] == pytest.approx(0.15) and math.isnan(gaps[1])


def test_a_dominated_baseline_is_beaten_by_the_known_gap():
    # ours lies 0.2 above the baseline line at every coherence
    result = _comparison([0.3, 0.5, 0.7], [0.65, 0.55, 0.45], noise=0.005)
    assert result["gap"] == pytest.approx(0.2)  # exact up to float rounding: every point is 0.2 above
    assert [p["gap"] for p in result["points"]] == pytest.approx([0.2, 0.2, 0.2])
    assert 0.15 < result["interval"][0] < 0.2 < result["interval"][1] < 0.25  # noise 0.005 per point
    assert verdict("PoExFT possibilities", "OTO sampling", result).startswith(
        "PoExFT possibilities beats OTO sampling at equal coherence by +0.200 ["
    )


def test_crossing_curves_give_no_winner_and_say_where_each_is_higher():
    # ours is above the baseline at low coherence and below it at high coherence: +0.1 then -0.1
    result = _comparison([0.3, 0.7], [0.55, 0.15], noise=0.01)
    assert [p["gap"] for p in result["points"]] == pytest.approx([0.1, -0.1])
    assert result["gap"] == pytest.approx(0.0, abs=1e-12)
    text = verdict("PoExFT possibilities", "OTO sampling", result)
    assert text.startswith("PoExFT possibilities does not beat OTO sampling at equal coherence, within ±")
    assert result["interval"][0] < 0 < result["interval"][1]
    lower = verdict(
        "PoExFT possibilities", "OTO sampling", _comparison([0.3, 0.7], [0.35, 0.15], noise=0.005)
    )
    assert "does not beat OTO sampling at equal coherence: it is lower by 0.100 [" in lower


def test_points_outside_the_baseline_range_are_not_compared():
    result = _comparison([0.5, 0.9], [0.45, 0.3], noise=0.001)
    assert [p["inside"] for p in result["points"]] == [True, False]
    assert result["points"][1]["gap"] is None and result["points"][1]["interval"] is None
    assert result["gap"] == pytest.approx(0.1) and result["num_inside"] == 1  # only the point inside counts
    assert "(1 of 2 PoExFT possibilities points inside" in verdict(
        "PoExFT possibilities", "OTO sampling", result
    )
    none = _comparison([0.9, 0.95], [0.3, 0.3])
    assert none["gap"] is None and none["interval"] is None
    assert verdict("PoExFT possibilities", "OTO sampling", none) == (
        "PoExFT possibilities cannot be compared with OTO sampling at equal coherence: its coherence "
        "[0.900, 0.950] lies outside OTO sampling's range [0.200, 0.800]."
    )


# ----- end to end: 2 seeds x 2 temperatures on a tiny llama -----------------------------------------------------
@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    from peft_diversity.data import BUNDLED
    from peft_diversity.models.tiny import tiny_model_and_tokenizer

    root = tmp_path_factory.mktemp("study")
    model, tokenizer = tiny_model_and_tokenizer("llama")
    model.save_pretrained(root / "tiny")
    tokenizer.save_pretrained(root / "tiny")
    (root / "data").mkdir()
    for split, n in (("train", 2), ("test", 2)):
        lines = (BUNDLED["dialogue"] / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()[:n]
        (root / "data" / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = {
        "name": "tiny-study",
        "base_model": str(root / "tiny"),
        "dataset": str(root / "data"),
        "modes": ["poexft", "oto"],
        "num_responses": 2,
        "seeds": [1, 2],
        "sweep": {"temperature": [0.7, 1.3]},
        "train": {
            "max_steps": 1,
            "per_device_train_batch_size": 2,
            "learning_rate": 1e-3,
            "max_length": 128,
            "num_candidates": 2,
            "max_possibility": 3,
        },
        "generation": {"max_new_tokens": 4},
        "runs": SWEEP_RUNS,
        "metrics": ["semantic_diversity", "coherence"],
    }
    path = root / "study.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_two_seed_two_temperature_study_end_to_end_and_resumable(tiny_study, tmp_path, capsys, caplog):
    from peft_diversity.cli import main

    run = tmp_path / "run"
    args = ["experiment", "--config", str(tiny_study), "--output-dir", str(run)]
    with caplog.at_level(logging.INFO):
        assert main(args) == 0
    names = [
        f"{m}@t={t}" for m in ("base__sampling", "oto__sampling", "poexft__possibilities") for t in (0.7, 1.3)
    ]
    # the score stage wrote every per-context file as it scored: no second scoring pass
    assert all(f"per-context scores {name}: done already" in caplog.text for name in names)
    for seed in (1, 2):
        folder = run / f"seed-{seed}"
        assert (folder / "models" / "poexft" / "possibility_config.json").is_file()
        assert sorted(p.stem for p in (folder / "responses").glob("*.jsonl")) == sorted(names)
        assert sorted(
            p.stem for p in (folder / "per_context").glob("*.json") if not p.name.endswith(".settings.json")
        ) == sorted(names)
        assert json.loads((folder / "models" / "oto.settings.json").read_text())["seed"] == seed
    # every (seed, run) samples with its own recorded seed, the one the documented hash gives
    drawn = {}
    for seed in (1, 2):
        for name in names:
            rows = [
                json.loads(x)
                for x in (run / f"seed-{seed}" / "responses" / f"{name}.jsonl").read_text().splitlines()
            ]
            stamp = json.loads(
                (run / f"seed-{seed}" / "responses" / f"{name}.jsonl.settings.json").read_text()
            )
            # each context its own seed: one seed for all would give row i of every context the same draw
            expected = [context_seed(generation_seed(seed, name), i) for i in range(len(rows))]
            assert [r["settings"]["seed"] for r in rows] == stamp["generation_seeds"] == expected
            assert rows[0]["settings"]["temperature"] == pytest.approx(float(name[-3:]))  # the swept value
            drawn.update({(seed, name, i): s for i, s in enumerate(expected)})
    assert len(set(drawn.values())) == len(drawn)

    report = json.loads((run / "results.json").read_text())
    assert (
        report["seeds"] == [1, 2]
        and report["num_contexts"] == 2
        and report["coherence_key"] == "coherence_relevance"
    )
    # per run, the mean over seeds of its scores; the per-context values average to the same number
    row = next(r for r in report["results"] if r["name"] == "oto__sampling@t=0.7")
    per_seed = [
        json.loads((run / f"seed-{s}" / "scores" / "oto__sampling@t=0.7.json").read_text())["scores"]
        for s in (1, 2)
    ]
    assert row["scores"]["semantic_diversity"] == pytest.approx(
        np.mean([s["semantic_diversity"] for s in per_seed])
    )
    assert row["variant"] == "t=0.7"
    point = report["points"]["oto__sampling@t=0.7"]
    assert point["diversity"] == pytest.approx(
        row["scores"]["semantic_diversity"]
    )  # float summation order only
    assert point["coherence"] == pytest.approx(row["scores"]["coherence_relevance"])
    # paired gaps: each possibilities run vs the runs at its temperature; the frontier: one comparison per baseline
    assert [(g["ours"], g["run"]) for g in report["paired"]] == [
        ("poexft__possibilities@t=0.7", "base__sampling@t=0.7"),
        ("poexft__possibilities@t=0.7", "oto__sampling@t=0.7"),
        ("poexft__possibilities@t=1.3", "base__sampling@t=1.3"),
        ("poexft__possibilities@t=1.3", "oto__sampling@t=1.3"),
    ]
    comparisons = report["frontier"]["comparisons"]
    assert [c["baseline"] for c in comparisons] == ["base__sampling", "oto__sampling"]
    assert all(c["verdict"].startswith("PoExFT possibilities ") for c in comparisons)

    text = (run / "results.md").read_text()
    for heading in (
        "## Mean over seeds [1, 2]",
        "## PoExFT possibilities minus each run: semantic diversity",
        "## The frontier: semantic diversity against coherence (`coherence_relevance`)",
        "**At equal coherence**",
    ):
        assert heading in text
    assert "| oto | sampling @t=0.7 |" in text and "(seed-1/results.md)" in text
    assert all(c["verdict"] in text for c in comparisons)
    assert (run / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run / "seed-2" / "results.md").is_file()

    # resumable: a second invocation does no stage again
    mtimes = {
        p: p.stat().st_mtime_ns
        for p in run.rglob("*")
        if p.is_file() and "per_context" in p.parts or p.suffix == ".jsonl" and "responses" in p.parts
    }
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert main(args) == 0
    log = caplog.text
    assert "redoing" not in log and "resuming" not in log
    for seed in (1, 2):
        for mode in ("poexft", "oto"):
            assert f"train {mode}: done already ({run / f'seed-{seed}'}" in log
        for name in names:
            for stage in ("generate", "score", "per-context scores"):
                assert f"{stage} {name}: done already ({run / f'seed-{seed}'}" in log
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    assert json.loads((run / "results.json").read_text()) == report  # the fixed bootstrap rng: same report

    # a missing per-context file (a run scored before the score stage wrote them) is scored again, same values
    lost = run / "seed-1" / "per_context" / "oto__sampling@t=0.7.json"
    kept = json.loads(lost.read_text())
    lost.unlink()
    assert main(args) == 0
    again = json.loads(lost.read_text())
    assert again["ids"] == kept["ids"]
    for metric in ("semantic_diversity", "coherence"):
        assert again[metric] == pytest.approx(
            kept[metric]
        )  # batched embedding sums may differ in the last bits


def test_the_coherence_metric_is_named_once_where_its_key_is_its_name():
    from peft_diversity.experiment.study import _coherence_name

    assert (
        _coherence_name({"coherence_metric": "likelihood_coherence", "coherence_key": "likelihood_coherence"})
        == "likelihood_coherence"
    )
    assert (
        _coherence_name({"coherence_metric": "coherence", "coherence_key": "coherence_relevance"}, "`")
        == "coherence (`coherence_relevance`)"
    )
