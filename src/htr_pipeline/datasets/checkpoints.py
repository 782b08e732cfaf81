"""Kedro datasets for checkpoints: one file per version, loaded as its typed payload, and a folder a node writes
checkpoints into live."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, TypeVar

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version

from htr_pipeline.checkpoints import RecognizerCheckpoint, ReferenceRecognizers, load_checkpoint, save_checkpoint

_Payload = TypeVar("_Payload", RecognizerCheckpoint, ReferenceRecognizers)


class _CheckpointDataset(AbstractVersionedDataset[_Payload, _Payload]):
    """A checkpoint in the project's format, read and written by :mod:`htr_pipeline.checkpoints` (atomic save,
    ``weights_only=True`` load with the format check); nodes receive and return its typed payload."""

    payload: ClassVar[type[RecognizerCheckpoint] | type[ReferenceRecognizers]]

    def __init__(self, filepath: str, version: Version | None = None, metadata: dict[str, Any] | None = None):
        super().__init__(filepath=PurePosixPath(filepath), version=version, exists_function=_path_exists)
        self.metadata = metadata

    def load(self) -> _Payload:
        path = Path(self._get_load_path())
        return self.payload.from_state(load_checkpoint(path, config_key=f"catalog entry '{self._filepath}'"), path)

    def save(self, data: _Payload) -> None:
        if not isinstance(data, self.payload):
            raise DatasetError(
                f"{type(self).__name__} '{self._filepath}' saves a {self.payload.__name__}, got {type(data).__name__}"
            )
        save_checkpoint(data.to_state(), Path(self._get_save_path()))

    def _exists(self) -> bool:
        try:
            return Path(self._get_load_path()).is_file()
        except DatasetError:
            return False

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}


class RecognizerCheckpointDataset(_CheckpointDataset[RecognizerCheckpoint]):
    """One recognizer with its settings and charset (stage 1's ``in_loop_recognizer``)."""

    payload = RecognizerCheckpoint


class ReferenceRecognizersDataset(_CheckpointDataset[ReferenceRecognizers]):
    """The judge and the baseline recognizers of a run, by name (``reference_recognizers``)."""

    payload = ReferenceRecognizers


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
