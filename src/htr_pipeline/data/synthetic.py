"""Synthetic handwriting-like text lines: render a planned line (its text and font) in a drawn style.

The ``synthetic`` source (:mod:`htr_pipeline.data.sources.synthetic`) plans which text and font each sample gets,
once per source; rendering is per sample and depends only on the plan, the style ranges, the image height and the
run seed, so samples can be rendered in any order or process.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from pydantic import model_validator
from scipy import ndimage

from htr_pipeline.config import StrictModel, check_range
from htr_pipeline.data.degradations import smooth_random_field
from htr_pipeline.data.fonts import load_font
from htr_pipeline.data.seeding import rng_for

FONT_SIZE_PER_OUTPUT_ROW = 1.25
"""Working font size (px per em) per row of the output image: the ink of a line with ascenders and
descenders is about 1.2 em tall, so lines are drawn a little larger than the output and scaled down."""

MARGIN_PER_OUTPUT_ROW = 0.06
"""White margin kept around the ink bounding box, as a fraction of the image height (the elastic warp's
peak displacement is added to it)."""


class HandwritingStyle(StrictModel):
    """Per-sample style variation of synthetic lines; each value is drawn uniformly from its [min, max]."""

    slant_degrees: tuple[float, float] = (-12.0, 12.0)
    baseline_wobble: tuple[float, float] = (0.0, 0.06)
    """Amplitude of the wavy baseline, as a fraction of the font size."""
    stroke_width: tuple[float, float] = (0.0, 0.015)
    """Extra stroke thickness, as a fraction of the font size (above ~0.02 thin bundled fonts close into blobs)."""
    letter_spacing: tuple[float, float] = (-0.03, 0.10)
    """Extra space between letters, as a fraction of the font size."""
    ink_intensity: tuple[float, float] = (0.70, 1.0)
    """Darkness of the ink: 1.0 is black ink on white paper."""
    elastic_distortion: tuple[float, float] = (0.0, 0.03)
    """Peak displacement of the smooth elastic warp, as a fraction of the line height."""

    @model_validator(mode="after")
    def _ranges_are_ordered(self) -> HandwritingStyle:
        check_range(self.slant_degrees, -45.0, 45.0)
        check_range(self.baseline_wobble, 0.0, 0.5)
        check_range(self.stroke_width, 0.0, 0.2)
        check_range(self.letter_spacing, -0.3, 1.0)
        check_range(self.ink_intensity, 0.05, 1.0)
        check_range(self.elastic_distortion, 0.0, 0.2)
        return self


@dataclass(frozen=True)
class SyntheticLinePlan:
    """What one synthetic sample shows: its text, and the font (by name and path) it is drawn with."""

    sample_id: str
    split: str
    text: str
    font_name: str
    font_path: str | None


@dataclass(frozen=True)
class DrawnStyle:
    """The style values drawn for one line, each from its range in :class:`HandwritingStyle`."""

    slant_degrees: float
    baseline_wobble: float
    baseline_wavelength_em: float
    baseline_phase: float
    stroke_width: float
    letter_spacing: float
    ink_intensity: float
    elastic_distortion: float


def render_planned_line(
    plan: SyntheticLinePlan, style: HandwritingStyle, image_height: int, seed: int
) -> tuple[np.ndarray, dict]:
    """Draw ``plan.text`` in the plan's font with a per-sample style; return the image and the style drawn.

    The image is uint8, ``image_height`` rows, 255 = white paper: the ink's bounding box scaled to fit the
    height inside a small margin (wide enough that the elastic warp never pushes ink off the image). Glyphs
    are drawn at a larger working size and scaled down with a Lanczos filter; slant and elastic warp are one
    resampling at the output size, where it costs little. The same plan, style, height and seed always give
    the same pixels.
    """
    style_rng = rng_for(seed, plan.sample_id, "style")
    drawn = _draw_style(style, style_rng)
    font_size_px = max(8, round(FONT_SIZE_PER_OUTPUT_ROW * image_height))
    stroke_width_px = round(drawn.stroke_width * font_size_px)
    peak_displacement_px = drawn.elastic_distortion * image_height
    margin_px = max(1, round(MARGIN_PER_OUTPUT_ROW * image_height)) + math.ceil(peak_displacement_px)

    coverage = _cropped_to_ink(_draw_wobbly_text(plan, font_size_px, drawn, stroke_width_px))
    coverage = _resized_to_height(coverage, max(1, image_height - 2 * margin_px))
    ink = np.pad(np.asarray(coverage, dtype=np.float32) / 255.0, margin_px)
    ink = _slanted_and_warped(ink, drawn.slant_degrees, peak_displacement_px, style_rng)
    ink = _cropped_to_ink_columns(ink, margin_px)

    ink_gray = round(255 * (1.0 - drawn.ink_intensity))
    image = np.round(255.0 - ink * (255 - ink_gray)).astype(np.uint8)
    style_drawn = {
        "font_name": plan.font_name,
        # The file name alone: where the package or the font is installed is no part of the data.
        "font_file": Path(plan.font_path).name if plan.font_path is not None else None,
        "slant_degrees": drawn.slant_degrees,
        "baseline_wobble": drawn.baseline_wobble,
        "baseline_wavelength_em": drawn.baseline_wavelength_em,
        "stroke_width_px": stroke_width_px,
        "working_font_size_px": font_size_px,
        "letter_spacing": drawn.letter_spacing,
        "ink_intensity": drawn.ink_intensity,
        "ink_gray": ink_gray,
        "elastic_distortion": drawn.elastic_distortion,
    }
    return image, style_drawn


def _draw_style(style: HandwritingStyle, rng: np.random.Generator) -> DrawnStyle:
    return DrawnStyle(
        slant_degrees=float(rng.uniform(*style.slant_degrees)),
        baseline_wobble=float(rng.uniform(*style.baseline_wobble)),
        baseline_wavelength_em=float(rng.uniform(3.0, 10.0)),
        baseline_phase=float(rng.uniform(0.0, 2.0 * math.pi)),
        stroke_width=float(rng.uniform(*style.stroke_width)),
        letter_spacing=float(rng.uniform(*style.letter_spacing)),
        ink_intensity=float(rng.uniform(*style.ink_intensity)),
        elastic_distortion=float(rng.uniform(*style.elastic_distortion)),
    )


@dataclass(frozen=True)
class Glyph:
    """One character drawn alone: its ink coverage and where it sits relative to the pen on the baseline."""

    coverage: np.ndarray
    """(rows, columns) uint8, 255 = full ink."""
    left_px: int
    top_px: int
    advance_px: float


@functools.lru_cache(maxsize=4096)
def _glyph(font_path: str | None, font_size_px: int, stroke_width_px: int, character: str) -> Glyph:
    """Each glyph is rasterised once per process: lines repeat the same few dozen characters.

    4096 glyphs hold every (font, stroke width, character) the built-in corpus needs at ``image_height`` 64
    (about 1500, 3 KB each); tiles grow with the square of the height, to about 54 KB at 512 rows, so the
    cache stays under about 220 MB per process even there.
    """
    font = load_font(font_path, font_size_px)
    left, top, right, bottom = font.getbbox(character, anchor="ls", stroke_width=stroke_width_px)
    tile = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(tile).text(
        (-left, -top), character, fill=255, font=font, anchor="ls", stroke_width=stroke_width_px, stroke_fill=255
    )
    return Glyph(np.asarray(tile), left, top, font.getlength(character))


def _draw_wobbly_text(
    plan: SyntheticLinePlan, font_size_px: int, drawn: DrawnStyle, stroke_width_px: int
) -> Image.Image:
    """Ink coverage ('L', 255 = full ink) of the text drawn glyph by glyph on a wavy baseline."""
    glyphs = [_glyph(plan.font_path, font_size_px, stroke_width_px, character) for character in plan.text]
    advances_px = np.array([glyph.advance_px for glyph in glyphs]) + drawn.letter_spacing * font_size_px
    pen_xs_px = np.concatenate([[0.0], np.cumsum(advances_px)[:-1]])
    wavelength_px = drawn.baseline_wavelength_em * font_size_px
    pen_ys_px = (drawn.baseline_wobble * font_size_px) * np.sin(
        2 * math.pi * (pen_xs_px + advances_px / 2) / wavelength_px + drawn.baseline_phase
    )
    # Whole working pixels: the output is smaller still, so the rounding is invisible.
    lefts = [round(x) + glyph.left_px for x, glyph in zip(pen_xs_px, glyphs, strict=True)]
    tops = [round(y) + glyph.top_px for y, glyph in zip(pen_ys_px, glyphs, strict=True)]
    canvas_left, canvas_top = min(lefts), min(tops)
    canvas_right = max(left + glyph.coverage.shape[1] for left, glyph in zip(lefts, glyphs, strict=True))
    canvas_bottom = max(top + glyph.coverage.shape[0] for top, glyph in zip(tops, glyphs, strict=True))
    canvas = np.zeros((canvas_bottom - canvas_top, canvas_right - canvas_left), dtype=np.uint8)
    # canvas: (rows, columns) uint8 ink coverage, just big enough for every glyph
    for left, top, glyph in zip(lefts, tops, glyphs, strict=True):
        rows, columns = glyph.coverage.shape
        region = canvas[top - canvas_top : top - canvas_top + rows, left - canvas_left : left - canvas_left + columns]
        np.maximum(region, glyph.coverage, out=region)
    return Image.fromarray(canvas)


def _cropped_to_ink(coverage: Image.Image) -> Image.Image:
    """The bounding box of the ink; the whole image when there is none (a text of blank glyphs)."""
    bounding_box = coverage.getbbox()
    return coverage if bounding_box is None else coverage.crop(bounding_box)


def _cropped_to_ink_columns(ink: np.ndarray, margin_px: int) -> np.ndarray:
    """All rows, and the columns that hold ink plus ``margin_px`` blank columns on each side."""
    # ink: (height, width) float32 coverage in [0, 1]
    inked_columns = np.flatnonzero(ink.max(axis=0) > 0.0)
    if inked_columns.size == 0:
        return ink
    return np.pad(ink[:, inked_columns[0] : inked_columns[-1] + 1], ((0, 0), (margin_px, margin_px)))


def _resized_to_height(coverage: Image.Image, height: int) -> Image.Image:
    width = max(1, round(coverage.size[0] * height / coverage.size[1]))
    return coverage.resize((width, height), Image.Resampling.LANCZOS)


def _slanted_and_warped(
    ink: np.ndarray, slant_degrees: float, peak_displacement_px: float, rng: np.random.Generator
) -> np.ndarray:
    """Lean the writing by ``slant_degrees`` (positive: to the right) and bend its strokes smoothly.

    One resampling does both, so strokes are interpolated once. The shear moves each row sideways in
    proportion to its height above the middle row; the elastic warp, as of an unsteady hand, displaces every
    pixel by a smooth random field that varies over about a third of the image height and peaks at
    ``peak_displacement_px``. The image widens by the shear's sideways reach, so no ink is cut off.
    """
    # ink: (height, width) float32 coverage in [0, 1]
    height, width = ink.shape
    shear = math.tan(math.radians(slant_degrees))
    sheared_width = width + math.ceil(abs(shear) * height)
    rows, columns = np.indices((height, sheared_width), dtype=np.float32)
    # Inverse map, output -> input: a right lean takes the top rows' ink from further left.
    source_columns = columns - abs(shear) * height / 2 + shear * (rows - height / 2)
    source_rows = rows
    if peak_displacement_px >= 0.05:
        correlation_px = max(height / 3.0, 2.0)
        source_rows = rows + peak_displacement_px * smooth_random_field(rows.shape, correlation_px, rng)
        source_columns += peak_displacement_px * smooth_random_field(rows.shape, correlation_px, rng)
    warped = ndimage.map_coordinates(
        ink, [source_rows, source_columns], order=1, mode="constant", cval=0.0, prefilter=False
    )
    return np.clip(warped, 0.0, 1.0)
