"""The LM head applied to selected hidden states only, as the model's own forward would (scaling, soft-capping).

Training (`trainer.add_label_log_probs`) and likelihood scoring (`scoring.likelihood`) project just the positions
they need, so no (batch x sequence x vocab) logits exist.
"""

from __future__ import annotations

from typing import Any


def lm_head_logits(model: Any, hidden: Any) -> Any:
    """Logits of `hidden` (any leading shape x hidden size) through `model`'s output embeddings."""
    import torch

    config = model.config.get_text_config()
    logits = model.get_output_embeddings()(hidden)
    # Cohere-style `logit_scale` multiplies the logits, Granite-style `logits_scaling` divides them
    scale = getattr(config, "logit_scale", None) or 1.0
    if getattr(config, "logits_scaling", None):
        scale = scale / config.logits_scaling
    if scale != 1.0:
        logits = logits * scale
    softcap = getattr(config, "final_logit_softcapping", None)
    return torch.tanh(logits / softcap) * softcap if softcap else logits
