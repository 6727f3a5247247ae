"""Gradio widget of the vendi module (the app of its Hugging Face Space).

Loaded from the script beside this file, so the Space needs no Hub look-up; the `peft_diversity` scoring code it
imports is uploaded with it by `peft-diversity push --metric vendi`.
"""

from pathlib import Path

import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load(str(Path(__file__).with_name("vendi.py")))
launch_gradio_widget(module)
