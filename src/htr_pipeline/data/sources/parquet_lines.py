"""``parquet_lines``: line images in Parquet files, as encoded bytes or the ``{bytes, path}`` struct Hugging Face
``datasets`` writes, with a text column and an optional split column.

One unit per Parquet file: reading it gives one candidate or one reject per row. A configured column missing from
a file stops the run (the settings are wrong for this source).
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from htr_pipeline.config import SPLIT_NAMES, SourceSettings
from htr_pipeline.data.sources.common import (
    SourceNotFoundError,
    WholeSourceError,
    file_reject,
    line_sample,
    sample_id_of,
    text_reject,
)
from htr_pipeline.data.sources.pixels import EncodedImage
from htr_pipeline.data.sources.samples import Reject, RejectReason, unexpected_error
from htr_pipeline.data.sources.units import Outcome, SourceContext, SourceUnit


class ParquetLinesSource(SourceSettings):
    """Line images in Parquet files: encoded bytes, or the ``{bytes, path}`` struct Hugging Face writes."""

    kind: Literal["parquet_lines"]
    name: str = "parquet_lines"
    path: str
    """A Parquet file, a folder of them, or a glob (``data/*.parquet``)."""
    image_column: str = "image"
    text_column: str = "text"
    split_column: str | None = None
    """A column of ``train``/``valid``/``test``; ``null``: the seed splits the rows."""

    @property
    def columns(self) -> list[str]:
        return [self.image_column, self.text_column, *([self.split_column] if self.split_column else [])]


class MissingColumnError(WholeSourceError, KeyError):
    """A configured column is not in a Parquet file of the source."""


def read_parquet_lines(source: ParquetLinesSource, context: SourceContext) -> Iterator[SourceUnit]:
    """Every Parquet file of ``path``, one file at a time, once its columns are checked. An entry that is no
    regular file or no Parquet file is its own reject; a configured column missing from a Parquet file stops the
    run (the settings are wrong for the source)."""
    for parquet_path in _parquet_files(source):
        unusable = file_reject(source.name, None, parquet_path)
        if unusable is None:
            try:
                schema_names = pq.read_schema(parquet_path).names
            except (pa.ArrowException, OSError) as error:
                detail = f"{parquet_path}: not a Parquet file Arrow reads ({' '.join(str(error).split())[:200]})"
                unusable = Reject(source.name, None, str(parquet_path), RejectReason.UNREADABLE_FILE, detail)
        if unusable is not None:
            yield SourceUnit.settled(str(parquet_path), [unusable])
            continue
        missing = [column for column in source.columns if column not in schema_names]
        if missing:
            raise MissingColumnError(
                f"parquet_lines source '{source.name}': {parquet_path} has no column {', '.join(missing)} "
                f"(it has {', '.join(schema_names)}); set image_column, text_column or split_column"
            )
        yield SourceUnit(str(parquet_path), partial(_read_parquet_file, source, parquet_path))


def _parquet_files(source: ParquetLinesSource) -> list[Path]:
    """What ``path`` names, every entry named ``*.parquet`` in a folder included (a folder, a FIFO: rejected)."""
    path = Path(source.path)
    files = sorted(path.glob("*.parquet")) if path.is_dir() else sorted(Path(match) for match in glob.glob(source.path))
    if not files:
        raise SourceNotFoundError(
            f"parquet_lines source '{source.name}': no Parquet file at '{source.path}' (resolved: "
            f"'{path.resolve()}'). Set path to a file, a folder of *.parquet or a glob."
        )
    return files


def _read_parquet_file(source: ParquetLinesSource, parquet_path: Path) -> list[Outcome]:
    """One candidate per row; rows without text or image, or with an unknown split, become rejects."""
    table = pq.read_table(parquet_path, columns=source.columns).to_pydict()
    return [
        _bounded_row(source, parquet_path, row, {column: table[column][row] for column in source.columns})
        for row in range(len(table[source.image_column]))
    ]


def _bounded_row(source: ParquetLinesSource, parquet_path: Path, row: int, values: dict[str, Any]) -> Outcome:
    """:func:`_parquet_row`; a row that fails in a way no check foresaw is its own reject, the file's others stay."""
    try:
        return _parquet_row(source, parquet_path, row, values)
    except Exception as error:  # the boundary of one row
        sample_id = sample_id_of(source.name, f"{parquet_path.stem}/{row:06d}")
        return unexpected_error(source.name, sample_id, f"{parquet_path}#row={row}", error)


def _parquet_row(source: ParquetLinesSource, parquet_path: Path, row: int, values: dict[str, Any]) -> Outcome:
    sample_id = sample_id_of(source.name, f"{parquet_path.stem}/{row:06d}")
    where = f"{parquet_path}#row={row}"
    image = values[source.image_column]
    encoded = image.get("bytes") if isinstance(image, dict) else image
    wrong = [
        f"column {column!r} holds {type(value).__name__} values, not {wanted}"
        for column, value, types, wanted in (
            (source.image_column, encoded, (bytes, bytearray, memoryview), "encoded image bytes"),
            (source.text_column, values[source.text_column], (str,), "text"),
            (source.split_column, values.get(source.split_column) if source.split_column else None, (str,), "text"),
        )
        if value is not None and not isinstance(value, types)
    ]
    if wrong:
        return Reject(source.name, sample_id, where, RejectReason.WRONG_TYPE, "; ".join(wrong))
    if not encoded:
        return Reject(
            source.name, sample_id, where, RejectReason.MISSING_IMAGE, f"no image bytes in {source.image_column!r}"
        )
    rejected = text_reject(source.name, sample_id, where, values[source.text_column], f"column {source.text_column!r}")
    if rejected:
        return rejected
    split = values.get(source.split_column) if source.split_column else None
    if split is not None and split not in SPLIT_NAMES:
        return Reject(
            source.name,
            sample_id,
            where,
            RejectReason.UNKNOWN_SPLIT,
            f"split {split!r} is not one of {', '.join(SPLIT_NAMES)}",
        )
    origin = {"parquet": str(parquet_path), "row": row}
    if isinstance(image, dict) and image.get("path"):
        origin["image"] = image["path"]
    text = values[source.text_column]
    return line_sample(source, sample_id, None, split, text, origin, EncodedImage(bytes(encoded), where))
