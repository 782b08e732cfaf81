"""Nodes of training: validate parameters, call the training library, return data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from htr_pipeline.charset import Charset
from htr_pipeline.config import DataConfig, TrainingConfig, validate_section
from htr_pipeline.datasets.line_image_store import LineImageStore
from htr_pipeline.project_paths import project_relative
from htr_pipeline.tracking import CHECKPOINT_FOLDER_TAG, active_run_id, tag_run, tracker_for_current_store
from htr_pipeline.training.recognizer_training import REFERENCE_RECOGNIZERS
from htr_pipeline.training.stages import gan_stage, recognizer_stage, reference_recognizers_stage


def train_recognizer(
    manifest: pd.DataFrame, line_images: LineImageStore, charset: dict[str, Any], training: dict[str, Any]
) -> dict[str, Any]:
    return _recognizer_stage_in_this_run(recognizer_stage, manifest, line_images, charset, training)


def train_reference_recognizers(
    manifest: pd.DataFrame, line_images: LineImageStore, charset: dict[str, Any], training: dict[str, Any]
) -> dict[str, Any]:
    return _recognizer_stage_in_this_run(reference_recognizers_stage, manifest, line_images, charset, training)


def _recognizer_stage_in_this_run(
    stage: Callable[..., dict[str, Any]],
    manifest: pd.DataFrame,
    line_images: LineImageStore,
    charset: dict[str, Any],
    training: dict[str, Any],
) -> dict[str, Any]:
    """A recognizer-training stage with the validated config, logging into this session's MLflow run."""
    config = validate_section(TrainingConfig, training, "training")
    tracker = tracker_for_current_store()(active_run_id())
    return stage(manifest, line_images, Charset.from_dict(charset), config, tracker)


def train_restoration_gan(
    manifest: pd.DataFrame,
    line_images: LineImageStore,
    charset: dict[str, Any],
    recognizer_checkpoint: dict[str, Any],
    reference_recognizers: dict[str, Any],
    training_run_folder: Path,
    data: dict[str, Any],
    training: dict[str, Any],
) -> dict[str, Any]:
    config = validate_section(TrainingConfig, training, "training")
    validate_section(DataConfig, data, "data")
    run_metadata = {
        "charset": charset,
        "config": {"data": data, "training": training},
        "generator_config": config.generator.model_dump(mode="json"),
        "discriminator_config": config.discriminator.model_dump(mode="json"),
        "recognizer_config": config.recognizer.model_dump(mode="json"),
        # Stored beside the GAN so evaluation reads any checkpoint with the judge of its own run; no loss sees it.
        "reference_recognizers": {
            name: state for name, state in reference_recognizers.items() if name in REFERENCE_RECOGNIZERS
        },
    }
    summary = gan_stage(
        manifest,
        line_images,
        Charset.from_dict(charset),
        recognizer_checkpoint,
        config,
        training_run_folder,
        run_metadata,
        tracker_for_run=tracker_for_current_store(),
        current_run_id=active_run_id(),
    )
    summary["checkpoint_folder"] = project_relative(summary["checkpoint_folder"])  # a copied project finds it
    tag_run(summary["mlflow_run_id"], {CHECKPOINT_FOLDER_TAG: summary["checkpoint_folder"]})
    return summary
