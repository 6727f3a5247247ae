"""Gradio widget of the distinct_k module (the app of its Hugging Face Space)."""

import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("distinct_k")
launch_gradio_widget(module)
