"""Scoring lines: the one per-line loop (readings, error rates, image fidelity) that evaluation stores and
validation during training summarises. It sits above data and models, below training and evaluation."""
