"""The one loader of a trained run: its models rebuilt strictly from a checkpoint, with the charset and settings
they were trained with. Evaluation, inference and diagnostics read a run through :class:`TrainedRun`; nothing
else rebuilds a model from a checkpoint's settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from htr_pipeline.charset import Charset
from htr_pipeline.checkpoints import (
    GanCheckpoint,
    RecognizerCheckpoint,
    TrainedRunConfig,
    check_same_charset,
    load_gan_checkpoint,
    restore_weights,
)
from htr_pipeline.config import GeneratorConfig, RecognizerConfig
from htr_pipeline.models import build_generator, build_recognizer, generator_size_multiple
from htr_pipeline.project_paths import project_relative
from htr_pipeline.training.recognizer_training import IN_LOOP_RECOGNIZER


@dataclass(frozen=True)
class TrainedRun:
    """The models of one checkpoint, in eval mode on the CPU, with what they were trained with.

    From a GAN checkpoint: the generator, the in-loop recognizer and the run's reference recognizers, the run's
    charset and config. From a stage-1 recognizer checkpoint (evaluated alone): the recognizer and its charset.
    """

    path: Path
    description: str
    """Which checkpoint, in words, for reports."""
    charset: Charset
    recognizers: dict[str, nn.Module]
    """By role: ``in_loop`` first (the recognizer the generator was trained through), then ``judge`` and
    ``degraded_trained`` where the run trained them (checkpoints made before the judge have none)."""
    recognizer_config: RecognizerConfig
    """The settings the in-loop recognizer was built from."""
    generator: nn.Module | None = None
    """None for a recognizer checkpoint."""
    generator_config: GeneratorConfig | None = None
    config: TrainedRunConfig | None = None
    """The ``data`` and ``training`` sections the run was trained with; None for a recognizer checkpoint."""
    config_as_stored: dict[str, Any] | None = None
    """``config`` exactly as the checkpoint holds it (see :attr:`GanRunMetadata.config_as_stored`)."""
    epoch: int | None = None
    mlflow_run_id: str | None = None

    @property
    def recognizer(self) -> nn.Module:
        """The in-loop recognizer."""
        return self.recognizers[IN_LOOP_RECOGNIZER]

    @property
    def size_multiple(self) -> int:
        """Image sides the generator accepts are multiples of this."""
        if self.generator_config is None:
            raise ValueError(f"{self.description} holds no generator")
        return generator_size_multiple(self.generator_config)

    @property
    def model_configs(self) -> dict[str, dict[str, Any]]:
        """The settings of the generator and the in-loop recognizer as JSON: what a logged model stores beside its
        weights, to be rebuilt without unpickling."""
        configs = {"recognizer": self.recognizer_config.model_dump(mode="json")}
        if self.generator_config is not None:
            configs["generator"] = self.generator_config.model_dump(mode="json")
        return configs

    def check_charset(self, charset: Charset) -> None:
        """Lines encoded with ``charset`` can be read by this run's recognizers: the same symbols in the same order."""
        check_same_charset(self.charset, charset, self.path)

    @classmethod
    def from_checkpoint(cls, checkpoint: GanCheckpoint, path: Path) -> TrainedRun:
        """The generator, the in-loop and the reference recognizers of a GAN checkpoint read from ``path``."""
        run = checkpoint.run_metadata(path)
        generator = build_generator(run.generator_config)
        restore_weights(generator, checkpoint.generator, "generator", path)
        held = {IN_LOOP_RECOGNIZER: checkpoint.recognizer_checkpoint(path), **run.reference_recognizers}
        return cls(
            path=path,
            description=f"{project_relative(path)} (epoch {checkpoint.epoch}, MLflow run {checkpoint.mlflow_run_id})",
            charset=run.charset,
            recognizers={name: _recognizer(recognizer, run.charset, path) for name, recognizer in held.items()},
            recognizer_config=run.recognizer_config,
            generator=generator.eval(),
            generator_config=run.generator_config,
            config=run.config,
            config_as_stored=run.config_as_stored,
            epoch=checkpoint.epoch,
            mlflow_run_id=checkpoint.mlflow_run_id,
        )

    @classmethod
    def from_recognizer_checkpoint(cls, checkpoint: RecognizerCheckpoint, path: Path) -> TrainedRun:
        """The recognizer of a stage-1 (or a GAN) checkpoint, to be evaluated without a generator."""
        return cls(
            path=path,
            description=f"recognizer of {project_relative(path)}",
            charset=checkpoint.charset,
            recognizers={IN_LOOP_RECOGNIZER: _recognizer(checkpoint, checkpoint.charset, path)},
            recognizer_config=checkpoint.config,
            mlflow_run_id=checkpoint.mlflow_run_id,
        )


def load_trained_run(path: Path, config_key: str) -> TrainedRun:
    """The trained run of a GAN checkpoint file, read safely and rebuilt strictly; ``config_key`` names the
    setting that pointed here."""
    return TrainedRun.from_checkpoint(load_gan_checkpoint(path, config_key), path)


def _recognizer(checkpoint: RecognizerCheckpoint, charset: Charset, path: Path) -> nn.Module:
    check_same_charset(checkpoint.charset, charset, path)
    recognizer = build_recognizer(checkpoint.config, charset.num_classes)
    restore_weights(recognizer, checkpoint.weights, "recognizer", path)
    return recognizer.eval()
