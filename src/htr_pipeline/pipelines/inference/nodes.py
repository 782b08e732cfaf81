"""Node of inference: pick the checkpoint and the input folder, call the inference library, return data."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from htr_pipeline.checkpoints import resolve_checkpoint
from htr_pipeline.config import InferenceConfig
from htr_pipeline.data.line_store import LineImageStore
from htr_pipeline.devices import resolve_device
from htr_pipeline.inference.inputs import list_input_images
from htr_pipeline.inference.restoration import (
    RESULTS_FOLDER,
    RUN_RECORD,
    OutputFiles,
    lazy_outputs,
    summarise_inference,
)
from htr_pipeline.project_paths import resolve_in_project
from htr_pipeline.tracking import checkpoint_folder_of_run
from htr_pipeline.trained_run import load_trained_run


class InferenceInputError(Exception):
    """No folder to restore, or nothing in it that Pillow reads: the message says what to set."""


def restore_folder(training_summary: dict[str, Any], config: InferenceConfig) -> dict[str, Callable[[], OutputFiles]]:
    """The outputs of every input, each made when the outputs dataset saves it (Kedro's lazy saving)."""
    inputs, skipped = _input_images(config)
    checkpoint = resolve_checkpoint(
        config.checkpoint,
        config.checkpoint_name,
        str(resolve_in_project(training_summary["checkpoint_folder"])),
        partial(checkpoint_folder_of_run, config_key="inference.checkpoint"),
    )
    run = load_trained_run(checkpoint, "inference.checkpoint")
    return lazy_outputs(inputs, skipped, run, config, resolve_device(config.device, "inference.device"))


def summarise_folder(outputs: LineImageStore, config: InferenceConfig) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table and summary of a restored folder, from the per-input records saved with its outputs."""
    rows = [
        json.loads(outputs.read_text(name)) for name in outputs.names(RESULTS_FOLDER, ".json") if name != RUN_RECORD
    ]
    return summarise_inference(rows, json.loads(outputs.read_text(RUN_RECORD)), config)


def _input_images(config: InferenceConfig) -> tuple[list[Path], list]:
    if config.input_path is None:
        raise InferenceInputError(
            "inference.input_path is not set: name the folder of images to restore, e.g. "
            "`kedro run --pipeline=inference --params=inference.input_path=/path/to/scans`"
        )
    try:
        inputs, skipped = list_input_images(config.input_path)
    except FileNotFoundError as error:
        raise InferenceInputError(str(error)) from error
    if not inputs:
        reasons = "; ".join(f"{item.path}: {item.reason}" for item in skipped[:5]) or "the folder is empty"
        raise InferenceInputError(f"inference.input_path {config.input_path} holds no image Pillow reads ({reasons})")
    return inputs, skipped
