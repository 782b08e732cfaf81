"""Tiny checkpoints shared by the tests of checkpoints, evaluation, inference and diagnostics: every payload slot
filled, and, for :func:`tiny_trained_checkpoint`, real (small, untrained) model weights that rebuild strictly."""

from __future__ import annotations

import dataclasses

import torch

from htr_pipeline.charset import Charset
from htr_pipeline.checkpoints import GanCheckpoint, GanRunMetadata, RecognizerCheckpoint, TrainedRunConfig
from htr_pipeline.config import PatchDiscriminatorConfig, RecognizerConfig, UnetGeneratorConfig
from htr_pipeline.models import build_generator, build_recognizer
from tests.conftest import small_synthetic_parameters

TINY_RUN_CONFIG = TrainedRunConfig.model_validate(
    {"data": {**small_synthetic_parameters()["data"], "image_height": 32}, "training": {}}
)
"""The ``data`` and ``training`` sections of a tiny run, validated as every run's are."""


def tiny_gan_checkpoint(run: GanRunMetadata | None) -> GanCheckpoint:
    """A GAN checkpoint with real (tiny) tensors in every model slot and plain states elsewhere."""
    weights = {"layer.weight": torch.arange(6.0).reshape(2, 3)}
    return GanCheckpoint(
        generator=weights,
        discriminator={"layer.weight": torch.ones(2)},
        recognizer={"layer.weight": torch.zeros(3)},
        generator_optimizer={"state": {}, "param_groups": []},
        discriminator_optimizer={"state": {}, "param_groups": []},
        recognizer_optimizer=None,
        schedulers=[],
        scaler={},
        balancer={"kind": "fixed"},
        early_stopping=None,
        best_by_monitor={"best_epoch": 3},
        best_per_metric={"val/cer": {"best_epoch": 3}},
        generator_gradients={"steps_recorded": 4},
        discriminator_gradients={"steps_recorded": 4},
        rng={"torch": torch.get_rng_state()},
        epoch=3,
        step=12,
        mlflow_run_id="run-1",
        run=run,
    )


def tiny_run_metadata() -> GanRunMetadata:
    charset = Charset.from_texts(["ab"])
    judge = RecognizerCheckpoint({"w": torch.ones(1)}, RecognizerConfig(), charset, {"seed": 7})
    return GanRunMetadata(
        charset=charset,
        config=TINY_RUN_CONFIG,
        generator_config=UnetGeneratorConfig(variant="unet", channels=[4, 8]),
        discriminator_config=PatchDiscriminatorConfig(variant="patch", channels=[4]),
        recognizer_config=RecognizerConfig(),
        reference_recognizers={"judge": judge},
    )


TINY_GENERATOR = UnetGeneratorConfig(variant="unet", channels=[4, 8])
TINY_RECOGNIZER = RecognizerConfig(conv_channels=[4, 8], width_downsampling=4, lstm_hidden=8, lstm_layers=1)
TINY_JUDGE = RecognizerConfig(conv_channels=[4, 8], width_downsampling=4, lstm_hidden=6, lstm_layers=1)


def tiny_trained_checkpoint(charset: Charset | None = None, seed: int = 0) -> GanCheckpoint:
    """A GAN checkpoint whose generator, in-loop recognizer and judge are real tiny models (untrained, from
    ``seed``), so a :class:`~htr_pipeline.trained_run.TrainedRun` rebuilds from it strictly."""
    charset = charset or Charset.from_texts(["ab"])
    torch.manual_seed(seed)
    generator = build_generator(TINY_GENERATOR)
    recognizer = build_recognizer(TINY_RECOGNIZER, charset.num_classes)
    judge = build_recognizer(TINY_JUDGE, charset.num_classes)
    config = TINY_RUN_CONFIG.model_copy(
        update={
            "training": TINY_RUN_CONFIG.training.model_copy(
                update={"generator": TINY_GENERATOR, "recognizer": TINY_RECOGNIZER}
            )
        }
    )
    run = dataclasses.replace(
        tiny_run_metadata(),
        charset=charset,
        config=config,
        generator_config=TINY_GENERATOR,
        recognizer_config=TINY_RECOGNIZER,
        reference_recognizers={"judge": RecognizerCheckpoint(judge.state_dict(), TINY_JUDGE, charset, {"seed": 7})},
        config_as_stored={},
    )
    return dataclasses.replace(
        tiny_gan_checkpoint(run), generator=generator.state_dict(), recognizer=recognizer.state_dict()
    )
