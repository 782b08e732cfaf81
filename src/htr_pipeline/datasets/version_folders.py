"""A folder of files (images and texts) whose versions are the folders themselves: ``<filepath>/<version>/``.

Kedro's layout for a versioned file is ``<filepath>/<version>/<name>``; for a folder that doubles the name
(``inference/<version>/inference/``). Here each run's files sit right in its version's folder. The dataset keeps
its own versions (Kedro hands it the run's ``Version`` as to any ``versioned: true`` entry) rather than bending
``AbstractVersionedDataset``'s path rule, which it could only do by overriding Kedro's private methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from kedro.io.core import AbstractDataset, DatasetError, Version, VersionNotFoundError, generate_timestamp

from htr_pipeline.data.line_store import LineImageStore
from htr_pipeline.datasets.file_folder import FolderData, save_file_folder


class VersionFolderDataset(AbstractDataset[Mapping[str, np.ndarray | str], LineImageStore]):
    """``type: htr_pipeline.datasets.version_folders.VersionFolderDataset``: as the line image store,
    saved as ``<filepath>/<version>/<relative path>``; the version methods mean what Kedro's do."""

    def __init__(
        self,
        filepath: str,
        version: Version | None = None,
        png_compress_level: int = 3,
        metadata: dict[str, Any] | None = None,
    ):
        self._root = Path(filepath)
        self._version = version
        self._png_compress_level = png_compress_level
        self._save_version: str | None = None
        self.metadata = metadata

    def resolve_save_version(self) -> str | None:
        """The run's version (None when the entry is not versioned)."""
        if self._version is None:
            return None
        if self._version.save is None and self._save_version is None:
            self._save_version = generate_timestamp()
        return self._version.save or self._save_version

    def resolve_load_version(self) -> str | None:
        """The version given (``--load-versions``), else the newest saved one (None when not versioned)."""
        if self._version is None:
            return None
        if self._version.load is not None:
            return self._version.load
        versions = self.list_versions(full_path=False)
        if not versions:
            raise VersionNotFoundError(f"Did not find any versions for {self}")
        return versions[0]

    def list_versions(self, full_path: bool = True) -> list[str]:
        """Saved versions, newest first: their folders' paths, or (``full_path=False``) their names. A folder
        still being written (hidden ``.<version>.partial``) is none."""
        folders = sorted(
            (path for path in self._root.glob("*") if path.is_dir() and not path.name.startswith(".")), reverse=True
        )
        return [str(folder) if full_path else folder.name for folder in folders]

    def load(self) -> LineImageStore:
        version = self.resolve_load_version()
        return LineImageStore(self._root if version is None else self._root / version)

    def save(self, data: FolderData) -> None:
        """As :func:`save_file_folder`: values may be lazily made mappings, written one at a time."""
        version = self.resolve_save_version()
        if version is None:
            save_file_folder(data, self._root, self._png_compress_level)
            return
        folder = self._root / version
        if folder.exists():
            raise DatasetError(f"Save path '{folder}' for {self} must not exist if versioning is enabled.")
        save_file_folder(data, folder, self._png_compress_level)

    def _exists(self) -> bool:
        try:
            version = self.resolve_load_version()
        except VersionNotFoundError:
            return False
        return (self._root if version is None else self._root / version).is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._root), "version": self._version}
