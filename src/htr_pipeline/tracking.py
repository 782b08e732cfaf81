"""MLflow as the destination of live training metrics (the training library itself never imports MLflow)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mlflow


class MlflowTracker:
    """Logs epoch metrics to one MLflow run, also when another run is active (a resumed training logs into
    the run it continues)."""

    def __init__(self, run_id: str):
        self.run_id = run_id

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        mlflow.log_metrics(dict(metrics), step=step, run_id=self.run_id)

    def log_dict(self, values: Mapping[str, Any], artifact_file: str) -> None:
        mlflow.MlflowClient().log_dict(self.run_id, dict(values), artifact_file)


def active_run_id() -> str:
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("no active MLflow run: training runs inside `kedro run`, which kedro-mlflow tracks")
    return run.info.run_id
