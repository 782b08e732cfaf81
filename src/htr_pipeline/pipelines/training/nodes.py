"""Nodes of training: call the training library with the validated sections, return data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from htr_pipeline.charset import Charset
from htr_pipeline.checkpoints import (
    LAST,
    RecognizerCheckpoint,
    ReferenceRecognizers,
    TrainedRunConfig,
    checkpoint_file,
    named_file,
)
from htr_pipeline.config import DataConfig, TrainingConfig
from htr_pipeline.data.line_store import LineImageStore
from htr_pipeline.evaluation.page_validation import validation_pages
from htr_pipeline.project_paths import project_relative
from htr_pipeline.tracking import (
    CHECKPOINT_FOLDER_TAG,
    active_run_id,
    checkpoint_folder_of_run,
    tag_run,
    tracker_for_current_store,
)
from htr_pipeline.training.stages import (
    gan_run_metadata,
    gan_stage,
    recognizer_stage,
    reference_recognizers_stage,
    resumed_checkpoint,
)


def train_recognizer(
    manifest: pd.DataFrame, line_images: LineImageStore, charset: Charset, training: TrainingConfig
) -> RecognizerCheckpoint:
    return _recognizer_stage_in_this_run(recognizer_stage, manifest, line_images, charset, training)


def train_reference_recognizers(
    manifest: pd.DataFrame, line_images: LineImageStore, charset: Charset, training: TrainingConfig
) -> ReferenceRecognizers:
    return _recognizer_stage_in_this_run(reference_recognizers_stage, manifest, line_images, charset, training)


def _recognizer_stage_in_this_run(
    stage: Callable[..., Any],
    manifest: pd.DataFrame,
    line_images: LineImageStore,
    charset: Charset,
    training: TrainingConfig,
) -> Any:
    """A recognizer-training stage, logging into this session's MLflow run."""
    tracker = tracker_for_current_store()(active_run_id())
    return stage(manifest, line_images, charset, with_resumed_file(training), tracker)


def with_resumed_file(training: TrainingConfig) -> TrainingConfig:
    """``training.resume_from`` as a file: a training run's MLflow id names the ``last.pt`` of its folder."""
    if training.resume_from is None or named_file(training.resume_from) is not None:
        return training
    folder = checkpoint_folder_of_run(training.resume_from, "training.resume_from")
    return training.model_copy(update={"resume_from": str(checkpoint_file(folder, LAST))})


def train_restoration_gan(
    manifest: pd.DataFrame,
    line_images: LineImageStore,
    charset: Charset,
    in_loop_recognizer: RecognizerCheckpoint,
    reference_recognizers: ReferenceRecognizers,
    training_run_folder: Path,
    data: DataConfig,
    training: TrainingConfig,
) -> dict[str, Any]:
    training = with_resumed_file(training)
    run_metadata = gan_run_metadata(charset, TrainedRunConfig(data=data, training=training), reference_recognizers)
    # The run the epochs go into names its checkpoint folder from the start: a killed run resumes by its id.
    epochs_run_id = active_run_id()
    if training.resume_from is not None:
        epochs_run_id = resumed_checkpoint(training)[1].mlflow_run_id or epochs_run_id
    tag_run(epochs_run_id, {CHECKPOINT_FOLDER_TAG: project_relative(training_run_folder)})
    summary = gan_stage(
        manifest,
        line_images,
        charset,
        in_loop_recognizer,
        training,
        training_run_folder,
        run_metadata,
        tracker_for_run=tracker_for_current_store(),
        current_run_id=active_run_id(),
        validation_pages=validation_pages(manifest, data.real_paper),
    )
    summary["checkpoint_folder"] = project_relative(summary["checkpoint_folder"])  # a copied project finds it
    return summary
