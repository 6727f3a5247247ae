"""Train a PoExFT (or OTM / OTO baseline) model from a YAML recipe.

    accelerate launch recipes/sft_peft.py --config recipes/minilm-decoder/poexft/config_dialogue.yaml
    accelerate launch --config_file recipes/accelerate_configs/multi_gpu.yaml \
        recipes/sft_peft.py --config recipes/qwen2.5-0.5b/poexft/config_lora.yaml

Any field of the YAML can be overridden on the command line (`--mode otm --output_dir out/otm`).
"""

from peft_diversity.cli import setup_logging
from peft_diversity.trainer.cli import make_parser, run_training


def main() -> None:
    setup_logging()  # as `peft-diversity train` does
    script_args, training_args, model_args = make_parser().parse_args_and_config()
    run_training(script_args, training_args, model_args)


if __name__ == "__main__":
    main()
