"""Reading the configured sources into sample candidates, and every unusable input into rejects.

A source yields :class:`SampleCandidate` rows (what to load or render, which text, which split if the source
says) and :class:`Reject` rows (what cannot be used, and why). Nothing here decodes pixels, with one exception:
a page XML whose coordinate frame only the page's ink can settle (``htr_pipeline.data.line_crops``). Image
checks and line crops happen when samples are materialised (``htr_pipeline.data.materialise``), one decode per
page.
"""

from __future__ import annotations

import glob
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError

from htr_pipeline.charset import control_characters, describe_code_points, invisible_characters, normalise_text
from htr_pipeline.config import (
    SPLIT_NAMES,
    DataConfig,
    LineFolderSource,
    PairedFolderSource,
    ParquetLinesSource,
    Source,
    SyntheticSource,
    XmlPagesSource,
)
from htr_pipeline.data.images import IMAGE_SUFFIXES, read_grayscale
from htr_pipeline.data.line_crops import (
    FRAME_WIN_RATIO,
    MIN_DESKEW_DEGREES,
    CoordinateFrame,
    LineCrop,
    baseline_angle_degrees,
    candidate_frames,
    ink_share,
    read_page_image_info,
)
from htr_pipeline.data.page_xml import (
    PageLayout,
    UnknownXmlFormatError,
    XmlLine,
    XmlParseError,
    count_text_lines,
    read_page_layout,
)
from htr_pipeline.data.synthetic import SyntheticLinePlan, plan_synthetic_lines


class RejectReason(StrEnum):
    UNREADABLE_IMAGE = "unreadable_image"
    MISSING_IMAGE = "missing_image"
    MISSING_CLEAN_IMAGE = "missing_clean_image"
    MISSING_TRANSCRIPTION = "missing_transcription"
    EMPTY_TRANSCRIPTION = "empty_transcription"
    MALFORMED_LABEL_LINE = "malformed_label_line"
    DUPLICATE_ID = "duplicate_id"
    IMAGE_TOO_SMALL = "image_too_small"
    SIZE_MISMATCH = "size_mismatch"
    LABEL_TOO_LONG = "label_too_long"
    UNKNOWN_SPLIT = "unknown_split"
    NOT_IN_SPLITS = "not_in_splits"
    MISSING_PAGE_IMAGE = "missing_page_image"
    XML_PARSE_ERROR = "xml_parse_error"
    UNKNOWN_XML_FORMAT = "unknown_xml_format"
    LINE_WITHOUT_COORDS = "line_without_coords"
    LINE_OUTSIDE_IMAGE = "line_outside_image"
    AMBIGUOUS_COORDINATES = "ambiguous_coordinates"
    VERTICAL_LINE = "vertical_line"
    SKIPPED_REGION_TYPE = "skipped_region_type"
    PATH_OUTSIDE_SOURCE = "path_outside_source"
    IMAGE_TOO_LARGE = "image_too_large"
    UNDECODABLE_TEXT = "undecodable_text"
    CONTROL_CHARACTER = "control_character"


@dataclass(frozen=True)
class Reject:
    source: str
    sample_id: str | None
    path: str | None
    reason: RejectReason
    detail: str


@dataclass(frozen=True)
class SampleCandidate:
    """One sample before its pixels are read: where its images come from and what it says."""

    sample_id: str
    source: str
    source_kind: str
    image_type: str
    """``line`` (normalised to the model height) or ``page`` (kept at its own size)."""
    group: str | None
    split: str | None
    """The split the source assigns (``splits.tsv``, synthetic plan); ``None`` lets the seed decide."""
    transcription: str | None
    """Normalised text; ``None`` for pairs without text."""
    clean_path: str | None = None
    degraded_path: str | None = None
    synthetic_plan: SyntheticLinePlan | None = None
    line_crop: LineCrop | None = None
    """A line cut from a page image (xml_pages); materialisation decodes each page once for all its lines."""
    image_bytes: bytes | None = None
    """An encoded image held in the source itself (parquet_lines)."""
    origin: str | None = None
    """JSON: where in the source the sample comes from (page, line, region, reading order, geometry)."""
    invisible_removed: str | None = None
    """JSON ``{"U+00AD": count}``: the invisible characters normalisation removed from the source's text."""


class SourceNotFoundError(FileNotFoundError):
    """A configured source path does not exist."""


