"""The models an evaluation run logs, and loading them back without unpickling anything.

Each model is logged twice: as an MLflow model (pytorch flavour, with an input example and its inferred
signature, so MLflow's UI and ``mlflow.pytorch.load_model`` know it), and as plain weights plus the settings it
was built from (``weights/<name>.pt``, ``weights/<name>.json``), which :func:`load_logged_model` rebuilds from the
model registry with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pytorch
import numpy as np
import torch
from pydantic import TypeAdapter
from torch import nn

from htr_pipeline.config import GeneratorConfig, RecognizerConfig, trained_before_paper_levels
from htr_pipeline.models import build_generator, build_recognizer


@dataclass(frozen=True)
class ModelsToLog:
    """What an evaluation run logs as models (``evaluation.log_models``, ``evaluation.register_model``)."""

    models: Any | None
    """The evaluated models (``generator``, ``recognizer``, ``model_configs``); None: log none."""
    example: np.ndarray
    """One input line, ``(1, 1, height, width)`` float32 in [0, 1]: the input example of each MLflow model."""
    registered_name: str | None = None
    """The Model Registry name the logged generator becomes a new version of; None: register nothing."""


def log_models(models: Any, example: Any) -> dict[str, str]:
    """The generator and recognizer of ``models`` into the active run, as MLflow models and as weights plus
    settings; returns each logged model's URI by name. The models are copied to the CPU for logging: the ones
    handed in stay where they are."""
    requirements = [f"torch=={torch.__version__.split('+')[0]}"]
    uris = {}
    if models.generator is not None:
        generator = _cpu_copy(models.generator)
        uris["generator"] = _log_pytorch_model(generator, "generator", example, requirements)
        _log_weights(generator, "generator", {"config": models.model_configs.get("generator")})
    recognizer = _cpu_copy(models.recognizer)
    uris["recognizer"] = _log_pytorch_model(_LogitsOnly(recognizer), "recognizer", example, requirements)
    settings = {"config": models.model_configs.get("recognizer"), "num_classes": recognizer.num_classes}
    _log_weights(recognizer, "recognizer", settings)
    return uris


def log_models_to_log(to_log: ModelsToLog) -> dict[str, str]:
    """:func:`log_models` for what an evaluation chose to log, and the generator registered when a name is given."""
    if to_log.models is None:
        return {}
    uris = log_models(to_log.models, to_log.example)
    if to_log.registered_name is not None and "generator" in uris:
        register_generator(uris["generator"], to_log.registered_name)
    return uris


def register_generator(model_uri: str, name: str) -> int:
    """A new version of registered model ``name`` (``evaluation.register_model``) from a logged generator; returns
    the version number."""
    return int(mlflow.register_model(model_uri, name).version)


def _cpu_copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).cpu()


def _log_pytorch_model(model: nn.Module, name: str, example: Any, requirements: list[str]) -> str:
    # "pickle", not MLflow 3's default "pt2": a torch.export graph only accepts the example's exact shape, and
    # lines differ in width. Loading it (mlflow.pytorch.load_model) unpickles: load_logged_model does not.
    return mlflow.pytorch.log_model(
        model, name=name, input_example=example, pip_requirements=requirements, serialization_format="pickle"
    ).model_uri


LOGGED_WEIGHTS_FOLDER = "weights"
"""Run artifact folder of the logged models as ``<name>.pt`` (a state dict) and ``<name>.json`` (its settings)."""


def _log_weights(model: nn.Module, name: str, settings: Mapping[str, Any]) -> None:
    if settings.get("config") is None:
        return  # a model built in a test, not from a checkpoint: no settings to rebuild it from
    with tempfile.TemporaryDirectory() as folder:
        torch.save({key: tensor.cpu() for key, tensor in model.state_dict().items()}, Path(folder) / f"{name}.pt")
        (Path(folder) / f"{name}.json").write_text(json.dumps(dict(settings), indent=2))
        mlflow.log_artifacts(folder, LOGGED_WEIGHTS_FOLDER)


def load_logged_model(run_id: str, name: str, tracking_uri: str | None = None) -> nn.Module:
    """The ``generator`` or ``recognizer`` an evaluation run logged, rebuilt from the model registry and its
    weights read with ``torch.load(weights_only=True)``: no code from the run's files is executed."""
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    with tempfile.TemporaryDirectory() as folder:
        settings_file = client.download_artifacts(run_id, f"{LOGGED_WEIGHTS_FOLDER}/{name}.json", folder)
        settings = json.loads(Path(settings_file).read_text())
        weights = client.download_artifacts(run_id, f"{LOGGED_WEIGHTS_FOLDER}/{name}.pt", folder)
        state = torch.load(weights, map_location="cpu", weights_only=True)
    if name == "generator":
        stored = trained_before_paper_levels(settings["config"])
        model = build_generator(TypeAdapter(GeneratorConfig).validate_python(stored))
    else:
        model = build_recognizer(RecognizerConfig.model_validate(settings["config"]), settings["num_classes"])
    model.load_state_dict(state)
    return model.eval()


def load_logged_generator(run_id: str, tracking_uri: str | None = None) -> nn.Module:
    """The restoration generator of an evaluation run (see :func:`load_logged_model`)."""
    return load_logged_model(run_id, "generator", tracking_uri)


class _LogitsOnly(nn.Module):
    """The recognizer as a plain tensor-to-tensor model (MLflow signatures describe tensors, not dataclasses)."""

    def __init__(self, recognizer: Any):
        super().__init__()
        self.recognizer = recognizer

    def forward(self, images: Any) -> Any:
        return self.recognizer(images).logits
