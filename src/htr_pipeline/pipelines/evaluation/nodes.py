"""Nodes of evaluation: pick the checkpoint, call the evaluation library, log to MLflow, return data."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from htr_pipeline.charset import Charset
from htr_pipeline.config import EvaluationConfig
from htr_pipeline.data.line_store import LineImageStore
from htr_pipeline.evaluation.loading import (
    RestorationModels,
    load_recognizer_only,
    load_restoration_models,
    training_checkpoint,
)
from htr_pipeline.evaluation.report import GALLERY_FILE, PLOTS_FILE
from htr_pipeline.evaluation.run import evaluate_split, figure_image
from htr_pipeline.project_paths import resolve_in_project
from htr_pipeline.tracking import checkpoint_folder_of_run, log_evaluation, log_models, register_generator
from htr_pipeline.training.checkpoints import load_checkpoint


def evaluate_checkpoint(
    manifest: pd.DataFrame,
    line_images: LineImageStore,
    charset: dict[str, Any],
    training_summary: dict[str, Any],
    recognizer_checkpoint: dict[str, Any],
    config: EvaluationConfig,
) -> tuple[pd.DataFrame, dict[str, Any], str, Image.Image, Image.Image]:
    symbols = Charset.from_dict(charset)
    models = _models_to_evaluate(config, training_summary, recognizer_checkpoint, symbols)
    result = evaluate_split(manifest, line_images, symbols, models, config)
    log_evaluation(
        result.summary, result.report, {PLOTS_FILE: result.plots, GALLERY_FILE: result.gallery}, models.mlflow_run_id
    )
    if config.log_models:
        height = int(manifest["height"].iloc[0])
        logged = log_models(models, example=np.ones((1, 1, height, 8 * height), dtype=np.float32))
        if config.register_model is not None:
            register_generator(logged["generator"], config.register_model)
    return result.samples, result.summary, result.report, figure_image(result.plots), figure_image(result.gallery)


def _models_to_evaluate(
    config: EvaluationConfig, training_summary: dict[str, Any], recognizer_state: dict[str, Any], charset: Charset
) -> RestorationModels:
    if config.recognizer_only:
        if config.checkpoint is None:
            return load_recognizer_only(recognizer_state, charset, Path("recognizer_checkpoint (latest)"))
        path = Path(config.checkpoint)
        return load_recognizer_only(load_checkpoint(path, "evaluation.checkpoint"), charset, path)
    path = training_checkpoint(
        config.checkpoint,
        config.checkpoint_name,
        str(resolve_in_project(training_summary["checkpoint_folder"])),
        partial(checkpoint_folder_of_run, config_key="evaluation.checkpoint"),
    )
    return load_restoration_models(path, charset, "evaluation.checkpoint")
