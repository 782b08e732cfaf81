"""Nodes of training: validate parameters, call the training library, return data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from htr_pipeline.charset import Charset
from htr_pipeline.config import DataConfig, TrainingConfig, validate_section
from htr_pipeline.data.line_store import LineImageStore
from htr_pipeline.tracking import CHECKPOINT_FOLDER_TAG, active_run_id, tag_run, tracker_for_current_store
from htr_pipeline.training.stages import gan_run_metadata, gan_stage, recognizer_stage, reference_recognizers_stage


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
    symbols = Charset.from_dict(charset)
    run_metadata = gan_run_metadata(symbols, {"data": data, "training": training}, config, reference_recognizers)
    summary = gan_stage(
        manifest,
        line_images,
        symbols,
        recognizer_checkpoint,
        config,
        training_run_folder,
        run_metadata,
        tracker_for_run=tracker_for_current_store(),
        current_run_id=active_run_id(),
    )
    tag_run(summary["mlflow_run_id"], {CHECKPOINT_FOLDER_TAG: summary["checkpoint_folder"]})
    return summary