class SourceEncodingError(ValueError):
    """A label file (``labels.tsv``, ``splits.tsv``) of a source is not UTF-8: none of its lines can be read."""


@dataclass
class SourceReading:
    candidates: list[SampleCandidate]
    rejects: list[Reject]


def read_sources(data: DataConfig) -> SourceReading:
    """Candidates and rejects of every configured source, then the label-length screen."""
    reading = SourceReading(candidates=[], rejects=[])
    for position, source in enumerate(data.sources):
        _check_source_path(source, position)
        part = _read_source(source, data.seed)
        reading.candidates.extend(part.candidates)
        reading.rejects.extend(part.rejects)
    return screen_label_lengths(reading, data.max_label_length)


def _check_source_path(source: Source, position: int) -> None:
    path = getattr(source, "path", None)
    if path is not None and not isinstance(source, ParquetLinesSource) and not Path(path).is_dir():
        raise SourceNotFoundError(
            f"data.sources[{position}].path: folder '{path}' (resolved: '{Path(path).resolve()}') does not "
            f"exist. Fix the path in conf/<env>/parameters.yml or remove the '{source.name}' source."
        )


def _read_source(source: Source, seed: int) -> SourceReading:
    if isinstance(source, SyntheticSource):
        return read_synthetic_source(source, seed)
    if isinstance(source, LineFolderSource):
        return read_line_folder(source)
    if isinstance(source, XmlPagesSource):
        return read_xml_pages(source)
    if isinstance(source, ParquetLinesSource):
        return read_parquet_lines(source)
    return read_paired_folder(source)


def screen_label_lengths(reading: SourceReading, max_label_length: int) -> SourceReading:
    kept, rejects = [], list(reading.rejects)
    for candidate in reading.candidates:
        text = candidate.transcription
        if text is not None and len(text) > max_label_length:
            rejects.append(
                Reject(
                    candidate.source,
                    candidate.sample_id,
                    candidate.clean_path or (candidate.line_crop.page_path if candidate.line_crop else None),
                    RejectReason.LABEL_TOO_LONG,
                    f"{len(text)} symbols > data.max_label_length={max_label_length}",
                )
            )
        else:
            kept.append(candidate)
    return SourceReading(kept, rejects)


# --------------------------------------------------------------------------------------------- synthetic


def read_synthetic_source(source: SyntheticSource, seed: int) -> SourceReading:
    candidates = [
        SampleCandidate(
            sample_id=plan.sample_id,
            source=source.name,
            source_kind=source.kind,
            image_type="line",
            group=None,
            split=plan.split,
            transcription=normalise_text(plan.text),
            synthetic_plan=plan,
        )
        for plan in plan_synthetic_lines(source, seed)
    ]
    return SourceReading(candidates, [])


# ------------------------------------------------------------------------------------------- line folder


def read_line_folder(source: LineFolderSource) -> SourceReading:
    """``lines/*`` + ``labels.tsv`` (+ ``splits.tsv``) when ``labels.tsv`` exists, else ``name.png`` + ``name.txt``."""
    root = Path(source.path)
    if (root / "labels.tsv").is_file():
        return _read_labelled_lines(source, root)
    return _read_text_sidecar_lines(source, root)


def _read_labelled_lines(source: LineFolderSource, root: Path) -> SourceReading:
    labels_path = root / "labels.tsv"
    image_dir = root / "lines" if (root / "lines").is_dir() else root
    labels = _read_tsv(labels_path, source.name)
    texts, rejects = labels.values, list(labels.rejects)
    split_reading = _read_splits(root / "splits.tsv", source.name)
    rejects += split_reading.rejects
    images_by_name = {path.name: path for path in _image_files(image_dir)}
    candidates = []
    for file_name, text in texts.items():
        sample_id = _sample_id(source.name, Path(file_name).with_suffix("").as_posix())
        image_path = image_dir / file_name
        escaping = _outside_source(
            source.name, sample_id, image_path, root, f"{labels.where(file_name)}: '{file_name}'"
        )
        if escaping:
            rejects.append(escaping)
            continue
        if file_name not in images_by_name and not image_path.is_file():
            rejects.append(
                Reject(
                    source.name,
                    sample_id,
                    str(image_path),
                    RejectReason.MISSING_IMAGE,
                    f"listed in {labels_path} but the file does not exist",
                )
            )
            continue
        rejected = _text_reject(source.name, sample_id, str(image_path), text, str(labels_path))
        split = _split_of(file_name, split_reading, sample_id, str(image_path), source.name)
        if rejected or isinstance(split, Reject):
            rejects.append(rejected or split)
            continue
        candidates.append(_line_candidate(source, sample_id, image_path, text, split))
    for file_name, image_path in sorted(images_by_name.items()):
        if file_name not in texts:
            rejects.append(
                Reject(
                    source.name,
                    _sample_id(source.name, image_path.stem),
                    str(image_path),
                    RejectReason.MISSING_TRANSCRIPTION,
                    f"no row for it in {labels_path}",
                )
            )
    reading = SourceReading(candidates, rejects)
    reading.rejects += _keys_without_files(split_reading.rows, image_dir, root, source.name, reading)
    return _drop_duplicate_ids(reading)


