"""Tasks as named templates: each shipped task config trains 2 steps and generates, on a tiny model.

The configs are the real files in recipes/minilm-decoder/poexft/ (their task, instruction, data and sentences), with only
the model, the step count and the output folder swapped for a test-sized run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from peft_diversity.data import load_one_to_many
from peft_diversity.errors import ExperimentConfigError, GenerationError
from peft_diversity.experiment.config import ExperimentConfig
from peft_diversity.experiment.runner import generate_run
from peft_diversity.generation.cli import main as generate_main
from peft_diversity.generation.cli import requested_template
from peft_diversity.generation.decoders import generate_responses
from peft_diversity.models.loading import load_model_and_tokenizer
from peft_diversity.templates import TEMPLATE_FILENAME, PossibilityTemplate, TemplateError
from peft_diversity.trainer.cli import make_parser, run_training

CONFIGS = Path(__file__).parent.parent / "recipes" / "minilm-decoder" / "poexft"
TASK_CONFIGS = {
    "dialogue": "config_dialogue.yaml",
    "story": "config_story.yaml",
    "custom": "config_custom.yaml",
}
TEST_OVERRIDES = {
    "max_steps": 2,
    "per_device_train_batch_size": 1,
    "max_length": 96,
    "logging_steps": 1,
    "warmup_steps": 0,
    "use_cpu": True,
    "disable_tqdm": True,
    "lora_r": 4,
    "lora_alpha": 8,
}


def shipped_config(task: str) -> dict:
    return yaml.safe_load((CONFIGS / TASK_CONFIGS[task]).read_text(encoding="utf-8"))


@pytest.mark.parametrize("task", list(TASK_CONFIGS))
def test_each_task_config_trains_two_steps_and_generates(task, tiny_dir, tmp_path):
    config = {
        **shipped_config(task),
        **TEST_OVERRIDES,
        "model_name_or_path": str(tiny_dir),
        "output_dir": str(tmp_path / "out"),
    }
    assert config["task"] == task
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(config), encoding="utf-8")
    script_args, training_args, model_args = make_parser().parse_args_and_config(
        args=["--config", str(recipe)]
    )
    trainer = run_training(script_args, training_args, model_args)
    assert trainer.state.global_step == 2
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 2 and all(loss == loss and loss > 0 for loss in losses)  # logged, finite, not NaN

    saved = json.loads((tmp_path / "out" / TEMPLATE_FILENAME).read_text(encoding="utf-8"))
    assert saved["task"] == task
    expected = PossibilityTemplate(task=task, instruction=config.get("instruction"))
    assert saved["instruction"] == expected.instruction

    held_out = load_one_to_many(config["dataset_name"], split="test")[0]
    model, tokenizer = load_model_and_tokenizer(str(tmp_path / "out"), dtype="float32")
    result = generate_responses(
        "possibilities",
        model,
        tokenizer,
        held_out,
        num_responses=3,
        max_new_tokens=4,
        temperature=0.0,
        template=str(tmp_path / "out"),
    )
    assert result.possibilities == [1, 2, 3] and len(result.texts) == 3
    template = PossibilityTemplate.from_dict(saved)
    prompt = template.prompt_text(tokenizer, held_out, 2)
    # the task wording with the input in place, then the possibility sentence, last
    body = template.instruction.replace("{input}", template.render_input(held_out))
    assert body in prompt and prompt.index(body) < prompt.index("possibility number #2")


def test_custom_instruction_gets_the_possibility_sentence_appended():
    template = PossibilityTemplate(task="custom", instruction="Name a dish made from {input}.")
    message = template.user_message({"prompt": "lentils"}, 7)
    assert message.startswith("Name a dish made from lentils.\n\n")
    assert message.endswith("corresponds to possibility number #7.")
    with pytest.raises(TemplateError, match="custom"):
        PossibilityTemplate(task="custom")


def _cli_args(**values) -> argparse.Namespace:
    return argparse.Namespace(**{"task": None, "instruction": None, "model_name_or_path": "m", **values})


def test_generate_cli_task_flags_build_the_template_or_fail_clearly():
    assert requested_template(_cli_args()) is None
    assert requested_template(_cli_args(task="story")).task == "story"
    custom = requested_template(_cli_args(instruction="Summarise: {input}"))
    assert custom.task == "custom" and custom.instruction == "Summarise: {input}"
    with pytest.raises(GenerationError, match="--instruction makes a custom task"):
        requested_template(_cli_args(task="story", instruction="x {input}"))
    with pytest.raises(TemplateError, match="custom"):
        requested_template(_cli_args(task="custom"))


def test_generate_cli_task_wording_on_a_base_model(tiny_dir, tmp_path, capsys):
    out = tmp_path / "responses.jsonl"
    code = generate_main(
        [
            "--model-name-or-path",
            str(tiny_dir),
            "--decoder",
            "sampling",
            "--prompt",
            "A door in the sea.",
            "--instruction",
            "Premise: {input}\nOpen the novel.",
            "--num-responses",
            "2",
            "--max-new-tokens",
            "3",
            "--seed",
            "0",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    record = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert len(record["responses"]) == 2 and record["settings"]["template_task"] == "custom"
    # a trained model keeps the wording it learnt: --task on it is refused, in one line
    trained = tmp_path / "trained"
    model, tokenizer = load_model_and_tokenizer(str(tiny_dir))
    model.save_pretrained(trained)
    tokenizer.save_pretrained(trained)
    PossibilityTemplate(task="dialogue").save_pretrained(trained)
    assert generate_main(["--model-name-or-path", str(trained), "--prompt", "x", "--task", "story"]) == 2
    assert "trained with its own template" in capsys.readouterr().err


def test_experiment_base_runs_use_the_experiment_task_wording(tiny_dir, tmp_path, monkeypatch):
    instruction = "Premise: {input}\nOpen the novel."
    config = ExperimentConfig.from_dict(
        {
            "name": "story",
            "base_model": str(tiny_dir),
            "dataset": "builtin:story",
            "num_responses": 2,
            "train": {"task": "custom", "instruction": instruction},
            "modes": ["poexft"],
            "generation": {"max_new_tokens": 3},
            "runs": [{"model": "base", "decoder": "sampling"}],
        }
    )
    assert config.template().instruction == instruction
    record = load_one_to_many("builtin:story", split="test")[0]
    seen = []
    real_render = PossibilityTemplate.prompt_text

    def spy(self, tokenizer, rec, k):
        seen.append(self.instruction)
        return real_render(self, tokenizer, rec, k)

    monkeypatch.setattr(PossibilityTemplate, "prompt_text", spy)
    path = generate_run(config, config.runs[0], str(tiny_dir), [record], tmp_path, {})
    assert seen and set(seen) == {instruction}  # the base model was asked with the experiment's wording
    assert (
        json.loads(path.read_text(encoding="utf-8").splitlines()[0])["settings"]["template_task"] == "custom"
    )
    with pytest.raises(ExperimentConfigError, match="train:.*custom"):
        ExperimentConfig.from_dict(
            {
                "name": "x",
                "base_model": "m",
                "dataset": "d",
                "train": {"task": "custom"},
                "runs": [{"model": "base", "decoder": "sampling"}],
            }
        )
