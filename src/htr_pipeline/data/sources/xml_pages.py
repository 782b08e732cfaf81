"""``xml_pages``: page images with their PAGE-XML or ALTO files; every ``TextLine`` is cut from its page.

One unit per XML file (a page): reading it parses the XML, finds the page image and its coordinate frame, and
gives one line candidate or one reject per ``TextLine``, never neither. Pixels are not decoded here, with one
exception: a page whose coordinate frame only the page's ink can settle (:mod:`htr_pipeline.data.line_crops`).
Materialisation cuts the lines, one decode per page.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Literal

from PIL import Image, UnidentifiedImageError
from pydantic import Field

from htr_pipeline.charset import control_characters, describe_code_points, normalise_text
from htr_pipeline.config import RegexPattern, SourceSettings
from htr_pipeline.data.images import IMAGE_SUFFIXES, read_grayscale
from htr_pipeline.data.line_crops import (
    FRAME_WIN_RATIO,
    MIN_DESKEW_DEGREES,
    CoordinateFrame,
    LineCrop,
    baseline_angle_degrees,
    candidate_frames,
    degenerate_polygon,
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
from htr_pipeline.data.sources.common import (
    file_reject,
    group_of,
    line_sample,
    outside_source,
    require_folder,
    sample_id_of,
)
from htr_pipeline.data.sources.pixels import PageCrop
from htr_pipeline.data.sources.samples import Reject, RejectReason, SampleCandidate, unexpected_error
from htr_pipeline.data.sources.units import Outcome, SourceContext, SourceUnit


class XmlPagesSource(SourceSettings):
    """Page images with their PAGE-XML (2010, 2013, 2019) or ALTO (v2, v3, v4) files; every line is cropped."""

    kind: Literal["xml_pages"]
    name: str = "xml_pages"
    path: Path
    group_pattern: RegexPattern = None
    """Regular expression with a named group ``group``, searched in each XML file name, that gives the
    document; ``null``: each page is its own group. Either way a page never spans two splits."""
    margin_px: int = Field(6, ge=0)
    """Pixels added around the bounding box of each line polygon (6: as the Testaments de Poilus crops)."""
    line_mask: Literal["bbox", "polygon"] = "bbox"
    """``bbox``: the box as scanned; ``polygon``: pixels outside the line polygon become the paper tone."""
    steep_line_degrees: float = Field(45.0, gt=0.0, le=90.0)
    """A baseline steeper than this is a steep line (``steep_lines`` says what happens); flatter ones are
    levelled by their baseline angle."""
    steep_lines: Literal["reject", "rotate"] = "reject"
    """``reject`` (as ``vertical_line``) or ``rotate`` by the baseline angle like any other line."""
    max_xml_bytes: int = Field(10_000_000, ge=1)
    """A larger XML file is rejected (``file_too_large``) without being parsed: parsing takes up to about 30 times
    the file's size in memory (measured: a 50 MB file of empty elements +1.5 GB, 25 MB +0.76 GB), so the default
    bounds one page's XML near 0.3 GB; a dense page with word and glyph coordinates is a few MB."""
    skip_region_types: list[str] = Field(default_factory=list)
    """Lines of regions of these types (PAGE ``TextRegion@type``, ALTO block tag label) are left out, as
    rejects ``skipped_region_type``."""


def read_xml_pages(source: XmlPagesSource, context: SourceContext) -> Iterator[SourceUnit]:
    """Every ``*.xml`` below ``path``, one page at a time."""
    root = require_folder(source.path, context, source.name)
    for xml_path in sorted(root.rglob("*.xml")):
        yield SourceUnit(str(xml_path), partial(_read_xml_page, source, root, xml_path))


def _read_xml_page(source: XmlPagesSource, root: Path, xml_path: Path) -> list[Outcome]:
    page_key = xml_path.relative_to(root).with_suffix("").as_posix()
    unusable = file_reject(source.name, None, xml_path, source.max_xml_bytes, "max_xml_bytes")
    if unusable:
        return [unusable]
    try:
        layout = read_page_layout(xml_path)
    except (XmlParseError, UnknownXmlFormatError) as error:
        reason = (
            RejectReason.UNKNOWN_XML_FORMAT
            if isinstance(error, UnknownXmlFormatError)
            else RejectReason.XML_PARSE_ERROR
        )
        return _whole_page_rejects(source, xml_path, page_key, reason, str(error))
    image_path = _page_image_path(xml_path, layout.image_filename)
    if image_path is None:
        detail = f"no image {layout.image_filename or xml_path.stem + '.*'} beside {xml_path.name}"
        return _line_rejects(source, xml_path, page_key, layout.lines, RejectReason.MISSING_PAGE_IMAGE, detail)
    for path in (xml_path, image_path):
        escaping = outside_source(source.name, None, path, root, f"'{path}' (a symbolic link)")
        if escaping:
            return _line_rejects(source, xml_path, page_key, layout.lines, escaping.reason, escaping.detail)
    try:
        image = read_page_image_info(image_path)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        too_large = isinstance(error, Image.DecompressionBombError)
        reason = RejectReason.IMAGE_TOO_LARGE if too_large else RejectReason.UNREADABLE_IMAGE
        detail = f"{image_path}: {'too large for Pillow to open' if too_large else 'cannot read image'} ({error})"
        return _line_rejects(source, xml_path, page_key, layout.lines, reason, detail)
    frame = _coordinate_frame(layout, candidate_frames(layout.declared_size, image), image_path)
    if isinstance(frame, Reject):
        return _line_rejects(source, xml_path, page_key, layout.lines, frame.reason, frame.detail)
    group = group_of(xml_path.name, source.group_pattern, source.name) or sample_id_of(source.name, page_key)
    return [
        _bounded_xml_line(source, layout, line, frame, page_key, xml_path, image_path, group) for line in layout.lines
    ]


def _bounded_xml_line(source: XmlPagesSource, layout: PageLayout, line: XmlLine, *args) -> SampleCandidate | Reject:
    """:func:`_xml_line`; a line that fails in a way no check foresaw is its own reject, the page's others stay."""
    try:
        return _xml_line(source, layout, line, *args)
    except Exception as error:
        page_key, xml_path = args[1], args[2]
        return unexpected_error(
            source.name, sample_id_of(source.name, f"{page_key}/{line.line_id}"), str(xml_path), error
        )


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
    sample_id = sample_id_of(source.name, f"{page_key}/{line.line_id}")

    def reject(reason: RejectReason, detail: str) -> Reject:
        return Reject(source.name, sample_id, str(xml_path), reason, f"line {line.line_id}: {detail}")

    if line.region_type in source.skip_region_types:
        return reject(RejectReason.SKIPPED_REGION_TYPE, f"region {line.region_id} is a {line.region_type}")
    if line.polygon is None:
        return reject(RejectReason.LINE_WITHOUT_COORDS, "no Coords/Shape/box")
    if degenerate := degenerate_polygon(line.polygon):
        return reject(RejectReason.DEGENERATE_GEOMETRY, degenerate)
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
    return line_sample(source, sample_id, group, None, line.text, origin, PageCrop(crop), line.entities)


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
        Reject(source.name, sample_id_of(source.name, f"{page_key}/{line.line_id}"), str(xml_path), reason, detail)
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
        Reject(source.name, sample_id_of(source.name, f"{page_key}/line_{index}"), str(xml_path), reason, detail)
        for index in range(lines)
    ]