def _read_text_sidecar_lines(source: LineFolderSource, root: Path) -> SourceReading:
    split_reading = _read_splits(root / "splits.tsv", source.name)
    candidates, rejects = [], list(split_reading.rejects)
    for image_path in _image_files(root, recursive=True):
        relative = image_path.relative_to(root)
        sample_id = _sample_id(source.name, relative.with_suffix("").as_posix())
        text_path = image_path.with_suffix(".txt")
        escaping = _outside_source(source.name, sample_id, image_path, root, f"'{image_path}' (a symbolic link)")
        if escaping:
            rejects.append(escaping)
            continue
        if not text_path.is_file():
            rejects.append(
                Reject(
                    source.name,
                    sample_id,
                    str(image_path),
                    RejectReason.MISSING_TRANSCRIPTION,
                    f"no {text_path.name} next to it",
                )
            )
            continue
        try:
            text = read_utf8(text_path)
        except UnicodeDecodeError as error:
            detail = _not_utf8(text_path, error)
            rejects.append(Reject(source.name, sample_id, str(text_path), RejectReason.UNDECODABLE_TEXT, detail))
            continue
        rejected = _text_reject(source.name, sample_id, str(image_path), text, str(text_path))
        split = _split_of(relative.as_posix(), split_reading, sample_id, str(image_path), source.name)
        if rejected or isinstance(split, Reject):
            rejects.append(rejected or split)
            continue
        candidates.append(_line_candidate(source, sample_id, image_path, text, split))
    for text_path in sorted(root.rglob("*.txt")):
        if not any(text_path.with_suffix(suffix).is_file() for suffix in IMAGE_SUFFIXES):
            rejects.append(
                Reject(
                    source.name,
                    _sample_id(source.name, text_path.stem),
                    str(text_path),
                    RejectReason.MISSING_IMAGE,
                    "transcription without an image of the same name",
                )
            )
    reading = SourceReading(candidates, rejects)
    reading.rejects += _keys_without_files(split_reading.rows, root, root, source.name, reading)
    return _drop_duplicate_ids(reading)


def _line_candidate(
    source: LineFolderSource, sample_id: str, image_path: Path, text: str, split: str | None
) -> SampleCandidate:
    group = _group_of(image_path.name, source.group_pattern, source.name)
    return _line_sample(source, sample_id, group, split, text, None, clean_path=str(image_path))


# ----------------------------------------------------------------------------------------- paired folder


