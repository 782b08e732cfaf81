"""Kedro datasets for checkpoints: one file per version, and a folder a node writes checkpoints into live."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version

from htr_pipeline.checkpoints import load_checkpoint, save_checkpoint


class TorchCheckpointDataset(AbstractVersionedDataset[dict[str, Any], dict[str, Any]]):
    """A checkpoint in the project's format, read and written by :mod:`htr_pipeline.checkpoints` (atomic save,
    ``weights_only=True`` load with the format check); the catalog hands nodes its state as a plain mapping."""

    def __init__(self, filepath: str, version: Version | None = None, metadata: dict[str, Any] | None = None):
        super().__init__(filepath=PurePosixPath(filepath), version=version, exists_function=_path_exists)
        self.metadata = metadata

    def load(self) -> dict[str, Any]:
        return load_checkpoint(Path(self._get_load_path()), config_key=f"catalog entry '{self._filepath}'")

    def save(self, data: dict[str, Any]) -> None:
        save_checkpoint(data, Path(self._get_save_path()))

    def _exists(self) -> bool:
        try:
            return Path(self._get_load_path()).is_file()
        except DatasetError:
            return False

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}


class RunFolderDataset(AbstractVersionedDataset[None, Path]):
    """Loading gives this run's own new folder (``<filepath>/<run version>/<name>``) to write into while a node
    runs, so checkpoints exist during training, for resuming after a crash, not only when the node returns."""

    def __init__(self, filepath: str, version: Version | None = None, metadata: dict[str, Any] | None = None):
        super().__init__(filepath=PurePosixPath(filepath), version=version, exists_function=_path_exists)
        self.metadata = metadata

    def load(self) -> Path:
        folder = Path(self._get_save_path())
        folder.mkdir(parents=True, exist_ok=False)
        return folder

    def save(self, data: None) -> None:
        raise DatasetError("a run folder is written by the node that loads it, not saved")

    def _exists(self) -> bool:
        return True

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}


def _path_exists(path: str) -> bool:
    return Path(path).exists()
