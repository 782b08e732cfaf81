"""What reading a source gives: sample candidates (what to load, which text, which split) and rejects (what
cannot be used, and why)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from htr_pipeline.data.sources.pixels import ImageFile, Pixels


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
    clean_pixels: Pixels
    degraded_pixels: ImageFile | None = None
    """The source's own degraded image; ``None``: one is synthesised from the clean image."""
    origin: str | None = None
    """JSON: where in the source the sample comes from (page, line, region, reading order, geometry)."""
    invisible_removed: str | None = None
    """JSON ``{"U+00AD": count}``: the invisible characters normalisation removed from the source's text."""

    @property
    def path(self) -> str | None:
        """The file a reject of this sample names: where its clean pixels are, else its degraded image."""
        if self.clean_pixels.path is not None:
            return self.clean_pixels.path
        return self.degraded_pixels.path if self.degraded_pixels is not None else None
