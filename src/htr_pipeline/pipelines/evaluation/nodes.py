"""Nodes of evaluation: load the checkpoint to evaluate, call the evaluation library, return data (the catalog
logs what its entries declare)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from htr_pipeline.charset import Charset
from htr_pipeline.checkpoints import RecognizerCheckpoint, load_recognizer_checkpoint, resolve_checkpoint
from htr_pipeline.config import DataConfig, EvaluationConfig
from htr_pipeline.data.line_store import LineImageStore
from htr_pipeline.devices import resolve_device
from htr_pipeline.evaluation.real_scans import real_test_metrics, real_test_not_configured, run_real_test
from htr_pipeline.evaluation.run import evaluate_split, figure_image
from htr_pipeline.inference.restorers import real_test_restorers
from htr_pipeline.project_paths import resolve_in_project
from htr_pipeline.tracking import ModelsToLog, checkpoint_folder_of_run
from htr_pipeline.trained_run import TrainedRun, load_trained_run


def load_models_to_evaluate(
    training_summary: dict[str, Any], in_loop_recognizer: RecognizerCheckpoint, config: EvaluationConfig
) -> TrainedRun:
    """The trained run ``evaluation.checkpoint`` names (the latest training run's by default); with
    ``evaluation.recognizer_only``, its recognizer alone (the latest ``in_loop_recognizer`` by default)."""
    if config.recognizer_only:
        if config.checkpoint is None:
            return TrainedRun.from_recognizer_checkpoint(in_loop_recognizer, Path("in_loop_recognizer (latest)"))
        path = Path(config.checkpoint)
        return TrainedRun.from_recognizer_checkpoint(load_recognizer_checkpoint(path, "evaluation.checkpoint"), path)
    path = resolve_checkpoint(
        config.checkpoint,
        config.checkpoint_name,
        str(resolve_in_project(training_summary["checkpoint_folder"])),
        partial(checkpoint_folder_of_run, config_key="evaluation.checkpoint"),
    )
    return load_trained_run(path, "evaluation.checkpoint")


def evaluate_checkpoint(
    manifest: pd.DataFrame,
    line_images: LineImageStore,
    charset: Charset,
    evaluated_models: TrainedRun,
    config: EvaluationConfig,
) -> tuple[pd.DataFrame, dict[str, Any], Image.Image, Image.Image, str]:
    result = evaluate_split(manifest, line_images, charset, evaluated_models, config)
    return result.samples, result.summary, figure_image(result.plots), figure_image(result.gallery), result.report


def evaluate_on_real_scans(
    evaluated_models: TrainedRun, data: DataConfig, config: EvaluationConfig
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame, Image.Image, dict[str, Any], dict[str, Any]]:
    """The held-out test on real degradation (``evaluation.real_test``); a note that it was not run when null."""
    if config.real_test is None:
        result = real_test_not_configured()
    else:
        device = resolve_device(config.device, "evaluation.device")
        restorers = real_test_restorers(
            evaluated_models, evaluated_models.charset, data.image_height, data.max_width, config.real_test, device
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


def choose_models_to_log(
    evaluated_models: TrainedRun,
    manifest: pd.DataFrame,
    evaluation_summary: dict[str, Any],
    config: EvaluationConfig,
) -> ModelsToLog:
    """The evaluated models as the run logs them (``evaluation.log_models``, ``evaluation.register_model``), with
    one blank line of the data's height as the input example. Its input ``evaluation_summary`` makes it run
    after the evaluation: only a checkpoint that was evaluated is logged."""
    height = int(manifest["height"].iloc[0])
    return ModelsToLog(
        models=evaluated_models if config.log_models else None,
        example=np.ones((1, 1, height, 8 * height), dtype=np.float32),
        registered_name=config.register_model,
    )
