"""Read access to one saved folder of 8-bit grayscale line images, addressed by relative path.

The folder is one version of the ``line_images`` dataset (``datasets/file_folder.py`` saves it); the
manifest of the same ingestion run holds the relative paths. Images are read on demand, so later pipelines
never hold the whole data set in memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from htr_pipeline.data.images import read_grayscale


class LineImageMissingError(FileNotFoundError):
    """A manifest names an image that its line store does not hold."""


class LineImageStore:
    """Read access to one saved version of the image folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path_of(self, relative_path: str) -> Path:
        return self.root / relative_path

    def read(self, relative_path: str) -> np.ndarray:
        """(height, width) uint8 image."""
        path = self.path_of(relative_path)
        if not path.is_file():
            raise LineImageMissingError(f"image '{relative_path}' is not in {self.root}; re-run data_ingestion")
        return read_grayscale(path)

    def read_text(self, relative_path: str) -> str:
        """A UTF-8 text file of the folder (transcriptions, inference's per-input records)."""
        path = self.path_of(relative_path)
        if not path.is_file():
            raise LineImageMissingError(f"file '{relative_path}' is not in {self.root}")
        return path.read_text(encoding="utf-8")

    def names(self, folder: str, suffix: str) -> list[str]:
        """The relative paths of the files ``<folder>/*<suffix>``, sorted."""
        return sorted(path.relative_to(self.root).as_posix() for path in (self.root / folder).glob(f"*{suffix}"))

    def __repr__(self) -> str:
        return f"LineImageStore(root={str(self.root)!r})"
