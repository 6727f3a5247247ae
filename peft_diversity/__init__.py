"""peft_diversity: Possibility Exploration Fine-Tuning (PoExFT) on the Hugging Face stack."""

from peft_diversity.metrics_install import install_metrics, load_metric

__version__ = "0.1.0"
__all__ = ["install_metrics", "load_metric", "__version__"]
