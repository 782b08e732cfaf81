"""``line_folder``: real line crops with their text, ``lines/*`` + ``labels.tsv`` or ``name.png`` + ``name.txt``.

One unit per line (a ``labels.tsv`` row, or an image and its ``.txt``); images and ``.txt`` files without their
other half, and ``splits.tsv`` rows naming no file, are units of one reject each.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Literal

from htr_pipeline.config import RegexPattern, SourceSettings
from htr_pipeline.data.images import IMAGE_SUFFIXES
from htr_pipeline.data.sources.common import (
    SplitsReading,
    TsvRows,
    file_reject,
    group_of,
    image_files,
    key_stem,
    keys_without_files,
    line_sample,
    not_utf8,
    outside_source,
    read_splits,
    read_tsv,
    read_utf8,
    reject_ids,
    require_folder,
    sample_id_of,
    split_of,
    text_reject,
)
from htr_pipeline.data.sources.pixels import ImageFile
from htr_pipeline.data.sources.samples import Reject, RejectReason, SampleCandidate
from htr_pipeline.data.sources.units import Outcome, SourceContext, SourceUnit


class LineFolderSource(SourceSettings):
    """Real line crops: ``lines/*.png`` + ``labels.tsv`` (+ ``splits.tsv``), or ``name.png`` + ``name.txt``."""

    kind: Literal["line_folder"]
    name: str = "line_folder"
    path: Path
    group_pattern: RegexPattern = None
    """Regular expression with a named group ``group``, searched in each file name, that gives the writer or
    page of a line (for example ``will_(?P<group>[^-_]+_[^-_]+)``); ``null`` when groups are unknown."""


def read_line_folder(source: LineFolderSource, context: SourceContext) -> Iterator[SourceUnit]:
    """``lines/*`` + ``labels.tsv`` (+ ``splits.tsv``) when ``labels.tsv`` exists, else ``name.png`` + ``name.txt``."""
    root = require_folder(source.path, context, source.name)
    if (root / "labels.tsv").is_file():
        return _labelled_lines(source, root)
    return _text_sidecar_lines(source, root)


# ------------------------------------------------------------------------------------ labels.tsv layout


@dataclass(frozen=True)
class _LabelledFolder:
    source: LineFolderSource
    root: Path
    image_dir: Path
    labels: TsvRows
    splits: SplitsReading
    images_by_name: dict[str, Path]

    def read_row(self, file_name: str, text: str) -> list[Outcome]:
        source = self.source
        sample_id = sample_id_of(source.name, key_stem(file_name))
        image_path = self.image_dir / file_name
        escaping = outside_source(
            source.name, sample_id, image_path, self.root, f"{self.labels.where(file_name)}: '{file_name}'"
        )
        if escaping:
            return [escaping]
        if unusable := file_reject(source.name, sample_id, image_path):
            missing = unusable.reason == RejectReason.MISSING_IMAGE
            where = self.labels.where(file_name)
            detail = (
                f"listed in {self.labels.path} but the file does not exist"
                if missing
                else f"{where}: {unusable.detail}"
            )
            return [replace(unusable, detail=detail)]
        rejected = text_reject(source.name, sample_id, str(image_path), text, str(self.labels.path))
        split = split_of(file_name, self.splits, sample_id, str(image_path), source.name)
        if rejected or isinstance(split, Reject):
            return [rejected or split]
        return [_line_candidate(source, sample_id, image_path, text, split)]


def _labelled_lines(source: LineFolderSource, root: Path) -> Iterator[SourceUnit]:
    labels = read_tsv(root / "labels.tsv", source.name)
    splits = read_splits(root / "splits.tsv", source.name)
    image_dir = root / "lines" if (root / "lines").is_dir() else root
    folder = _LabelledFolder(source, root, image_dir, labels, splits, {p.name: p for p in image_files(image_dir)})
    yield SourceUnit.settled(str(labels.path), [*labels.rejects, *splits.rejects])
    for file_name, text in labels.values.items():
        yield SourceUnit(labels.where(file_name), partial(folder.read_row, file_name, text))
    unlabelled = [path for name, path in sorted(folder.images_by_name.items()) if name not in labels.values]
    for image_path in unlabelled:
        sample_id = sample_id_of(source.name, image_path.stem)
        detail = f"no row for it in {labels.path}"
        reject = Reject(source.name, sample_id, str(image_path), RejectReason.MISSING_TRANSCRIPTION, detail)
        yield SourceUnit.settled(str(image_path), [reject])
    accounted = {sample_id_of(source.name, key_stem(name)) for name in labels.values}
    accounted |= {sample_id_of(source.name, path.stem) for path in unlabelled}
    accounted |= reject_ids([*labels.rejects, *splits.rejects])
    yield SourceUnit.settled(str(splits.path), keys_without_files(splits.rows, image_dir, root, source.name, accounted))


# ------------------------------------------------------------------------------- name.png + name.txt layout


def _text_sidecar_lines(source: LineFolderSource, root: Path) -> Iterator[SourceUnit]:
    splits = read_splits(root / "splits.tsv", source.name)
    yield SourceUnit.settled(str(splits.path), splits.rejects)
    images = list(image_files(root, recursive=True))
    for image_path in images:
        yield SourceUnit(str(image_path), partial(_read_sidecar_line, source, root, splits, image_path))
    orphans = [
        text_path
        for text_path in sorted(root.rglob("*.txt"))
        if not any(text_path.with_suffix(suffix).is_file() for suffix in IMAGE_SUFFIXES)
    ]
    for text_path in orphans:
        detail = "transcription without an image of the same name"
        reject = Reject(
            source.name, sample_id_of(source.name, text_path.stem), str(text_path), RejectReason.MISSING_IMAGE, detail
        )
        yield SourceUnit.settled(str(text_path), [reject])
    accounted = {sample_id_of(source.name, path.relative_to(root).with_suffix("").as_posix()) for path in images}
    accounted |= {sample_id_of(source.name, path.stem) for path in orphans} | reject_ids(splits.rejects)
    yield SourceUnit.settled(str(splits.path), keys_without_files(splits.rows, root, root, source.name, accounted))


def _read_sidecar_line(source: LineFolderSource, root: Path, splits: SplitsReading, image_path: Path) -> list[Outcome]:
    relative = image_path.relative_to(root)
    sample_id = sample_id_of(source.name, relative.with_suffix("").as_posix())
    text_path = image_path.with_suffix(".txt")
    escaping = outside_source(source.name, sample_id, image_path, root, f"'{image_path}' (a symbolic link)")
    if escaping:
        return [escaping]
    if unusable := file_reject(source.name, sample_id, image_path):
        return [unusable]
    if not text_path.is_file():
        detail = f"no {text_path.name} next to it"
        return [Reject(source.name, sample_id, str(image_path), RejectReason.MISSING_TRANSCRIPTION, detail)]
    try:
        text = read_utf8(text_path)
    except UnicodeDecodeError as error:
        detail = not_utf8(text_path, error)
        return [Reject(source.name, sample_id, str(text_path), RejectReason.UNDECODABLE_TEXT, detail)]
    rejected = text_reject(source.name, sample_id, str(image_path), text, str(text_path))
    split = split_of(relative.as_posix(), splits, sample_id, str(image_path), source.name)
    if rejected or isinstance(split, Reject):
        return [rejected or split]
    return [_line_candidate(source, sample_id, image_path, text, split)]


def _line_candidate(
    source: LineFolderSource, sample_id: str, image_path: Path, text: str, split: str | None
) -> SampleCandidate:
    group = group_of(image_path.name, source.group_pattern, source.name)
    return line_sample(source, sample_id, group, split, text, None, ImageFile(str(image_path)))
