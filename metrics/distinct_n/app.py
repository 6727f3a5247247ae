"""Gradio widget of the distinct_n module (the app of its Hugging Face Space)."""

import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("distinct_n")
launch_gradio_widget(module)
