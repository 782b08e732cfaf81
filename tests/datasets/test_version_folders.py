"""A folder whose versions are the folders themselves, versioned as Kedro versions every other output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from kedro.io import DataCatalog
from kedro.io.core import DatasetError, Version

from htr_pipeline.datasets.version_folders import VersionFolderDataset

IMAGE = np.full((4, 6), 200, dtype=np.uint8)


def _dataset(root: Path, load: str | None = None, save: str | None = None) -> VersionFolderDataset:
    return VersionFolderDataset(filepath=str(root), version=Version(load, save))


def test_each_run_writes_its_own_version_folder_and_loading_reads_the_newest_complete_one(tmp_path: Path):
    root = tmp_path / "inference"
    _dataset(root, save="2026-01-01T00.00.00.000Z").save({"restored/a.png": IMAGE, "transcriptions/a.txt": "abc"})
    _dataset(root, save="2026-01-02T00.00.00.000Z").save({"restored/b.png": IMAGE})
    (root / ".2026-01-03T00.00.00.000Z.partial" / "restored").mkdir(parents=True)  # a save killed half-way
    latest = _dataset(root)
    assert latest.list_versions(full_path=False) == ["2026-01-02T00.00.00.000Z", "2026-01-01T00.00.00.000Z"]
    assert latest.load().root == root / "2026-01-02T00.00.00.000Z"
    assert latest.load().read("restored/b.png").tolist() == IMAGE.tolist()
    older = _dataset(root, load="2026-01-01T00.00.00.000Z").load()
    assert older.path_of("transcriptions/a.txt").read_text(encoding="utf-8") == "abc"
    with pytest.raises(DatasetError, match="must not exist"):
        _dataset(root, save="2026-01-02T00.00.00.000Z").save({"restored/c.png": IMAGE})


def test_the_catalog_hands_it_the_runs_save_version(tmp_path: Path):
    catalog = DataCatalog.from_config(
        {
            "outputs": {
                "type": "htr_pipeline.datasets.version_folders.VersionFolderDataset",
                "filepath": str(tmp_path / "inference"),
                "versioned": True,
            }
        },
        save_version="2026-02-03T04.05.06.789Z",
    )
    assert not catalog.exists("outputs")
    catalog.save("outputs", {"restored/a.png": IMAGE})
    assert catalog.exists("outputs")
    assert sorted(path.name for path in (tmp_path / "inference").iterdir()) == ["2026-02-03T04.05.06.789Z"]
    assert catalog.get("outputs").list_versions() == [str(tmp_path / "inference" / "2026-02-03T04.05.06.789Z")]
