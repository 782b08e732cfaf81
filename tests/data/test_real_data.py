"""Ingestion of the real scans beside the project (skipped where they are absent)."""

import pytest

from htr_pipeline.config import DataConfig
from htr_pipeline.data.ingestion import assign_splits, charset_document, ingest
from htr_pipeline.data.sources import read_sources
from tests.conftest import SHARED_DATA, requires_shared_data


def _ingest(source: dict, **overrides):
    config = DataConfig.model_validate({"sources": [source], "num_workers": 2, **overrides})
    reading = read_sources(config)
    return ingest(assign_splits(reading.candidates, config), reading.rejects, config)


@pytest.mark.slow
@requires_shared_data("testaments_poilus_fr")
def test_testaments_de_poilus_keep_their_splits_and_writers():
    dataset = _ingest(
        {
            "kind": "line_folder",
            "name": "poilus",
            "path": str(SHARED_DATA / "testaments_poilus_fr"),
            "group_pattern": "will_(?P<group>[^-]+)-",
        }
    )
    manifest = dataset.manifest
    assert len(manifest) == 1060 and len(dataset.rejects) == 0
    assert manifest.groupby("split").size().to_dict() == {"test": 260, "train": 600, "valid": 200}
    assert manifest.groupby("group")["split"].nunique().max() == 1
    assert (manifest["height"] == 64).all() and (manifest["width"] <= 512).all()
    charset = charset_document(manifest)
    train_text = "".join(manifest.loc[manifest["split"] == "train", "transcription"])
    assert set(charset["symbols"]) == set(train_text)
    assert {"œ", "’", "é", "°"} <= set("".join(manifest["transcription"]))
    for split, missing in charset["missing_by_split"].items():
        assert not set(missing) & set(charset["symbols"]), split


@requires_shared_data("dibco_2009_2011")
def test_dibco_gives_36_page_pairs_without_text():
    dataset = _ingest({"kind": "paired_folder", "name": "dibco", "path": str(SHARED_DATA / "dibco_2009_2011")})
    manifest = dataset.manifest
    assert len(manifest) == 36 and len(dataset.rejects) == 0
    assert manifest["transcription"].isna().all()
    assert (manifest["image_type"] == "page").all() and (manifest["degraded_origin"] == "source").all()
    assert (manifest["width"] == manifest["original_width"]).all()
    assert set(manifest["split"]) == {"train", "valid", "test"}
