"""The models of a training checkpoint, rebuilt strictly from the settings stored in it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter
from torch import nn

from htr_pipeline.charset import Charset
from htr_pipeline.checkpoints import (
    GanCheckpoint,
    RecognizerCheckpoint,
    check_same_charset,
    load_gan_checkpoint,
    restore_weights,
)
from htr_pipeline.config import GeneratorConfig, RecognizerConfig
from htr_pipeline.models import build_generator, build_recognizer
from htr_pipeline.project_paths import project_relative


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
    model_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The settings ``generator`` and ``recognizer`` were built from (as stored in the checkpoint), so they can be
    logged as weights plus settings and rebuilt without unpickling code."""


def load_restoration_models(path: Path, charset: Charset, config_key: str) -> RestorationModels:
    """Generator and recognizer of a training checkpoint, built from the settings stored in it."""
    return restoration_models_from_checkpoint(load_gan_checkpoint(path, config_key), charset, path)


def restoration_models_from_checkpoint(checkpoint: GanCheckpoint, charset: Charset, path: Path) -> RestorationModels:
    """As :func:`load_restoration_models`, for a checkpoint already loaded from ``path``."""
    run = checkpoint.run_metadata(path)
    check_same_charset(run.charset, charset, path)
    generator = build_generator(TypeAdapter(GeneratorConfig).validate_python(run.generator_config))
    restore_weights(generator, checkpoint.generator, "generator", path)
    recognizer_checkpoint = checkpoint.recognizer_checkpoint(path)
    recognizer = _recognizer_from(recognizer_checkpoint, charset, path)
    references = {
        name: _recognizer_from(reference, charset, path) for name, reference in run.reference_recognizers.items()
    }
    return RestorationModels(
        generator=generator.eval(),
        recognizer=recognizer,
        description=f"{project_relative(path)} (epoch {checkpoint.epoch}, MLflow run {checkpoint.mlflow_run_id})",
        mlflow_run_id=checkpoint.mlflow_run_id,
        reference_recognizers=references,
        model_configs={"generator": run.generator_config, "recognizer": recognizer_checkpoint.config},
    )


def load_recognizer_only(checkpoint: RecognizerCheckpoint, charset: Charset, path: Path) -> RestorationModels:
    """The recognizer of a stage-1 (or training) checkpoint, evaluated without a generator."""
    check_same_charset(checkpoint.charset, charset, path)
    return RestorationModels(
        generator=None,
        recognizer=_recognizer_from(checkpoint, charset, path),
        description=f"recognizer of {project_relative(path)}",
        mlflow_run_id=checkpoint.mlflow_run_id,
        model_configs={"recognizer": checkpoint.config},
    )


def _recognizer_from(checkpoint: RecognizerCheckpoint, charset: Charset, path: Path) -> nn.Module:
    recognizer = build_recognizer(RecognizerConfig.model_validate(checkpoint.config), charset.num_classes)
    restore_weights(recognizer, checkpoint.weights, "recognizer", path)
    return recognizer.eval()
