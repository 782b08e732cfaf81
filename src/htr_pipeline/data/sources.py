"""Reading the configured sources into sample candidates, and every unusable input into rejects.

A source yields :class:`SampleCandidate` rows (what to load or render, which text, which split if the source
says) and :class:`Reject` rows (what cannot be used, and why). Nothing here decodes pixels: image checks happen
when samples are materialised (``htr_pipeline.data.materialise``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from htr_pipeline.charset import normalise_text
from htr_pipeline.config import DataConfig, LineFolderSource, PairedFolderSource, Source, SyntheticSource
from htr_pipeline.data.images import IMAGE_SUFFIXES
from htr_pipeline.data.splits import SPLIT_NAMES
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


class SourceNotFoundError(FileNotFoundError):
    """A configured source path does not exist."""


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
    if path is not None and not Path(path).is_dir():
        raise SourceNotFoundError(
            f"data.sources[{position}].path: folder '{path}' (resolved: '{Path(path).resolve()}') does not "
            f"exist. Fix the path in conf/<env>/parameters.yml or remove the '{source.name}' source."
        )


def _read_source(source: Source, seed: int) -> SourceReading:
    if isinstance(source, SyntheticSource):
        return read_synthetic_source(source, seed)
    if isinstance(source, LineFolderSource):
        return read_line_folder(source)
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
                    candidate.clean_path,
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
    texts, rejects = _read_tsv(labels_path, source.name)
    split_reading = _read_splits(root / "splits.tsv", source.name)
    rejects += split_reading.rejects
    images_by_name = {path.name: path for path in _image_files(image_dir)}
    candidates = []
    for file_name, text in texts.items():
        sample_id = _sample_id(source.name, Path(file_name).with_suffix("").as_posix())
        image_path = image_dir / file_name
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
    return _drop_duplicate_ids(SourceReading(candidates, rejects))


def _read_text_sidecar_lines(source: LineFolderSource, root: Path) -> SourceReading:
    split_reading = _read_splits(root / "splits.tsv", source.name)
    candidates, rejects = [], list(split_reading.rejects)
    for image_path in _image_files(root, recursive=True):
        relative = image_path.relative_to(root)
        sample_id = _sample_id(source.name, relative.with_suffix("").as_posix())
        text_path = image_path.with_suffix(".txt")
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
        text = _read_text_file(text_path)
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
    return _drop_duplicate_ids(SourceReading(candidates, rejects))


def _line_candidate(
    source: LineFolderSource, sample_id: str, image_path: Path, text: str, split: str | None
) -> SampleCandidate:
    return SampleCandidate(
        sample_id=sample_id,
        source=source.name,
        source_kind=source.kind,
        image_type="line",
        group=_group_of(image_path.name, source.group_pattern, source.name),
        split=split,
        transcription=normalise_text(text),
        clean_path=str(image_path),
    )


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
    texts, rejects = _read_tsv(labels_path, source.name) if labels_path.is_file() else ({}, [])
    split_reading = _read_splits(root / "splits.tsv", source.name)
    rejects += split_reading.rejects
    clean_by_stem = _clean_images_by_stem(root / "gt")
    candidates = []
    for degraded_path in _image_files(root / "images"):
        sample_id = _sample_id(source.name, degraded_path.stem)
        clean_path = clean_by_stem.pop(degraded_path.stem, None)
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
    return _drop_duplicate_ids(SourceReading(candidates, rejects))


def _clean_images_by_stem(gt_dir: Path) -> dict[str, Path]:
    by_stem: dict[str, Path] = {}
    for path in _image_files(gt_dir):
        stem = path.stem[: -len("_gt")] if path.stem.endswith("_gt") else path.stem
        by_stem.setdefault(stem, path)
    return by_stem


# -------------------------------------------------------------------------------------------- shared bits


@dataclass
class _SplitsReading:
    split_of_file: dict[str, str] | None
    """As written in ``splits.tsv`` (checked when a sample asks); ``None`` when there is no such file."""
    rejects: list[Reject]
    path: Path


def _read_splits(path: Path, source_name: str) -> _SplitsReading:
    """``filename<TAB>train|valid|test``; absent file: the seed assigns splits."""
    if not path.is_file():
        return _SplitsReading(None, [], path)
    split_of_file, rejects = _read_tsv(path, source_name)
    return _SplitsReading(split_of_file, rejects, path)


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


def _read_tsv(path: Path, source_name: str) -> tuple[dict[str, str], list[Reject]]:
    """``key<TAB>value`` rows; malformed rows and repeated keys become rejects naming the line."""
    rows: dict[str, str] = {}
    rejects = []
    with path.open(encoding="utf-8-sig") as handle:
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
    return rows, rejects


def _read_text_file(path: Path) -> str:
    return path.read_text(encoding="utf-8-sig")


def _text_reject(source: str, sample_id: str, image_path: str, text: str | None, text_origin: str) -> Reject | None:
    if text is None:
        return Reject(source, sample_id, image_path, RejectReason.MISSING_TRANSCRIPTION, f"no text in {text_origin}")
    if not normalise_text(text):
        return Reject(
            source, sample_id, image_path, RejectReason.EMPTY_TRANSCRIPTION, f"empty transcription in {text_origin}"
        )
    return None


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
                    candidate.degraded_path or candidate.clean_path,
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
