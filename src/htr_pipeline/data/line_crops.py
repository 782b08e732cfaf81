"""Where the lines of a page XML lie on the page image, and cutting them out of the decoded page.

Coordinates in a PAGE or ALTO file live in the frame of the size the file declares. Images are used as the
eye sees them (EXIF orientation applied), so coordinates are mapped into that oriented frame:

- declared size == oriented size: as they are;
- declared size differs: scaled per axis to the oriented size (recorded as ``coordinate_scale``);
- the image carries a quarter-turn EXIF orientation and the file declares the *stored* (unrotated) size: the
  coordinates may be in the stored frame, in the oriented frame, or in the oriented frame scaled to fit the
  declared box (what eScriptorium wrote for one Testaments de Poilus page). Geometry cannot tell these apart,
  so the page's pixels decide: the frame whose line polygons hold markedly more ink than any other frame's
  wins; when no frame wins clearly, the page's lines are rejected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from htr_pipeline.data.page_xml import Point

QUARTER_TURN_ORIENTATIONS = frozenset({5, 6, 7, 8})
"""EXIF orientations that swap width and height."""
MIN_DESKEW_DEGREES = 0.5
"""Flatter baselines are left as they are: rotating by less only blurs the crop."""
FIT_TOLERANCE_PX = 2.0
"""Coordinates this far outside the declared page still count as on it (they are clipped)."""
FRAME_WIN_RATIO = 1.5
"""An ambiguous frame is taken only when its line polygons hold this many times the ink of the runner-up's."""
INK_TONE = 0.7
"""A pixel darker than this share of the page's median tone (its paper) counts as ink."""


@dataclass(frozen=True)
class PageImageInfo:
    stored_size: tuple[int, int]
    """(width, height) of the pixels as stored."""
    orientation: int
    """EXIF orientation (1 when absent)."""

    @property
    def oriented_size(self) -> tuple[int, int]:
        width, height = self.stored_size
        return (height, width) if self.orientation in QUARTER_TURN_ORIENTATIONS else (width, height)


def read_page_image_info(path: Path) -> PageImageInfo:
    """Size and EXIF orientation from the header, without decoding the pixels."""
    with Image.open(path) as image:
        orientation = image.getexif().get(0x0112, 1)
        return PageImageInfo(stored_size=image.size, orientation=orientation if orientation in range(1, 9) else 1)


@dataclass(frozen=True)
class CoordinateFrame:
    """How the file's coordinates map onto the oriented image: ``oriented = transform(points)``."""

    name: str
    """``declared``, ``declared_rescaled``, ``stored_then_oriented``, ``oriented`` or ``oriented_fit``."""
    size: tuple[float, float]
    """(width, height) of the frame the coordinates are in: points outside it do not fit."""
    scale: tuple[float, float]
    """Per-axis scale from the frame onto the oriented image (applied after ``orientation``)."""
    orientation: int = 1
    """EXIF orientation to apply to the points (stored frame -> oriented frame) before scaling."""

    def transform(self, points: tuple[Point, ...]) -> tuple[Point, ...]:
        oriented = _orient_points(points, self.size, self.orientation)
        return tuple((x * self.scale[0], y * self.scale[1]) for x, y in oriented)

    def fits(self, points: tuple[Point, ...]) -> bool:
        width, height = self.size
        return all(
            -FIT_TOLERANCE_PX <= x <= width + FIT_TOLERANCE_PX and -FIT_TOLERANCE_PX <= y <= height + FIT_TOLERANCE_PX
            for x, y in points
        )

    def describe(self) -> dict[str, object]:
        return {"frame": self.name, "coordinate_scale": [round(self.scale[0], 6), round(self.scale[1], 6)]}


def candidate_frames(declared: tuple[int, int] | None, image: PageImageInfo) -> list[CoordinateFrame]:
    """The frames the coordinates may be in: one when the declared size settles it, else several."""
    oriented = image.oriented_size
    if declared is None or declared == oriented:
        return [CoordinateFrame("declared", oriented, (1.0, 1.0))]
    if image.orientation in QUARTER_TURN_ORIENTATIONS and declared == image.stored_size:
        fit = min(declared[0] / oriented[0], declared[1] / oriented[1])
        return [
            CoordinateFrame("stored_then_oriented", image.stored_size, (1.0, 1.0), image.orientation),
            CoordinateFrame("oriented", oriented, (1.0, 1.0)),
            CoordinateFrame("oriented_fit", (oriented[0] * fit, oriented[1] * fit), (1 / fit, 1 / fit)),
        ]
    return [CoordinateFrame("declared_rescaled", declared, (oriented[0] / declared[0], oriented[1] / declared[1]))]


def _orient_points(points: tuple[Point, ...], size: tuple[float, float], orientation: int) -> tuple[Point, ...]:
    """Where points of the stored image land once ``ImageOps.exif_transpose`` has turned it."""
    width, height = size
    turn = {
        1: lambda x, y: (x, y),
        2: lambda x, y: (width - x, y),
        3: lambda x, y: (width - x, height - y),
        4: lambda x, y: (x, height - y),
        5: lambda x, y: (y, x),
        6: lambda x, y: (height - y, x),
        7: lambda x, y: (height - y, width - x),
        8: lambda x, y: (y, width - x),
    }[orientation]
    return tuple(turn(x, y) for x, y in points)


