"""Gradio widget of the diversity_sim module (the app of its Hugging Face Space).

Loaded from the script beside this file, so the Space needs no Hub look-up; the `peft_diversity` scoring code it
imports is uploaded with it by `peft-diversity push --metric diversity_sim`.
"""

from pathlib import Path

import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load(str(Path(__file__).with_name("diversity_sim.py")))
launch_gradio_widget(module)
