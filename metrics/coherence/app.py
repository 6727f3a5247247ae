"""Gradio widget of the coherence module (the app of its Hugging Face Space)."""

import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("coherence")
launch_gradio_widget(module)