def read_paired_folder(source: PairedFolderSource) -> SourceReading:
    """``images/<id>.*`` degraded, ``gt/<id>_gt.*`` or ``gt/<id>.*`` clean, optional ``labels.tsv``."""
    root = Path(source.path)
    for required in ("images", "gt"):
        if not (root / required).is_dir():
            raise SourceNotFoundError(
                f"paired_folder source '{source.name}': '{root / required}' does not exist; a paired folder "
                "holds images/ (degraded) and gt/ (clean)."
            )
    labels_path = root / "labels.tsv"
    labels = _read_tsv(labels_path, source.name) if labels_path.is_file() else None
    texts, rejects = (labels.values, list(labels.rejects)) if labels else ({}, [])
    split_reading = _read_splits(root / "splits.tsv", source.name)
    rejects += split_reading.rejects
    clean_by_stem = _clean_images_by_stem(root / "gt")
    candidates = []
    for degraded_path in _image_files(root / "images"):
        sample_id = _sample_id(source.name, degraded_path.stem)
        clean_path = clean_by_stem.pop(degraded_path.stem, None)
        escaping = _outside_source(source.name, sample_id, degraded_path, root, f"'{degraded_path}' (a symbolic link)")
        if clean_path is not None and not escaping:
            escaping = _outside_source(source.name, sample_id, clean_path, root, f"'{clean_path}' (a symbolic link)")
        if escaping:
            rejects.append(escaping)
            continue
        if clean_path is None:
            rejects.append(
                Reject(
                    source.name,
                    sample_id,
                    str(degraded_path),
                    RejectReason.MISSING_CLEAN_IMAGE,
                    f"no gt/{degraded_path.stem}_gt.* or gt/{degraded_path.stem}.*",
                )
            )
            continue
        text = texts.get(degraded_path.name)
        rejected = (
            _text_reject(source.name, sample_id, str(degraded_path), text, str(labels_path))
            if text is not None
            else None
        )
        split = _split_of(degraded_path.name, split_reading, sample_id, str(degraded_path), source.name)
        if rejected or isinstance(split, Reject):
            rejects.append(rejected or split)
            continue
        candidates.append(
            SampleCandidate(
                sample_id=sample_id,
                source=source.name,
                source_kind=source.kind,
                image_type=source.image_type,
                group=_group_of(degraded_path.name, source.group_pattern, source.name) or sample_id,
                split=split,
                transcription=normalise_text(text) if text is not None else None,
                invisible_removed=_invisible_removed(text) if text is not None else None,
                clean_path=str(clean_path),
                degraded_path=str(degraded_path),
            )
        )
    for stem, clean_path in sorted(clean_by_stem.items()):
        rejects.append(
            Reject(
                source.name,
                _sample_id(source.name, stem),
                str(clean_path),
                RejectReason.MISSING_IMAGE,
                "clean image without a degraded image in images/",
            )
        )
    reading = SourceReading(candidates, rejects)
    for rows in (labels, split_reading.rows):
        reading.rejects += _keys_without_files(rows, root / "images", root, source.name, reading)
    return _drop_duplicate_ids(reading)


def _clean_images_by_stem(gt_dir: Path) -> dict[str, Path]:
    by_stem: dict[str, Path] = {}
    for path in _image_files(gt_dir):
        stem = path.stem[: -len("_gt")] if path.stem.endswith("_gt") else path.stem
        by_stem.setdefault(stem, path)
    return by_stem


# --------------------------------------------------------------------------------------------- xml pages


def read_xml_pages(source: XmlPagesSource) -> SourceReading:
    """Every ``TextLine`` of every ``*.xml`` below ``path`` as a line candidate or a reject, never neither."""
    root = Path(source.path)
    reading = SourceReading(candidates=[], rejects=[])
    for xml_path in sorted(root.rglob("*.xml")):
        part = _read_xml_page(source, root, xml_path)
        reading.candidates.extend(part.candidates)
        reading.rejects.extend(part.rejects)
    return _drop_duplicate_ids(reading)


def _read_xml_page(source: XmlPagesSource, root: Path, xml_path: Path) -> SourceReading:
    page_key = xml_path.relative_to(root).with_suffix("").as_posix()
    try:
        layout = read_page_layout(xml_path)
    except (XmlParseError, UnknownXmlFormatError) as error:
        reason = (
            RejectReason.UNKNOWN_XML_FORMAT
            if isinstance(error, UnknownXmlFormatError)
            else RejectReason.XML_PARSE_ERROR
        )
        return SourceReading([], _whole_page_rejects(source, xml_path, page_key, reason, str(error)))
    image_path = _page_image_path(xml_path, layout.image_filename)
    if image_path is None:
        detail = f"no image {layout.image_filename or xml_path.stem + '.*'} beside {xml_path.name}"
        return SourceReading(
            [], _line_rejects(source, xml_path, page_key, layout.lines, RejectReason.MISSING_PAGE_IMAGE, detail)
        )
    for path in (xml_path, image_path):
        escaping = _outside_source(source.name, None, path, root, f"'{path}' (a symbolic link)")
        if escaping:
            return SourceReading(
                [], _line_rejects(source, xml_path, page_key, layout.lines, escaping.reason, escaping.detail)
            )
    try:
        image = read_page_image_info(image_path)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        too_large = isinstance(error, Image.DecompressionBombError)
        reason = RejectReason.IMAGE_TOO_LARGE if too_large else RejectReason.UNREADABLE_IMAGE
        detail = f"{image_path}: {'too large for Pillow to open' if too_large else 'cannot read image'} ({error})"
        return SourceReading([], _line_rejects(source, xml_path, page_key, layout.lines, reason, detail))
    frame = _coordinate_frame(layout, candidate_frames(layout.declared_size, image), image_path)
    if isinstance(frame, Reject):
        return SourceReading([], _line_rejects(source, xml_path, page_key, layout.lines, frame.reason, frame.detail))
    group = _group_of(xml_path.name, source.group_pattern, source.name) or _sample_id(source.name, page_key)
    reading = SourceReading(candidates=[], rejects=[])
    for line in layout.lines:
        outcome = _xml_line(source, layout, line, frame, page_key, xml_path, image_path, group)
        (reading.rejects if isinstance(outcome, Reject) else reading.candidates).append(outcome)
    return reading


