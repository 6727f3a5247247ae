"""Gradio widget of the demographic_bias module (the app of its Hugging Face Space)."""

import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("demographic_bias")
launch_gradio_widget(module)
