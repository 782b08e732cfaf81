"""MLflow as the destination of live training metrics (the training library itself never imports MLflow)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import mlflow
import mlflow.pytorch
import torch
from torch import nn


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


CHECKPOINT_FOLDER_TAG = "htr.checkpoint_folder"
"""Tag on a training run naming the folder of its checkpoints (evaluation finds them by run id)."""


def tag_run(run_id: str, tags: Mapping[str, str]) -> None:
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


def checkpoint_folder_of_run(run_id: str) -> str:
    run = mlflow.MlflowClient().get_run(run_id)
    folder = run.data.tags.get(CHECKPOINT_FOLDER_TAG)
    if folder is None:
        raise ValueError(
            f"evaluation.checkpoint: MLflow run {run_id} has no '{CHECKPOINT_FOLDER_TAG}' tag: not a training run"
        )
    return folder


def log_evaluation(
    summary: Mapping[str, Any], report: str, figures: Mapping[str, Any], evaluated_run_id: str | None
) -> None:
    """Metrics, report and figures into the active (evaluation) run, linked both ways to the training run."""
    mlflow.log_metrics({f"eval/{key}": value for key, value in _flat_numbers(summary).items()})
    mlflow.log_dict(dict(summary), "evaluation/summary.json")
    mlflow.log_text(report, "evaluation/report.md")
    for name, figure in figures.items():
        mlflow.log_figure(figure, f"evaluation/{name}.png")
    if evaluated_run_id is not None:
        mlflow.set_tag("htr.evaluated_run_id", evaluated_run_id)
        tag_run(evaluated_run_id, {"htr.evaluation_run_id": active_run_id()})


def log_models(models: Any, example: Any) -> None:
    """The generator and recognizer as MLflow models, with an input example and its inferred signature."""
    requirements = [f"torch=={torch.__version__.split('+')[0]}"]
    if models.generator is not None:
        _log_pytorch_model(models.generator.cpu(), "generator", example, requirements)
    _log_pytorch_model(_LogitsOnly(models.recognizer.cpu()), "recognizer", example, requirements)


def _log_pytorch_model(model: nn.Module, name: str, example: Any, requirements: list[str]) -> None:
    # "pickle", not MLflow 3's default "pt2": a torch.export graph only accepts the example's exact shape, and
    # lines differ in width.
    mlflow.pytorch.log_model(
        model, name=name, input_example=example, pip_requirements=requirements, serialization_format="pickle"
    )


class _LogitsOnly(nn.Module):
    """The recognizer as a plain tensor-to-tensor model (MLflow signatures describe tensors, not dataclasses)."""

    def __init__(self, recognizer: Any):
        super().__init__()
        self.recognizer = recognizer

    def forward(self, images: Any) -> Any:
        return self.recognizer(images).logits


def _flat_numbers(values: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    flat: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flat_numbers(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            flat[f"{prefix}{key}"] = float(value)
    return flat