def _xml_line(
    source: XmlPagesSource,
    layout: PageLayout,
    line: XmlLine,
    frame: CoordinateFrame,
    page_key: str,
    xml_path: Path,
    image_path: Path,
    group: str,
) -> SampleCandidate | Reject:
    sample_id = _sample_id(source.name, f"{page_key}/{line.line_id}")

    def reject(reason: RejectReason, detail: str) -> Reject:
        return Reject(source.name, sample_id, str(xml_path), reason, f"line {line.line_id}: {detail}")

    if line.region_type in source.skip_region_types:
        return reject(RejectReason.SKIPPED_REGION_TYPE, f"region {line.region_id} is a {line.region_type}")
    if line.polygon is None:
        return reject(RejectReason.LINE_WITHOUT_COORDS, "no Coords/Shape/box")
    if not normalise_text(line.text):
        return reject(RejectReason.EMPTY_TRANSCRIPTION, "no text")
    if controls := control_characters(line.text):
        return reject(RejectReason.CONTROL_CHARACTER, f"control character {describe_code_points(controls)}")
    if not frame.fits(line.polygon):
        xs, ys = [x for x, _ in line.polygon], [y for _, y in line.polygon]
        return reject(
            RejectReason.LINE_OUTSIDE_IMAGE,
            f"box x {min(xs):.0f}..{max(xs):.0f}, y {min(ys):.0f}..{max(ys):.0f} does not fit the "
            f"{frame.size[0]:.0f} x {frame.size[1]:.0f} page the coordinates are in ({frame.name})",
        )
    baseline_degrees = baseline_angle_degrees(frame.transform(line.baseline) if line.baseline else None)
    inclination = (baseline_degrees + 90.0) % 180.0 - 90.0
    if abs(inclination) > source.steep_line_degrees:
        if source.steep_lines == "reject":
            return reject(
                RejectReason.VERTICAL_LINE,
                f"baseline at {baseline_degrees:.1f} degrees > steep_line_degrees={source.steep_line_degrees}",
            )
        rotation = baseline_degrees
    else:
        rotation = inclination if abs(inclination) >= MIN_DESKEW_DEGREES else 0.0
    origin = {
        "xml": str(xml_path),
        "image": str(image_path),
        "xml_format": layout.xml_format,
        "line_id": line.line_id,
        "region_id": line.region_id,
        "region_type": line.region_type,
        "reading_order": line.reading_order,
        **frame.describe(),
        "baseline_degrees": round(baseline_degrees, 3),
        "rotation_degrees": round(rotation, 3),
    }
    crop = LineCrop(str(image_path), frame.transform(line.polygon), rotation, source.margin_px, source.line_mask)
    return _line_sample(source, sample_id, group, None, line.text, origin, line_crop=crop)


def _line_sample(
    source: LineFolderSource | XmlPagesSource | ParquetLinesSource,
    sample_id: str,
    group: str | None,
    split: str | None,
    text: str,
    origin: dict[str, Any] | None,
    **pixels: Any,
) -> SampleCandidate:
    """A real text line (``text`` as the source gives it); ``pixels`` says where its image is (a file, a page
    crop, encoded bytes)."""
    return SampleCandidate(
        sample_id=sample_id,
        source=source.name,
        source_kind=source.kind,
        image_type="line",
        group=group,
        split=split,
        transcription=normalise_text(text),
        invisible_removed=_invisible_removed(text),
        origin=json.dumps(origin, ensure_ascii=False) if origin is not None else None,
        **pixels,
    )


