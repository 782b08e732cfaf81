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
    NOT_A_REGULAR_FILE = "not_a_regular_file"
    UNREADABLE_FILE = "unreadable_file"
    FILE_TOO_LARGE = "file_too_large"
    WRONG_TYPE = "wrong_type"
    NAME_TOO_LONG = "name_too_long"
    DEGENERATE_GEOMETRY = "degenerate_geometry"
    BLANK_IMAGE = "blank_image"
    UNEXPECTED_ERROR = "unexpected_error"


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
    text_changes: str | None = None
    """JSON ``{"U+200E": count, "entity &eacute;": count}``: what the text rule (:func:`htr_pipeline.charset.
    normalise_text`: characters that draw nothing removed, line breaks folded) and the source's reading (XML
    entities resolved) changed in the source's text; ``None`` when nothing was."""

    @property
    def path(self) -> str | None:
        """The file a reject of this sample names: where its clean pixels are, else its degraded image."""
        if self.clean_pixels.path is not None:
            return self.clean_pixels.path
        return self.degraded_pixels.path if self.degraded_pixels is not None else None


def unexpected_error(source: str, sample_id: str | None, path: str | None, error: BaseException) -> Reject:
    """The reject of a unit (or sample) that failed in a way no check foresaw: the exception's type and message."""
    message = " ".join(str(error).split())[:300] or "(no message)"
    return Reject(
        source,
        sample_id,
        path,
        RejectReason.UNEXPECTED_ERROR,
        f"{type(error).__name__}: {message} (nothing else of the source is affected; please report the file)",
    )
