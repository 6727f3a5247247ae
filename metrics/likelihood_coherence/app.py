"""Gradio widget of the likelihood_coherence module (the app of its Hugging Face Space).

Loaded from the script beside this file, so the Space needs no Hub look-up; the `peft_diversity` scoring code it
imports is uploaded with it by `peft-diversity push --metric likelihood_coherence`.
"""

from pathlib import Path

import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load(str(Path(__file__).with_name("likelihood_coherence.py")))
launch_gradio_widget(module)
