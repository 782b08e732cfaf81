"""What the audits read of the audited run besides what MLflow logged of it: its checkpoint, loaded as a
:class:`~htr_pipeline.trained_run.TrainedRun`, and the settings it ran with (the checkpoint's config first: it is
what really ran; the logged params, read back through the schema, only when there is no checkpoint)."""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from htr_pipeline.checkpoints import CheckpointName, TrainedRunConfig, resolve_checkpoint
from htr_pipeline.config import describe_validation_error
from htr_pipeline.diagnostics.verdicts import NotCheckedError
from htr_pipeline.project_paths import resolve_in_project
from htr_pipeline.trained_run import TrainedRun, load_trained_run


class AuditedRun(Protocol):
    """What the MLflow store holds of the audited run, as the Kedro side reads it (``tracking.LoggedTrainingRun``)."""

    @property
    def run_id(self) -> str: ...

    @property
    def params(self) -> Mapping[str, str]: ...

    @property
    def metric_history(self) -> Mapping[str, list[tuple[int, float]]]: ...

    @property
    def gradient_reports(self) -> list[dict[str, Any]]: ...

    @property
    def checkpoint_folder(self) -> str | None: ...

    @property
    def evaluation_summary(self) -> Mapping[str, Any] | None: ...


@dataclass(frozen=True)
class MissingCheckpoint:
    """The audited run's checkpoint is not there: where it was looked for, and why it is missing."""

    path: str | None
    reason: str


AuditedCheckpoint = TrainedRun | MissingCheckpoint
"""What the audits get for the audited run's checkpoint."""


def find_trained_run(
    setting: str | None,
    checkpoint_name: CheckpointName,
    run_checkpoint_folder: str | None,
    folder_of_run: Callable[[str], str],
) -> AuditedCheckpoint:
    """The checkpoint ``diagnostics.checkpoint`` names (null: ``checkpoint_name`` of the audited run, whose folder
    is ``run_checkpoint_folder``; a ``.pt`` file; or a training run's MLflow id), loaded, or the reason it is not
    there (the audits that need it say so)."""
    if setting is None and run_checkpoint_folder is None:
        return MissingCheckpoint(None, "the run has no checkpoint folder tag (it never finished a GAN epoch)")
    path = resolve_checkpoint(setting, checkpoint_name, run_checkpoint_folder, folder_of_run)  # as stored
    if not resolve_in_project(path).is_file():
        return MissingCheckpoint(str(path), f"{path} does not exist on this machine")
    config_key = "diagnostics.checkpoint_name" if setting is None else "diagnostics.checkpoint"
    return load_trained_run(resolve_in_project(path), config_key)


def checkpoint_run(checkpoint: AuditedCheckpoint) -> TrainedRun:
    """The audited checkpoint's trained run; :class:`NotCheckedError` saying why it is missing."""
    if isinstance(checkpoint, MissingCheckpoint):
        raise NotCheckedError(checkpoint.reason)
    return checkpoint


def run_config(checkpoint: AuditedCheckpoint, logged_params: Mapping[str, str]) -> TrainedRunConfig:
    """The ``data`` and ``training`` sections the run ran with: its checkpoint's config, else the params it
    logged, read back through the schema (:class:`NotCheckedError` when they do not fit it)."""
    if isinstance(checkpoint, TrainedRun) and checkpoint.config is not None:
        return checkpoint.config
    try:
        return config_from_logged_params(logged_params)
    except ValueError as error:
        raise NotCheckedError(f"the run's checkpoint is missing ({_reason(checkpoint)}) and {error}") from None


def config_from_logged_params(logged_params: Mapping[str, str]) -> TrainedRunConfig:
    """The ``data`` and ``training`` sections as a run logged them (:func:`htr_pipeline.config.flatten_as_logged`:
    ``.``-joined keys, ``str`` of every value), validated back into their models: each value is read as the Python
    literal it was written from (a number, a boolean, None, a list), or kept as text (a name, a path)."""
    nested: dict[str, Any] = {}
    for key, text in logged_params.items():
        *sections, leaf = key.split(".")
        if not sections or sections[0] not in TrainedRunConfig.model_fields:
            continue
        target = nested
        for section in sections:
            target = target.setdefault(section, {})
            if not isinstance(target, dict):
                raise ValueError(f"its logged params hold {key} under a key that has a value of its own")
        if isinstance(target.get(leaf), dict):
            raise ValueError(f"its logged params hold {key} as a value and as a section")
        target[leaf] = _logged_value(text)
    try:
        return TrainedRunConfig.model_validate(nested)
    except ValidationError as error:
        _, problems = describe_validation_error(error, TrainedRunConfig).split("\n", 1)
        raise ValueError(f"its logged params do not fit this project's schema:\n{problems}") from None


def _logged_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def _reason(checkpoint: AuditedCheckpoint) -> str:
    return checkpoint.reason if isinstance(checkpoint, MissingCheckpoint) else f"{checkpoint.path} holds no config"


def existing_checkpoints(checkpoint_folder: str | None) -> list[str] | None:
    """The ``.pt`` files in the run's checkpoint folder; None when the folder is unknown or absent."""
    if checkpoint_folder is None or not resolve_in_project(checkpoint_folder).is_dir():
        return None
    return sorted(path.name for path in resolve_in_project(checkpoint_folder).glob("*.pt"))
