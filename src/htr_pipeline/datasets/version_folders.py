"""A folder of images whose versions are the folders themselves: ``<filepath>/<version>/``.

Kedro's layout for a versioned file is ``<filepath>/<version>/<name>``; for a folder that doubles the name
(``inference/<version>/inference/``). Here each run's files sit right in its version's folder.
"""

from __future__ import annotations

from pathlib import PurePath, PurePosixPath

from kedro.io.core import VersionNotFoundError

from htr_pipeline.datasets.line_image_store import LineImageStoreDataset


class VersionFolderImageStoreDataset(LineImageStoreDataset):
    """``type: htr_pipeline.datasets.version_folders.VersionFolderImageStoreDataset``: as the line image store,
    saved as ``<filepath>/<version>/<relative path>``."""

    def _get_versioned_path(self, version: str) -> PurePosixPath:
        return super()._get_versioned_path(version).parent  # Kedro's checks of the version string still apply

    def _fetch_latest_load_version(self) -> str:
        if self._cached_load_version is None:
            newest = next(iter(self._get_versions()), None)
            if newest is None:
                raise VersionNotFoundError(f"Did not find any versions for {self}")
            self._cached_load_version = PurePath(newest).name
        return self._cached_load_version
