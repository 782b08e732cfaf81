"""Real Kedro sessions of the tiny training configuration, and what they leave in the project's MLflow store:
the helpers every test that runs a pipeline shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from mlflow.tracking import MlflowClient

from tests.conftest import SMOKE_GATE, TINY_JUDGE, small_synthetic_parameters

TINY_TRAINING = {
    "seed": 3,
    "device": "cpu",
    "epochs": 2,
    "batch_size": 4,
    "recognizer": {"conv_channels": [8, 16], "width_downsampling": 4, "lstm_hidden": 16, "lstm_layers": 1},
    "generator": {"variant": "unet", "channels": [8, 16]},
    "discriminator": {"variant": "dual_modal", "channels": [8, 16], "text_embedding_dim": 8},
    "recognizer_pretraining": {"epochs": 2, "batch_size": 8, "patience": 2, **SMOKE_GATE},
    "judge": TINY_JUDGE,
    "adaptive_balancing": {"target_ctc_share": 0.65, "adaptation_rate": 0.15},
    "early_stopping": {"patience": 5, "min_delta": 0.0},
}
"""The ``training`` section of the tiny configuration: tiny models, two epochs of each stage, the gate opened."""


def tiny_parameters() -> dict[str, Any]:
    """The tiny configuration: 36 synthetic lines of 32 px and :data:`TINY_TRAINING`."""
    parameters = small_synthetic_parameters()
    parameters["training"] = TINY_TRAINING
    return parameters


def run_session(project: Path, pipeline: str | None = None, runtime_params: dict | None = None):
    """One ``kedro run`` of ``pipeline`` (the main job when None) in ``project``; returns the session's catalog."""
    bootstrap_project(project)
    try:
        with KedroSession.create(project_path=project, runtime_params=runtime_params) as session:
            session.run(pipeline_names=[pipeline] if pipeline else None)
            return session.load_context().catalog
    finally:
        # One process runs several sessions here; `kedro run` runs one per process.
        while mlflow.active_run() is not None:
            mlflow.end_run()


def mlflow_client(project: Path) -> MlflowClient:
    """A client of the project's own sqlite store."""
    return MlflowClient(tracking_uri=f"sqlite:///{project.as_posix()}/mlflow.db")


def logged_runs(project: Path) -> list:
    """The runs of the project's experiment, oldest first."""
    client = mlflow_client(project)
    experiment = client.get_experiment_by_name("htr_pipeline")
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def metric_history(project: Path, run_id: str, metric: str) -> list[tuple[int, float]]:
    """``(step, value)`` of every value a run logged for ``metric``, by step."""
    history = sorted(mlflow_client(project).get_metric_history(run_id, metric), key=lambda m: m.step)
    return [(m.step, m.value) for m in history]
