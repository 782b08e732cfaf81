"""``paired_folder``: degraded/clean pairs, ``images/<id>.*`` + ``gt/<id>_gt.*`` (the DIBCO layout), text optional.

One unit per degraded image (the pair); clean images without a degraded one, and label or split rows naming no
file, are units of one reject each.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Literal

from htr_pipeline.charset import normalise_text
from htr_pipeline.config import RegexPattern, SourceSettings
from htr_pipeline.data.sources.common import (
    SourceNotFoundError,
    SplitsReading,
    TsvRows,
    counted_changes,
    file_reject,
    group_of,
    image_files,
    keys_without_files,
    outside_source,
    read_splits,
    read_tsv,
    reject_ids,
    require_folder,
    sample_id_of,
    split_of,
    text_reject,
)
from htr_pipeline.data.sources.pixels import ImageFile
from htr_pipeline.data.sources.samples import Reject, RejectReason, SampleCandidate
from htr_pipeline.data.sources.units import Outcome, SourceContext, SourceUnit


class PairedFolderSource(SourceSettings):
    """Degraded/clean pairs: ``images/<id>.png`` + ``gt/<id>_gt.png`` (or ``gt/<id>.png``), optional text."""

    kind: Literal["paired_folder"]
    name: str = "paired_folder"
    path: Path
    image_type: Literal["page", "line"] = "page"
    """``page`` keeps pages at their own size; ``line`` normalises them like every other line image."""
    group_pattern: RegexPattern = None


def read_paired_folder(source: PairedFolderSource, context: SourceContext) -> Iterator[SourceUnit]:
    """``images/<id>.*`` degraded, ``gt/<id>_gt.*`` or ``gt/<id>.*`` clean, optional ``labels.tsv``."""
    root = require_folder(source.path, context, source.name)
    for required in ("images", "gt"):
        if not (root / required).is_dir():
            raise SourceNotFoundError(
                f"paired_folder source '{source.name}': '{root / required}' does not exist; a paired folder "
                "holds images/ (degraded) and gt/ (clean)."
            )
    labels_path = root / "labels.tsv"
    labels = read_tsv(labels_path, source.name) if labels_path.is_file() else None
    splits = read_splits(root / "splits.tsv", source.name)
    listing_rejects = [*(labels.rejects if labels else []), *splits.rejects]
    yield SourceUnit.settled(str(labels_path), listing_rejects)
    clean_by_stem = _clean_images_by_stem(root / "gt")
    degraded_paths = list(image_files(root / "images"))
    for degraded_path in degraded_paths:
        clean_path = clean_by_stem.pop(degraded_path.stem, None)
        read = partial(_read_pair, source, root, labels, splits, degraded_path, clean_path)
        yield SourceUnit(str(degraded_path), read)
    for stem, clean_path in sorted(clean_by_stem.items()):
        detail = "clean image without a degraded image in images/"
        reject = Reject(
            source.name, sample_id_of(source.name, stem), str(clean_path), RejectReason.MISSING_IMAGE, detail
        )
        yield SourceUnit.settled(str(clean_path), [reject])
    accounted = {sample_id_of(source.name, path.stem) for path in degraded_paths}
    accounted |= {sample_id_of(source.name, stem) for stem in clean_by_stem} | reject_ids(listing_rejects)
    for rows in (labels, splits.rows):
        missing = keys_without_files(rows, root / "images", root, source.name, accounted)
        accounted |= reject_ids(missing)
        yield SourceUnit.settled(str(rows.path) if rows else str(root), missing)


def _read_pair(
    source: PairedFolderSource,
    root: Path,
    labels: TsvRows | None,
    splits: SplitsReading,
    degraded_path: Path,
    clean_path: Path | None,
) -> list[Outcome]:
    sample_id = sample_id_of(source.name, degraded_path.stem)
    escaping = outside_source(source.name, sample_id, degraded_path, root, f"'{degraded_path}' (a symbolic link)")
    if clean_path is not None and not escaping:
        escaping = outside_source(source.name, sample_id, clean_path, root, f"'{clean_path}' (a symbolic link)")
    if escaping:
        return [escaping]
    if clean_path is None:
        detail = f"no gt/{degraded_path.stem}_gt.* or gt/{degraded_path.stem}.*"
        return [Reject(source.name, sample_id, str(degraded_path), RejectReason.MISSING_CLEAN_IMAGE, detail)]
    for path in (degraded_path, clean_path):
        if unusable := file_reject(source.name, sample_id, path):
            return [unusable]
    text = labels.values.get(degraded_path.name) if labels else None
    rejected = (
        text_reject(source.name, sample_id, str(degraded_path), text, str(root / "labels.tsv"))
        if text is not None
        else None
    )
    split = split_of(degraded_path.name, splits, sample_id, str(degraded_path), source.name)
    if rejected or isinstance(split, Reject):
        return [rejected or split]
    candidate = SampleCandidate(
        sample_id=sample_id,
        source=source.name,
        source_kind=source.kind,
        image_type=source.image_type,
        group=group_of(degraded_path.name, source.group_pattern, source.name) or sample_id,
        split=split,
        transcription=normalise_text(text) if text is not None else None,
        text_changes=counted_changes(text) if text is not None else None,
        clean_pixels=ImageFile(str(clean_path)),
        degraded_pixels=ImageFile(str(degraded_path)),
    )
    return [candidate]


def _clean_images_by_stem(gt_dir: Path) -> dict[str, Path]:
    by_stem: dict[str, Path] = {}
    for path in image_files(gt_dir):
        stem = path.stem[: -len("_gt")] if path.stem.endswith("_gt") else path.stem
        by_stem.setdefault(stem, path)
    return by_stem
