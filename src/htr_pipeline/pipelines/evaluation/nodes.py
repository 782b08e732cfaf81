"""Nodes of evaluation: load the checkpoint to evaluate, call the evaluation library, return data (the run record
hook logs it to MLflow)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from htr_pipeline.charset import Charset
from htr_pipeline.checkpoints import RecognizerCheckpoint, load_checkpoint, resolve_checkpoint
from htr_pipeline.config import DataConfig, EvaluationConfig
from htr_pipeline.data.line_store import LineImageStore
from htr_pipeline.devices import resolve_device
from htr_pipeline.evaluation.loading import RestorationModels, load_recognizer_only, load_restoration_models
from htr_pipeline.evaluation.real_scans import real_test_metrics, real_test_not_configured, run_real_test
from htr_pipeline.evaluation.run import evaluate_split, figure_image
from htr_pipeline.inference.restorers import real_test_restorers
from htr_pipeline.project_paths import resolve_in_project
from htr_pipeline.tracking import checkpoint_folder_of_run


def load_models_to_evaluate(
    charset: dict[str, Any],
    training_summary: dict[str, Any],
    recognizer_checkpoint: dict[str, Any],
    config: EvaluationConfig,
) -> RestorationModels:
    """The models ``evaluation.checkpoint`` names (the latest training run's by default)."""
    return _models_to_evaluate(config, training_summary, recognizer_checkpoint, Charset.from_dict(charset))


def evaluate_checkpoint(
    manifest: pd.DataFrame,
    line_images: LineImageStore,
    charset: dict[str, Any],
    evaluated_models: RestorationModels,
    config: EvaluationConfig,
) -> tuple[pd.DataFrame, dict[str, Any], str, Image.Image, Image.Image]:
    result = evaluate_split(manifest, line_images, Charset.from_dict(charset), evaluated_models, config)
    return result.samples, result.summary, result.report, figure_image(result.plots), figure_image(result.gallery)


def evaluate_on_real_scans(
    evaluated_models: RestorationModels, charset: dict[str, Any], data: DataConfig, config: EvaluationConfig
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame, Image.Image, dict[str, Any], dict[str, Any]]:
    """The held-out test on real degradation (``evaluation.real_test``); a note that it was not run when null."""
    if config.real_test is None:
        result = real_test_not_configured()
    else:
        device = resolve_device(config.device, "evaluation.device")
        restorers = real_test_restorers(
            evaluated_models, Charset.from_dict(charset), data.image_height, data.max_width, config.real_test, device
        )
        result = run_real_test(
            config.real_test,
            restorers.restore_page,
            restorers.restore_line,
            restorers.readers,
            data.image_height,
            data.max_width,
            config.bootstrap_resamples,
            config.bootstrap_seed,
        )
    pictures = figure_image(result.pictures)
    return (
        result.summary,
        result.pages,
        result.lines,
        pictures,
        result.restored_pages,
        real_test_metrics(result.summary),
    )


def _models_to_evaluate(
    config: EvaluationConfig, training_summary: dict[str, Any], recognizer_state: dict[str, Any], charset: Charset
) -> RestorationModels:
    if config.recognizer_only:
        if config.checkpoint is None:
            latest = Path("recognizer_checkpoint (latest)")
            return load_recognizer_only(RecognizerCheckpoint.from_state(recognizer_state, latest), charset, latest)
        path = Path(config.checkpoint)
        stored = RecognizerCheckpoint.from_state(load_checkpoint(path, "evaluation.checkpoint"), path)
        return load_recognizer_only(stored, charset, path)
    path = resolve_checkpoint(
        config.checkpoint,
        config.checkpoint_name,
        str(resolve_in_project(training_summary["checkpoint_folder"])),
        partial(checkpoint_folder_of_run, config_key="evaluation.checkpoint"),
    )
    return load_restoration_models(path, charset, "evaluation.checkpoint")
