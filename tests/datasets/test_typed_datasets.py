"""The charset and the recognizer checkpoints cross the catalog as themselves: a ``Charset``, a
``RecognizerCheckpoint``, ``ReferenceRecognizers``; on disk they stay the JSON and ``.pt`` files they were."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from kedro.io.core import DatasetError, Version

from htr_pipeline.charset import Charset
from htr_pipeline.checkpoints import FORMAT_VERSION, RecognizerCheckpoint, ReferenceRecognizers, load_checkpoint
from htr_pipeline.datasets.charset import CharsetDataset
from htr_pipeline.datasets.checkpoints import RecognizerCheckpointDataset, ReferenceRecognizersDataset
from tests.trained_runs import TINY_JUDGE, TINY_RECOGNIZER

CHARSET = Charset.from_texts(["Père Noël", "abc"])


def test_the_ingestion_document_is_written_whole_and_read_back_as_a_charset(tmp_path: Path):
    path = tmp_path / "charset.json"
    document = {**CHARSET.to_dict(), "missing_by_split": {"train": {}, "valid": {"z": 2}, "test": {}}}
    dataset = CharsetDataset(filepath=str(path), save_args={"ensure_ascii": False, "indent": 2})
    dataset.save(document)
    assert json.loads(path.read_text(encoding="utf-8")) == document
    assert '"è"' in path.read_text(encoding="utf-8")  # save_args apply: symbols as they are, not escaped
    loaded = dataset.load()
    assert isinstance(loaded, Charset) and loaded == CHARSET
    assert json.loads(dataset.preview()) == document  # kedro-viz shows the file, not the object


def test_a_charset_saves_as_its_stored_form(tmp_path: Path):
    dataset = CharsetDataset(filepath=str(tmp_path / "charset.json"))
    dataset.save(CHARSET)
    assert json.loads((tmp_path / "charset.json").read_text()) == CHARSET.to_dict()
    assert dataset.load() == CHARSET


def test_a_document_of_another_convention_is_neither_written_nor_read(tmp_path: Path):
    path = tmp_path / "charset.json"
    dataset = CharsetDataset(filepath=str(path))
    with pytest.raises(
        DatasetError, match=r"refused to write .*charset\.json: it would hold no charset: .*blank_index=1"
    ):
        dataset.save({**CHARSET.to_dict(), "blank_index": 1})
    assert not path.exists()
    path.write_text(json.dumps({**CHARSET.to_dict(), "blank_index": 1}))
    with pytest.raises(DatasetError, match=r"charset\.json holds no charset of this project: .*Re-run data_ingestion"):
        dataset.load()


def test_a_recognizer_checkpoint_round_trips_through_its_versioned_dataset(tmp_path: Path):
    torch.manual_seed(0)
    weights = {"classifier.weight": torch.randn(4, 3)}
    written = RecognizerCheckpoint(weights, TINY_RECOGNIZER, CHARSET, {"seed": 3, "best_val_cer": 0.25})
    dataset = RecognizerCheckpointDataset(filepath=str(tmp_path / "recognizer.pt"), version=Version(None, "v1"))
    dataset.save(written)
    read = RecognizerCheckpointDataset(filepath=str(tmp_path / "recognizer.pt"), version=Version(None, None)).load()
    assert isinstance(read, RecognizerCheckpoint)
    assert (read.config, read.charset) == (TINY_RECOGNIZER, CHARSET)
    assert torch.equal(read.weights["classifier.weight"], weights["classifier.weight"])
    assert read.details == {"format_version": FORMAT_VERSION, "seed": 3, "best_val_cer": 0.25}
    on_disk = load_checkpoint(tmp_path / "recognizer.pt" / "v1" / "recognizer.pt", "test")
    assert on_disk["recognizer_config"] == TINY_RECOGNIZER.model_dump(mode="json")  # the file format is unchanged
    with pytest.raises(DatasetError, match="saves a RecognizerCheckpoint, got dict"):
        dataset.save(written.to_state())


def test_reference_recognizers_round_trip_by_name_through_their_dataset(tmp_path: Path):
    judge = RecognizerCheckpoint({"w": torch.ones(2)}, TINY_JUDGE, CHARSET, {"trained_on": "clean"})
    dataset = ReferenceRecognizersDataset(filepath=str(tmp_path / "reference_recognizers.pt"))
    dataset.save(ReferenceRecognizers(CHARSET, {"judge": judge}))
    read = dataset.load()
    assert isinstance(read, ReferenceRecognizers) and read.charset == CHARSET
    assert list(read.recognizers) == ["judge"] and read.recognizers["judge"].config == TINY_JUDGE
    assert read.recognizers["judge"].details == {"trained_on": "clean"}