def _coordinate_frame(layout: PageLayout, frames: list[CoordinateFrame], image_path: Path) -> CoordinateFrame | Reject:
    """The one frame given, or among several the one whose lines fit and hold clearly the most ink."""
    if len(frames) == 1:
        return frames[0]
    polygons = [line.polygon for line in layout.lines if line.polygon is not None]
    fitting = [frame for frame in frames if all(frame.fits(polygon) for polygon in polygons)]
    names = ", ".join(frame.name for frame in frames)
    if not fitting:
        return Reject(
            "", None, None, RejectReason.LINE_OUTSIDE_IMAGE, f"the coordinates fit none of the frames {names}"
        )
    if len(fitting) == 1:
        return fitting[0]
    page = read_grayscale(image_path)
    shares = sorted(
        ((ink_share(page, [f.transform(p) for p in polygons]), f) for f in fitting), key=lambda item: -item[0]
    )
    (best_share, best), (runner_up_share, runner_up) = shares[0], shares[1]
    if best_share >= FRAME_WIN_RATIO * runner_up_share:
        return CoordinateFrame(best.name, best.size, best.scale, best.orientation)
    return Reject(
        "",
        None,
        None,
        RejectReason.AMBIGUOUS_COORDINATES,
        f"EXIF orientation turns the page and the coordinates fit several frames; the lines hold ink "
        f"{best_share:.3f} in {best.name} vs {runner_up_share:.3f} in {runner_up.name} (< {FRAME_WIN_RATIO}x)",
    )


def _page_image_path(xml_path: Path, image_filename: str | None) -> Path | None:
    """The file the XML names (beside it, by its base name), else an image with the XML's stem."""
    if image_filename:
        named = xml_path.parent / Path(image_filename.replace("\\", "/")).name
        if named.is_file():
            return named
    return next((path for suffix in sorted(IMAGE_SUFFIXES) if (path := xml_path.with_suffix(suffix)).is_file()), None)


def _line_rejects(
    source: XmlPagesSource, xml_path: Path, page_key: str, lines: tuple[XmlLine, ...], reason: RejectReason, detail: str
) -> list[Reject]:
    return [
        Reject(source.name, _sample_id(source.name, f"{page_key}/{line.line_id}"), str(xml_path), reason, detail)
        for line in lines
    ]


def _whole_page_rejects(
    source: XmlPagesSource, xml_path: Path, page_key: str, reason: RejectReason, detail: str
) -> list[Reject]:
    """One reject per ``TextLine`` when the file is well-formed enough to count them, else one for the file."""
    try:
        lines = count_text_lines(xml_path)
    except XmlParseError:
        lines = 0
    if lines == 0:
        return [Reject(source.name, None, str(xml_path), reason, detail)]
    return [
        Reject(source.name, _sample_id(source.name, f"{page_key}/line_{index}"), str(xml_path), reason, detail)
        for index in range(lines)
    ]


# ----------------------------------------------------------------------------------------- parquet lines


class MissingColumnError(KeyError):
    """A configured column is not in a Parquet file of the source."""


def read_parquet_lines(source: ParquetLinesSource) -> SourceReading:
    """One candidate per row; rows without text or image, or with an unknown split, become rejects."""
    reading = SourceReading(candidates=[], rejects=[])
    columns = [source.image_column, source.text_column, *([source.split_column] if source.split_column else [])]
    for parquet_path in _parquet_files(source):
        schema_names = pq.read_schema(parquet_path).names
        missing = [column for column in columns if column not in schema_names]
        if missing:
            raise MissingColumnError(
                f"parquet_lines source '{source.name}': {parquet_path} has no column {', '.join(missing)} "
                f"(it has {', '.join(schema_names)}); set image_column, text_column or split_column"
            )
        table = pq.read_table(parquet_path, columns=columns).to_pydict()
        for row in range(len(table[source.image_column])):
            outcome = _parquet_row(source, parquet_path, row, {column: table[column][row] for column in columns})
            (reading.rejects if isinstance(outcome, Reject) else reading.candidates).append(outcome)
    return _drop_duplicate_ids(reading)


def _parquet_files(source: ParquetLinesSource) -> list[Path]:
    path = Path(source.path)
    files = sorted(path.glob("*.parquet")) if path.is_dir() else sorted(Path(match) for match in glob.glob(source.path))
    if not files:
        raise SourceNotFoundError(
            f"parquet_lines source '{source.name}': no Parquet file at '{source.path}' (resolved: "
            f"'{path.resolve()}'). Set path to a file, a folder of *.parquet or a glob."
        )
    return files


