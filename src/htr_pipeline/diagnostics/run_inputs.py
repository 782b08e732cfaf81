"""What the audits read of the audited run besides its MLflow record: its checkpoint, and the settings it ran
with (the checkpoint's config first: it is what really ran; the logged params only when there is none)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from htr_pipeline.config import flatten_as_logged
from htr_pipeline.project_paths import resolve_in_project
from htr_pipeline.training.checkpoints import load_checkpoint


@dataclass(frozen=True)
class RunCheckpoint:
    path: str | None
    state: dict[str, Any] | None
    """The loaded checkpoint (``weights_only``); None when it could not be found."""
    missing_reason: str | None = None

    @property
    def config(self) -> dict[str, Any] | None:
        return None if self.state is None else self.state["config"]


def find_run_checkpoint(checkpoint_folder: str | None, checkpoint_name: str) -> RunCheckpoint:
    """``<folder>/<name>.pt`` of the run, or the reason it is not there (the audits that need it say so)."""
    if checkpoint_folder is None:
        return RunCheckpoint(None, None, "the run has no checkpoint folder tag (it never finished a GAN epoch)")
    path = Path(checkpoint_folder) / f"{checkpoint_name}.pt"  # as stored: project-relative
    if not resolve_in_project(path).is_file():
        return RunCheckpoint(str(path), None, f"{path} does not exist on this machine")
    return RunCheckpoint(str(path), load_checkpoint(resolve_in_project(path), "diagnostics.checkpoint_name"))


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
