"""Gradio widget of the self_bleu module (the app of its Hugging Face Space)."""

import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("self_bleu")
launch_gradio_widget(module)
