"""Kedro dataset of a versioned folder of files addressed by relative path: 8-bit grayscale PNG images and UTF-8
texts (the ingested line and page images; inference's restored images, comparisons and transcriptions).

Saving takes ``{relative_path: (height, width) uint8 array or str}``; loading returns the plain reader
:class:`htr_pipeline.data.line_store.LineImageStore`, so the library that reads images never imports Kedro.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from kedro.io.core import AbstractVersionedDataset, DatasetError, Version
from PIL import Image

from htr_pipeline.data.line_store import LineImageStore


class ImageFolderSaveError(OSError):
    """A file of an image folder could not be written (disk full, a name too long): nothing of the save is kept."""


class FileFolderDataset(AbstractVersionedDataset[Mapping[str, np.ndarray], LineImageStore]):
    """Kedro dataset: ``type: htr_pipeline.datasets.file_folder.FileFolderDataset``."""

    def __init__(
        self,
        filepath: str,
        version: Version | None = None,
        png_compress_level: int = 3,
        metadata: dict[str, Any] | None = None,
    ):
        super().__init__(filepath=PurePosixPath(filepath), version=version, exists_function=_is_dir)
        self._png_compress_level = png_compress_level
        self.metadata = metadata

    def load(self) -> LineImageStore:
        return LineImageStore(Path(self._get_load_path()))

    def save(self, data: Mapping[str, np.ndarray | str]) -> None:
        """PNGs from 2-D uint8 arrays; a ``str`` value is saved as UTF-8 text (transcriptions beside images)."""
        save_file_folder(data, Path(self._get_save_path()), self._png_compress_level)

    def _exists(self) -> bool:
        try:
            load_path = self._get_load_path()
        except DatasetError:
            return False
        return Path(load_path).is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}


FolderData = Mapping[str, "np.ndarray | str | Callable[[], Mapping[str, np.ndarray | str]]"]
"""``{relative_path: image or text}``; a value may also be a callable giving such a mapping, called when it is
saved (Kedro's lazy saving): its files are written before the next is made, so they are never all in memory."""


def save_file_folder(data: FolderData, root: Path, png_compress_level: int) -> None:
    """Write ``{relative_path: image or text}`` (or lazily made mappings of them) into the folder ``root``.

    A new folder is written under a hidden name beside it and renamed into place once complete, so a run
    killed while saving leaves no half folder that Kedro would take for a version.
    """
    if root.exists():  # an unversioned folder saved again: written in place, as Kedro overwrites files
        _write(_files(data), root, png_compress_level)
        return
    partial = root.with_name(f".{root.name}.partial")
    partial.mkdir(parents=True, exist_ok=True)
    try:
        _write(_files(data), partial, png_compress_level, checked_against=root)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # a failed save (disk full, a name too long) leaves nothing
        raise
    os.replace(partial, root)


def _files(data: FolderData) -> Iterator[tuple[str, np.ndarray | str]]:
    for key, value in data.items():
        if callable(value):
            yield from value().items()
        else:
            yield key, value


def _write(
    files: Iterable[tuple[str, np.ndarray | str]],
    folder: Path,
    png_compress_level: int,
    checked_against: Path | None = None,
) -> None:
    """Each file into ``folder``; a path that would leave ``checked_against`` (the final folder) stops the save."""
    for relative_path, image in files:
        _inside(checked_against or folder, relative_path)
        target = folder / relative_path
        if not isinstance(image, str) and (image.dtype != np.uint8 or image.ndim != 2):
            raise DatasetError(f"'{relative_path}': expected a 2-D uint8 image, got {image.dtype} {image.shape}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(image, str):
                target.write_text(image, encoding="utf-8")
            else:
                Image.fromarray(image, mode="L").save(target, compress_level=png_compress_level)
        except OSError as error:
            raise ImageFolderSaveError(
                f"could not write '{relative_path}' in {target.parent}: {error.strerror or error}; nothing of this "
                "save was kept. Free disk space (or shorten the file or XML names) and run again."
            ) from error


def _inside(root: Path, relative_path: str) -> Path:
    """The file ``relative_path`` names in ``root``; one outside it is an error, and nothing is saved."""
    target = root / relative_path
    if not target.resolve().is_relative_to(root.resolve()):
        raise DatasetError(
            f"'{relative_path}' would be written to {target.resolve()}, outside {root}; nothing was saved"
        )
    return target


def _is_dir(path: str) -> bool:
    return Path(path).is_dir()
