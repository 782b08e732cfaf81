"""What the audits read of the audited run besides its MLflow record: its checkpoint, and the settings it ran
with (the checkpoint's config first: it is what really ran; the logged params only when there is none)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from htr_pipeline.charset import Charset
from htr_pipeline.checkpoints import (
    CheckpointName,
    GanCheckpoint,
    RecognizerCheckpoint,
    load_gan_checkpoint,
    resolve_checkpoint,
)
from htr_pipeline.config import flatten_as_logged
from htr_pipeline.project_paths import resolve_in_project


@dataclass(frozen=True)
class RunCheckpoint:
    path: str | None
    state: GanCheckpoint | None
    """The loaded checkpoint (``weights_only``); None when it could not be found."""
    missing_reason: str | None = None

    @property
    def config(self) -> dict[str, Any] | None:
        """The checkpoint's config as stored."""
        return None if self.state is None else self.state.run_metadata(str(self.path)).config_as_stored

    @property
    def charset(self) -> Charset | None:
        """The charset the checkpoint was trained with."""
        return None if self.state is None else self.state.run_metadata(str(self.path)).charset

    def recognizer_checkpoint(self) -> RecognizerCheckpoint | None:
        return None if self.state is None else self.state.recognizer_checkpoint(str(self.path))


def find_run_checkpoint(
    setting: str | None,
    checkpoint_name: CheckpointName,
    run_checkpoint_folder: str | None,
    folder_of_run: Callable[[str], str],
) -> RunCheckpoint:
    """The checkpoint ``diagnostics.checkpoint`` names (null: ``checkpoint_name`` of the audited run, whose folder
    is ``run_checkpoint_folder``; a ``.pt`` file; or a training run's MLflow id), or the reason it is not there
    (the audits that need it say so)."""
    if setting is None and run_checkpoint_folder is None:
        return RunCheckpoint(None, None, "the run has no checkpoint folder tag (it never finished a GAN epoch)")
    path = resolve_checkpoint(setting, checkpoint_name, run_checkpoint_folder, folder_of_run)  # as stored
    if not resolve_in_project(path).is_file():
        return RunCheckpoint(str(path), None, f"{path} does not exist on this machine")
    config_key = "diagnostics.checkpoint_name" if setting is None else "diagnostics.checkpoint"
    return RunCheckpoint(str(path), load_gan_checkpoint(resolve_in_project(path), config_key))


def existing_checkpoints(checkpoint_folder: str | None) -> list[str] | None:
    """The ``.pt`` files in the run's checkpoint folder; None when the folder is unknown or absent."""
    if checkpoint_folder is None or not resolve_in_project(checkpoint_folder).is_dir():
        return None
    return sorted(path.name for path in resolve_in_project(checkpoint_folder).glob("*.pt"))


def run_setting(checkpoint: RunCheckpoint, logged_params: Mapping[str, str], key: str) -> str | None:
    """A setting of the run as text (``training.precision``): from the checkpoint's config, else as logged."""
    if checkpoint.config is not None:
        flat = flatten_as_logged(checkpoint.config)
        if key in flat:
            return flat[key]
    return logged_params.get(key)


def run_flag(checkpoint: RunCheckpoint, logged_params: Mapping[str, str], key: str) -> bool:
    """A boolean setting of the run (``training.drop_infeasible``); MLflow holds it as ``"True"``/``"False"``."""
    return run_setting(checkpoint, logged_params, key) == str(True)