def ink_share(page: np.ndarray, polygons: list[tuple[Point, ...]]) -> float:
    """Share of the pixels inside the polygons that are ink: darker than 70% of the page's median (paper) tone."""
    # page: (height, width) uint8, 255 = paper
    mask = Image.new("1", (page.shape[1], page.shape[0]), 0)
    draw = ImageDraw.Draw(mask)
    for polygon in polygons:
        draw.polygon([(x, y) for x, y in polygon], fill=1)
    inside = np.asarray(mask, dtype=bool)
    if not inside.any():
        return 0.0
    return float((page[inside] < INK_TONE * np.median(page)).mean())


# ------------------------------------------------------------------------------------------------- crops


@dataclass(frozen=True)
class LineCrop:
    """How to cut one line out of its oriented page image; the page is decoded once for all its lines."""

    page_path: str
    polygon: tuple[Point, ...]
    """In oriented page pixels."""
    rotation_degrees: float
    """Counter-clockwise rotation that levels the baseline (0: none)."""
    margin_px: int
    mask: str
    """``polygon``: pixels outside the polygon become paper; ``bbox``: the box as it is."""


MIN_LINE_EXTENT_PX = 1.0
"""A line polygon narrower or lower than this, or with less area (px²), has nothing to cut: only margin would be."""


def degenerate_polygon(polygon: tuple[Point, ...]) -> str | None:
    """Why ``polygon`` cannot be cut as a line (too few distinct points, no width, height or area), else None;
    checked before any cropping, so a 1- or 2-point polygon never becomes a crop of margin only."""
    distinct = len(set(polygon))
    xs, ys = [x for x, _ in polygon], [y for _, y in polygon]
    width, height = max(xs) - min(xs), max(ys) - min(ys)
    area = (
        abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(polygon, polygon[1:] + polygon[:1], strict=True))) / 2
    )
    if distinct < 3 or min(width, height, area) < MIN_LINE_EXTENT_PX:
        return (
            f"polygon of {distinct} distinct point{'s' if distinct != 1 else ''}, {width:.0f} x {height:.0f} px, "
            f"area {area:.0f} px²: no line to cut (at least 3 points and {MIN_LINE_EXTENT_PX:.0f} px each way)"
        )
    return None


def baseline_angle_degrees(baseline: tuple[Point, ...] | None) -> float:
    """Angle of the baseline from its first to its last point, clockwise as seen (image y points down)."""
    if baseline is None or len(baseline) < 2:
        return 0.0
    (x0, y0), (x1, y1) = baseline[0], baseline[-1]
    if x0 == x1 and y0 == y1:
        return 0.0
    return math.degrees(math.atan2(y1 - y0, x1 - x0))


def crop_line(page: np.ndarray, crop: LineCrop) -> np.ndarray:
    """The line as (height, width) uint8: its box plus margin, masked and levelled as ``crop`` says."""
    # page: (height, width) uint8, 255 = paper
    xs, ys = [x for x, _ in crop.polygon], [y for _, y in crop.polygon]
    centre = ((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2)
    # The output box: the levelled polygon's box plus margin; only the page pixels that rotate into it are read.
    output_box = _padded_box(_rotate_points(crop.polygon, centre, crop.rotation_degrees), crop.margin_px)
    corners = _rotate_points(_corners(output_box), centre, -crop.rotation_degrees)
    left, top, right, bottom = _clipped(_padded_box(corners, 0), page.shape)
    region = Image.fromarray(page[top:bottom, left:right])
    paper = int(np.median(page[top:bottom:3, left:right:3])) if right > left and bottom > top else 255
    if crop.mask == "polygon":
        mask = Image.new("L", region.size, 0)
        ImageDraw.Draw(mask).polygon([(x - left, y - top) for x, y in crop.polygon], fill=255)
        region = Image.composite(region, Image.new("L", region.size, paper), mask)
    local_centre = (centre[0] - left, centre[1] - top)
    if crop.rotation_degrees:
        region = region.rotate(
            crop.rotation_degrees, resample=Image.Resampling.BICUBIC, center=local_centre, fillcolor=paper
        )
    x0, y0, x1, y1 = output_box
    box = _clipped((x0 - left, y0 - top, x1 - left, y1 - top), (region.height, region.width))
    return np.asarray(region.crop(box), dtype=np.uint8).copy()


def _rotate_points(points: tuple[Point, ...], centre: Point, degrees: float) -> tuple[Point, ...]:
    """Where PIL's ``rotate(degrees)`` (counter-clockwise as seen) moves each point."""
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    cx, cy = centre
    return tuple((cx + (x - cx) * cos + (y - cy) * sin, cy - (x - cx) * sin + (y - cy) * cos) for x, y in points)


def _padded_box(points: tuple[Point, ...], margin: float) -> tuple[float, float, float, float]:
    xs, ys = [x for x, _ in points], [y for _, y in points]
    return min(xs) - margin, min(ys) - margin, max(xs) + margin, max(ys) + margin


def _corners(box: tuple[float, float, float, float]) -> tuple[Point, ...]:
    x0, y0, x1, y1 = box
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


def _clipped(box: tuple[float, float, float, float], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Whole pixels of ``box`` inside an image of ``shape`` (height, width)."""
    x0, y0, x1, y1 = box
    return (
        max(0, math.floor(x0)),
        max(0, math.floor(y0)),
        min(shape[1], math.ceil(x1)),
        min(shape[0], math.ceil(y1)),
    )
