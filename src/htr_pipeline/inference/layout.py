"""Whether an input is one text line or a page of several, from its content: text lines counted in the horizontal
projection profile of its ink.

A line crop and a page can share an aspect ratio (a 1726 x 391 DIBCO page of four lines is wider, for its height,
than many line crops), so the shape alone misleads; the rows that hold ink do not. The image is binarised (Otsu),
the share of ink per row is smoothed over a few rows, and the bands of rows clearly above the paper are text lines
once bands split by a narrow gap (a descender touching the next ascender's space) are merged and slivers (a stain,
a ruled line) dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from htr_pipeline.metrics import binarise

SAUVOLA_WINDOW = 25
"""Local binarisation: a stained or unevenly lit scan fools a global threshold into taking paper for ink."""
BAND_THRESHOLD = 0.2
"""A row belongs to a text band when its smoothed ink share is at least this share of the busiest row's."""
SMOOTHING_SHARE = 1 / 60
"""Rows the profile is smoothed over, as a share of the image height (at least 1)."""
MIN_GAP_SHARE = 0.25
"""Bands closer than this share of the median band's height are one line (ascenders, descenders, accents)."""
MIN_BAND_SHARE = 0.3
"""Bands lower than this share of the tallest band are not lines (a stain, a ruled line, a speck)."""

EDGE_BAND_SHARE = 0.6
"""A band cut by the image's top or bottom edge must reach this share of the tallest band to count: a line crop
often holds the descenders of the line above or the ascenders of the one below."""


@dataclass(frozen=True)
class TextLines:
    count: int
    """Text lines found; 0 when the image holds no ink."""
    bands: tuple[tuple[int, int], ...]
    """(first row, row after the last) of each line, top to bottom."""


def count_text_lines(image: np.ndarray) -> TextLines:
    """The text lines of ``image`` from the projection profile of its ink."""
    # image: (height, width) uint8, 255 = paper
    height = image.shape[0]
    ink = binarise(image, "sauvola", SAUVOLA_WINDOW)
    if not ink.any() or ink.mean() > 0.5:  # blank, or a binarisation that took the paper for ink
        return TextLines(0, ())
    profile = ink.mean(axis=1)
    window = max(1, round(height * SMOOTHING_SHARE))
    smoothed = np.convolve(profile, np.ones(window) / window, mode="same")
    bands = _runs(smoothed >= BAND_THRESHOLD * smoothed.max())
    typical = float(np.median([end - start for start, end in bands]))
    merged: list[tuple[int, int]] = []
    for start, end in bands:
        if merged and start - merged[-1][1] < MIN_GAP_SHARE * typical:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    tallest = max(end - start for start, end in merged)
    lines = tuple(
        (start, end)
        for start, end in merged
        if end - start >= (EDGE_BAND_SHARE if start == 0 or end == height else MIN_BAND_SHARE) * tallest
    )
    return TextLines(len(lines), lines)


def _runs(rows: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of True in ``rows``."""
    padded = np.concatenate([[False], rows, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


@dataclass(frozen=True)
class KindDecision:
    kind: str
    """``line`` or ``page``."""
    reason: str
    """Why, in words, as the inference table and log show it."""


def decide_kind(image: np.ndarray, mode: str, line_min_aspect: float) -> KindDecision:
    """``mode`` ``lines`` or ``pages`` decides; ``auto``: one text line is a line, several a page, except two
    found in an image at least twice ``line_min_aspect`` times wider than high (a line crop holding parts of its
    neighbours); no ink at all: the aspect ratio decides.

    Measured on the shared real data: 32 of the 36 DIBCO 2009-2011 pages are pages and 1,002 of the 1,060
    Testaments de Poilus line crops are lines (the aspect ratio alone: 29 of 36, and 939 of 1,060)."""
    if mode != "auto":
        return KindDecision("line" if mode == "lines" else "page", f"inference.mode={mode}")
    height, width = image.shape
    aspect = width / height
    lines = count_text_lines(image)
    if lines.count == 0:
        kind = "line" if aspect >= line_min_aspect else "page"
        return KindDecision(
            kind, f"no ink found; aspect {aspect:.1f} {'>=' if kind == 'line' else '<'} {line_min_aspect}"
        )
    if lines.count == 1 or (lines.count == 2 and aspect >= 2 * line_min_aspect):
        return KindDecision(
            "line", f"{lines.count} text line{'s' if lines.count > 1 else ''} found, aspect {aspect:.1f}"
        )
    return KindDecision("page", f"{lines.count} text lines found")
