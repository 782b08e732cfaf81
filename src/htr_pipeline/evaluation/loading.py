"""Which checkpoint to evaluate, and the models rebuilt from it strictly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter
from torch import nn

from htr_pipeline.charset import Charset
from htr_pipeline.config import GeneratorConfig, RecognizerConfig
from htr_pipeline.models import build_generator, build_recognizer
from htr_pipeline.project_paths import project_relative
from htr_pipeline.training.checkpoints import check_same_charset, load_checkpoint, restore_weights


@dataclass
class RestorationModels:
    generator: nn.Module | None
    """``None`` when the recognizer is evaluated alone."""
    recognizer: nn.Module
    description: str
    """Which checkpoint, in words, for the report."""
    mlflow_run_id: str | None
    reference_recognizers: dict[str, nn.Module] = field(default_factory=dict)
    """The run's judge and baseline recognizers by name (``judge``, ``degraded_trained``); none of them was seen
    by a GAN loss. Empty for checkpoints made before the judge existed."""


def checkpoint_file(folder: str | Path, checkpoint_name: str) -> Path:
    return Path(folder) / f"{checkpoint_name}.pt"


def training_checkpoint(
    setting: str | None,
    checkpoint_name: str,
    latest_run_folder: str,
    folder_of_run: Callable[[str], str],
) -> Path:
    """The checkpoint a ``checkpoint`` setting names: null, the latest run's ``checkpoint_name``; a ``.pt`` file;
    else a training run's id, whose folder ``folder_of_run`` finds."""
    if setting is None:
        return checkpoint_file(latest_run_folder, checkpoint_name)
    if Path(setting).suffix == ".pt":
        return Path(setting)
    return checkpoint_file(folder_of_run(setting), checkpoint_name)


def load_restoration_models(path: Path, charset: Charset, config_key: str) -> RestorationModels:
    """Generator and recognizer of a training checkpoint, built from the settings stored in it."""
    return restoration_models_from_state(load_checkpoint(path, config_key), charset, path)


def restoration_models_from_state(state: dict[str, Any], charset: Charset, path: Path) -> RestorationModels:
    """As :func:`load_restoration_models`, for a checkpoint already loaded from ``path``."""
    check_same_charset(state["charset"], charset, path)
    generator = build_generator(TypeAdapter(GeneratorConfig).validate_python(state["generator_config"]))
    restore_weights(generator, state["generator"], "generator", path)
    recognizer = _recognizer_from(state, charset, path)
    references = {
        name: _recognizer_from(reference, charset, path)
        for name, reference in state.get("reference_recognizers", {}).items()
    }
    return RestorationModels(
        generator=generator.eval(),
        recognizer=recognizer,
        description=f"{project_relative(path)} (epoch {state['epoch']}, MLflow run {state['mlflow_run_id']})",
        mlflow_run_id=state["mlflow_run_id"],
        reference_recognizers=references,
    )


def load_recognizer_only(state: dict[str, Any], charset: Charset, path: Path) -> RestorationModels:
    """The recognizer of a stage-1 (or training) checkpoint, evaluated without a generator."""
    check_same_charset(state["charset"], charset, path)
    return RestorationModels(
        generator=None,
        recognizer=_recognizer_from(state, charset, path),
        description=f"recognizer of {project_relative(path)}",
        mlflow_run_id=state.get("mlflow_run_id"),
    )


def _recognizer_from(state: dict[str, Any], charset: Charset, path: Path) -> nn.Module:
    recognizer = build_recognizer(RecognizerConfig.model_validate(state["recognizer_config"]), charset.num_classes)
    restore_weights(recognizer, state["recognizer"], "recognizer", path)
    return recognizer.eval()
