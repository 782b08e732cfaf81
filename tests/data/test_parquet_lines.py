"""parquet_lines: a Parquet file in the Hugging Face layout, made here from real small PNGs."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from htr_pipeline.config import DataConfig
from htr_pipeline.data.ingestion import assign_splits, ingest
from htr_pipeline.data.materialise import materialise_all
from htr_pipeline.data.sources import MissingColumnError, RejectReason, read_sources


def _png_bytes(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.full((32, 160), 235, dtype=np.uint8)
    for x in rng.integers(0, 150, size=8):
        pixels[8:24, x : x + 3] = 20
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_hugging_face_parquet(path, rows: list[tuple[bytes | None, str | None, str]]) -> None:
    """``image`` as the ``{bytes, path}`` struct that datasets writes, ``text``, ``split``."""
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table(
        {
            "image": pa.array(
                [{"bytes": image, "path": f"line_{i}.png"} for i, (image, _, _) in enumerate(rows)], type=image_type
            ),
            "text": [text for _, text, _ in rows],
            "split": [split for _, _, split in rows],
        }
    )
    pq.write_table(table, path)


def _config(path, **settings) -> DataConfig:
    source = {"kind": "parquet_lines", "name": "hf", "path": str(path), **settings}
    return DataConfig.model_validate({"sources": [source], "image_height": 32, "max_reject_fraction": 1.0})


def test_a_hugging_face_parquet_file_is_ingested_with_its_splits(tmp_path):
    splits = ["train"] * 6 + ["valid"] * 2 + ["test"] * 2
    _write_hugging_face_parquet(
        tmp_path / "train-00000-of-00001.parquet",
        [(_png_bytes(i), f"line  {i}", split) for i, split in enumerate(splits)],
    )
    config = _config(tmp_path / "*.parquet", split_column="split")
    reading = read_sources(config)
    dataset = ingest(assign_splits(reading.candidates, config), reading.rejects, config)
    assert len(dataset.manifest) == 10 and len(dataset.rejects) == 0
    assert dataset.manifest.groupby("split").size().to_dict() == {"test": 2, "train": 6, "valid": 2}
    assert dataset.manifest.loc[0, "transcription"] == "line 0"
    assert (dataset.manifest["original_width"] == 160).all()
    assert '"row": 0' in dataset.manifest.loc[0, "origin"]


def test_bad_rows_are_rejects(tmp_path):
    _write_hugging_face_parquet(
        tmp_path / "lines.parquet",
        [
            (_png_bytes(0), "good", "train"),
            (b"not an image at all", "undecodable", "train"),
            (_png_bytes(1), "   ", "train"),
            (None, "no image", "train"),
            (_png_bytes(2), None, "train"),
            (_png_bytes(3), "odd split", "validation"),
        ],
    )
    config = _config(tmp_path / "lines.parquet", split_column="split")
    reading = read_sources(config)
    samples, image_rejects = materialise_all(reading.candidates, config)
    reasons = {reject.sample_id: reject.reason for reject in [*reading.rejects, *image_rejects]}
    assert [sample.manifest_row["transcription"] for sample in samples] == ["good"]
    assert reasons == {
        "hf:lines/000001": RejectReason.UNREADABLE_IMAGE,
        "hf:lines/000002": RejectReason.EMPTY_TRANSCRIPTION,
        "hf:lines/000003": RejectReason.MISSING_IMAGE,
        "hf:lines/000004": RejectReason.MISSING_TRANSCRIPTION,
        "hf:lines/000005": RejectReason.UNKNOWN_SPLIT,
    }


def test_a_missing_column_names_the_setting(tmp_path):
    _write_hugging_face_parquet(tmp_path / "lines.parquet", [(_png_bytes(0), "good", "train")])
    with pytest.raises(MissingColumnError, match="text_column"):
        read_sources(_config(tmp_path, text_column="transcription"))