def _parquet_row(
    source: ParquetLinesSource, parquet_path: Path, row: int, values: dict[str, Any]
) -> SampleCandidate | Reject:
    sample_id = _sample_id(source.name, f"{parquet_path.stem}/{row:06d}")
    where = f"{parquet_path}#row={row}"
    image = values[source.image_column]
    encoded = image.get("bytes") if isinstance(image, dict) else image
    if not encoded:
        return Reject(
            source.name, sample_id, where, RejectReason.MISSING_IMAGE, f"no image bytes in {source.image_column!r}"
        )
    rejected = _text_reject(source.name, sample_id, where, values[source.text_column], f"column {source.text_column!r}")
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
    return _line_sample(source, sample_id, None, split, text, origin, image_bytes=bytes(encoded))


# -------------------------------------------------------------------------------------------- shared bits


@dataclass
class _TsvRows:
    path: Path
    values: dict[str, str]
    """``key -> value`` in file order, the first row of a repeated key."""
    line_numbers: dict[str, int]
    rejects: list[Reject]

    def where(self, key: str) -> str:
        return f"{self.path}:{self.line_numbers[key]}"


@dataclass
class _SplitsReading:
    split_of_file: dict[str, str] | None
    """As written in ``splits.tsv`` (checked when a sample asks); ``None`` when there is no such file."""
    rejects: list[Reject]
    path: Path
    rows: _TsvRows | None = None


def _read_splits(path: Path, source_name: str) -> _SplitsReading:
    """``filename<TAB>train|valid|test``; absent file: the seed assigns splits."""
    if not path.is_file():
        return _SplitsReading(None, [], path)
    rows = _read_tsv(path, source_name)
    return _SplitsReading(rows.values, rows.rejects, path, rows)


def _keys_without_files(
    rows: _TsvRows | None, folder: Path, root: Path, source: str, reading: SourceReading
) -> list[Reject]:
    """A reject for each key of a ``.tsv`` that names a file outside the source, or no file at all (unless the
    sample is already accounted for), so a listed line never vanishes without a word."""
    if rows is None:
        return []
    accounted = {c.sample_id for c in reading.candidates} | {r.sample_id for r in reading.rejects}
    rejects = []
    for key in rows.values:
        sample_id = _sample_id(source, Path(key).with_suffix("").as_posix())
        if sample_id in accounted:
            continue
        path = folder / key
        escaping = _outside_source(source, sample_id, path, root, f"{rows.where(key)}: '{key}'")
        if escaping:
            rejects.append(escaping)
        elif not path.is_file():
            rejects.append(
                Reject(
                    source,
                    sample_id,
                    str(path),
                    RejectReason.MISSING_IMAGE,
                    f"{rows.where(key)}: lists '{key}' but the file does not exist",
                )
            )
    return rejects


def _split_of(
    file_name: str, splits: _SplitsReading, sample_id: str, image_path: str, source: str
) -> str | Reject | None:
    """The file's split from ``splits.tsv``, ``None`` without one, or a reject (unlisted or unknown split)."""
    if splits.split_of_file is None:
        return None
    if file_name not in splits.split_of_file:
        return Reject(source, sample_id, image_path, RejectReason.NOT_IN_SPLITS, f"not listed in {splits.path}")
    split = splits.split_of_file[file_name].strip()
    if split not in SPLIT_NAMES:
        return Reject(
            source,
            sample_id,
            image_path,
            RejectReason.UNKNOWN_SPLIT,
            f"{splits.path}: split {split!r} is not one of {', '.join(SPLIT_NAMES)}",
        )
    return split


