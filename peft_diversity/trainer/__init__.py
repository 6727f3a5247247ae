"""PoExFT training, in reading order: rows.py (positives / negatives) -> loss.py (MLE + unlikelihood) ->
config.py (`PossibilityConfig`) -> trainer.py (`PossibilityTrainer`); cli.py wires the recipe."""
