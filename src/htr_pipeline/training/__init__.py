"""Framework-free training components: losses, loss balancing, early stopping and gradient statistics.

Nothing here imports Kedro or MLflow; the training pipeline's nodes call these and log what they return.
"""