def _read_tsv(path: Path, source_name: str) -> _TsvRows:
    """``key<TAB>value`` rows; malformed rows and repeated keys become rejects naming the line."""
    rows: dict[str, str] = {}
    line_numbers: dict[str, int] = {}
    rejects = []
    try:
        text = read_utf8(path)
    except UnicodeDecodeError as error:
        raise SourceEncodingError(
            f"source '{source_name}': {_not_utf8(path, error)}. Every line of it is unreadable: save it as UTF-8, "
            f"for example `iconv -f UTF-16 -t UTF-8 {path.name} > {path.stem}.utf8{path.suffix}`, then rename it."
        ) from None
    with io.StringIO(text, newline=None) as handle:
        for line_number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            if "\t" not in line:
                rejects.append(
                    Reject(
                        source_name,
                        None,
                        str(path),
                        RejectReason.MALFORMED_LABEL_LINE,
                        f"{path}:{line_number}: expected 'filename<TAB>value', got {line[:80]!r}",
                    )
                )
                continue
            key, value = line.split("\t", 1)
            if key in rows:
                rejects.append(
                    Reject(
                        source_name,
                        _sample_id(source_name, Path(key).with_suffix("").as_posix()),
                        str(path),
                        RejectReason.DUPLICATE_ID,
                        f"{path}:{line_number}: '{key}' is listed again; the first row is kept",
                    )
                )
                continue
            rows[key] = value
            line_numbers[key] = line_number
    return _TsvRows(path, rows, line_numbers, rejects)


def _outside_source(source: str, sample_id: str | None, path: Path, root: Path, named_by: str) -> Reject | None:
    """A reject when ``path``, once ``..`` and symbolic links are resolved, is not inside the source folder: a
    source never makes ingestion read (or, through an output name, write) anywhere else."""
    resolved, folder = path.resolve(), root.resolve()
    if resolved.is_relative_to(folder):
        return None
    return Reject(
        source,
        sample_id,
        str(path),
        RejectReason.PATH_OUTSIDE_SOURCE,
        f"{named_by} resolves to {resolved}, outside the source folder {folder}; only files inside it are read",
    )


def read_utf8(path: Path) -> str:
    """A text file of a source: UTF-8, with or without a byte-order mark (``UnicodeDecodeError`` otherwise)."""
    return path.read_bytes().decode("utf-8-sig")


def _not_utf8(path: Path, error: UnicodeDecodeError) -> str:
    """Where a file stops being UTF-8, with a hint when it is plainly UTF-16."""
    data = error.object
    line = data.count(b"\n", 0, error.start) + 1
    utf16 = " (it starts with a UTF-16 byte-order mark)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
    return (
        f"{path} is not UTF-8 text{utf16}: byte 0x{data[error.start]:02x} at offset {error.start}, line {line}; "
        "the project reads UTF-8, with or without a byte-order mark"
    )


def _text_reject(source: str, sample_id: str, image_path: str, text: str | None, text_origin: str) -> Reject | None:
    if text is None:
        return Reject(source, sample_id, image_path, RejectReason.MISSING_TRANSCRIPTION, f"no text in {text_origin}")
    if not normalise_text(text):
        return Reject(
            source, sample_id, image_path, RejectReason.EMPTY_TRANSCRIPTION, f"empty transcription in {text_origin}"
        )
    if controls := control_characters(text):
        return Reject(
            source,
            sample_id,
            image_path,
            RejectReason.CONTROL_CHARACTER,
            f"control character {describe_code_points(controls)} in the transcription in {text_origin}",
        )
    return None


def _invisible_removed(text: str) -> str | None:
    removed = invisible_characters(text)
    return json.dumps(removed) if removed else None


def _drop_duplicate_ids(reading: SourceReading) -> SourceReading:
    """Two files that map to one sample id (``a.png`` and ``a.jpg``): the first is kept, the rest rejected."""
    seen: set[str] = set()
    kept, rejects = [], list(reading.rejects)
    for candidate in reading.candidates:
        if candidate.sample_id in seen:
            rejects.append(
                Reject(
                    candidate.source,
                    candidate.sample_id,
                    candidate.degraded_path or candidate.clean_path or candidate.origin,
                    RejectReason.DUPLICATE_ID,
                    "another file already gives this sample id",
                )
            )
            continue
        seen.add(candidate.sample_id)
        kept.append(candidate)
    return SourceReading(kept, rejects)


def _image_files(folder: Path, recursive: bool = False) -> Iterator[Path]:
    paths = folder.rglob("*") if recursive else folder.iterdir()
    return iter(sorted(path for path in paths if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES))


def _sample_id(source_name: str, stem: str) -> str:
    return f"{source_name}:{stem}"


def _group_of(file_name: str, pattern: str | None, source_name: str) -> str | None:
    if pattern is None:
        return None
    match = re.search(pattern, file_name)
    if match is None or "group" not in match.groupdict():
        return None
    return f"{source_name}:{match.group('group')}"
