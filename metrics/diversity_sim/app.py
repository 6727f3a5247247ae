"""Gradio widget of the diversity_sim module (the app of its Hugging Face Space)."""

import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("diversity_sim")
launch_gradio_widget(module)
