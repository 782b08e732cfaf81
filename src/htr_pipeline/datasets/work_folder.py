"""A folder that work lives in across runs (a sweep's study, its stage-1 index, its trials' run configs and logs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io.core import AbstractDataset, DatasetError


class WorkFolderDataset(AbstractDataset[None, Path]):
    """Loading gives the folder at ``path`` (created if absent), the same for every run; nothing is saved."""

    def __init__(self, path: str, metadata: dict[str, Any] | None = None):
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> Path:
        self._path.mkdir(parents=True, exist_ok=True)
        return self._path.resolve()

    def save(self, data: None) -> None:
        raise DatasetError("a work folder is written into by the node that loads it, not saved")

    def _exists(self) -> bool:
        return True

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
