"""Real paper from scanned pages: the paper without its ink, and the ink that was on it.

A page gives its paper in one of two ways:

- **with a binarization ground truth** (a DIBCO-style pair): the ink is where the ground truth is dark;
- **without one** (the archive a user wants to restore): the ink is estimated as what is clearly darker than a
  background estimate, a large median of the page, by more than the paper's own grain explains.

Either way the ink mask is then grown over the dark halo around the strokes that a ground truth leaves out
(ink spread, scanner blur, anti-aliasing), only where that halo is darker than the paper around it, and the
holes are filled from the surrounding paper: a normalised convolution, fine scales first and coarser ones for
what lies deeper inside a stroke, plus the paper's own grain copied from elsewhere on the page, so that no ghost
of the text stays behind and the filled paper is as grainy as the rest.

Everything here is plain numpy/scipy on (height, width) arrays: ``float32`` in [0, 1] inside (1 = white), ``uint8``
(255 = white) where a page is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image
from scipy import ndimage

from htr_pipeline.data.seeding import rng_for

InkFrom = Literal["ground_truth", "estimated"]

GROUND_TRUTH_INK_BELOW = 128
"""A ground-truth pixel darker than this is ink (DIBCO: 0 = ink, 255 = background)."""
INK_MIN_CONTRAST = 0.08
"""Estimated ink is at least this much darker than its background, as a share of the background's brightness."""
INK_NOISE_MULTIPLE = 4.0
"""... and darker by more than this many times the paper's grain (robust standard deviation of the ratio)."""
INK_MIN_PIXELS = 4
"""Estimated ink specks smaller than this are paper grain, not ink."""
HALO_MAX_PX = 8
"""How far around the ink the dark halo is looked for (at the page's working scale)."""
HALO_NOISE_MULTIPLE = 2.5
"""A halo pixel is darker than the paper filled in around it by more than this many times the paper's grain."""
GRAIN_SIGMA_PX = 1.5
"""The paper's grain is what a Gaussian of this width smooths away."""
GRAIN_TRIES = 4
"""Random offsets tried to find grain for a filled pixel from a part of the page that is paper."""
FILL_MIN_WEIGHT = 0.1
"""A scale fills a pixel once this share of its Gaussian neighbourhood is known paper."""
PAGE_BACKGROUND_WINDOW_SHARE = 1 / 20
"""A page's background is a median over windows of this share of its shorter side ..."""
PAGE_BACKGROUND_WINDOW_PX = (31, 151)
"""... within these bounds (wide enough to see past any stroke, narrow enough to follow the lighting)."""


class PaperError(ValueError):
    """A page cannot give its paper (sizes that differ, a page too small): the message names the page."""


@dataclass(frozen=True)
class PaperPage:
    """The paper of one scanned page with its ink removed, and that ink, at the page's working scale."""

    page_id: str
    """``<folder name>:<file stem>``: recorded in the manifest for every patch cut from this page."""
    paper: np.ndarray
    """(height, width) uint8, 255 = white: the scan with its ink removed and the holes filled."""
    ink: np.ndarray
    """(height, width) uint8: how much the page's ink darkened its paper, 0 (none) to 255 (black): real ink for
    bleed-through."""
    ink_absorption: float
    """The typical darkness of the page's ink relative to its paper (median over the ink), in (0, 1]."""
    ink_from: InkFrom
    scale: float
    """Working pixels per scanned pixel."""

    @property
    def shape(self) -> tuple[int, int]:
        return self.paper.shape


# --------------------------------------------------------------------------------------------- pages


def paper_from_pair(page_id: str, scan: np.ndarray, ground_truth: np.ndarray, scale: float = 1.0) -> PaperPage:
    """The paper of a scan whose ink a binarization ground truth marks (dark = ink), at ``scale``."""
    # scan, ground_truth: (height, width) uint8, same size
    if scan.shape != ground_truth.shape:
        raise PaperError(
            f"{page_id}: the scan is {scan.shape[1]} x {scan.shape[0]} px but its ground truth "
            f"{ground_truth.shape[1]} x {ground_truth.shape[0]} px; they must be the same size"
        )
    working = _scaled(scan, scale)
    # The mask is resampled as grey and thresholded, so thin strokes survive a reduction.
    ink = _scaled(ground_truth, scale) < GROUND_TRUTH_INK_BELOW
    return _page_without_ink(page_id, working, ink, "ground_truth", scale)


def paper_from_scan(page_id: str, scan: np.ndarray, scale: float = 1.0) -> PaperPage:
    """The paper of a scan without ground truth: its ink estimated (:func:`estimate_ink`), at ``scale``."""
    # scan: (height, width) uint8
    working = _scaled(scan, scale)
    return _page_without_ink(page_id, working, estimate_ink(working), "estimated", scale)


def _page_without_ink(page_id: str, scan: np.ndarray, ink: np.ndarray, ink_from: InkFrom, scale: float) -> PaperPage:
    # scan: (height, width) uint8; ink: (height, width) bool
    if min(scan.shape) < 2 * HALO_MAX_PX:
        raise PaperError(f"{page_id}: {scan.shape[1]} x {scan.shape[0]} px at scale {scale} is too small a page")
    page = scan.astype(np.float32) / 255.0
    # The grain copied into the holes depends on the page alone, so a page gives the same paper in every run.
    paper = remove_ink(page, ink, rng_for(0, page_id, "paper grain"))
    coverage = np.clip((paper - page) / np.maximum(paper, 1e-3), 0.0, 1.0)
    on_ink = coverage[ink]
    absorption = float(np.median(on_ink)) if on_ink.size else 0.0
    return PaperPage(
        page_id=page_id,
        paper=_to_uint8(paper),
        ink=_to_uint8(coverage),
        ink_absorption=max(absorption, 1e-3),
        ink_from=ink_from,
        scale=scale,
    )


# ----------------------------------------------------------------------------------------- estimates


def background_estimate(scan: np.ndarray, window_px: int) -> np.ndarray:
    """The paper under the ink: a median over ``window_px``-wide windows, which sees past any stroke narrower
    than half the window. Computed on a grid of about a tenth of the window and interpolated back, which follows
    lighting and stains as well and costs a hundredth of the full median."""
    # scan: (height, width) float32 in [0, 1]; returns the same shape
    step = max(1, window_px // 10)
    coarse = scan[step // 2 :: step, step // 2 :: step]
    size = max(3, (window_px // step) | 1)
    background = ndimage.gaussian_filter(ndimage.median_filter(coarse, size=size, mode="reflect"), 1.0)
    return _resized(background, scan.shape)


def page_background_window_px(shape: tuple[int, int]) -> int:
    """The median window for a whole page: a share of its shorter side, within bounds, odd."""
    low, high = PAGE_BACKGROUND_WINDOW_PX
    return int(np.clip(round(min(shape) * PAGE_BACKGROUND_WINDOW_SHARE), low, high)) | 1


def estimate_ink(scan: np.ndarray, window_px: int | None = None) -> np.ndarray:
    """Where a scan without ground truth has ink: darker than the background estimate by more than both
    :data:`INK_MIN_CONTRAST` and :data:`INK_NOISE_MULTIPLE` times the paper's grain; specks removed."""
    # scan: (height, width) uint8; returns (height, width) bool
    page = scan.astype(np.float32) / 255.0
    background = background_estimate(page, window_px or page_background_window_px(page.shape))
    ratio = page / np.maximum(background, 1e-3)
    threshold = 1.0 - max(INK_MIN_CONTRAST, INK_NOISE_MULTIPLE * _robust_std(ratio))
    ink = ratio < threshold
    labels, count = ndimage.label(ink)
    if count:
        sizes = ndimage.sum_labels(ink, labels, index=np.arange(1, count + 1))
        ink = np.isin(labels, np.flatnonzero(sizes >= INK_MIN_PIXELS) + 1)
    return ink


def remove_ink(page: np.ndarray, ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``page`` with the ink (and the dark halo around it) replaced by paper filled in from around it."""
    # page: (height, width) float32 in [0, 1]; ink: (height, width) bool; returns float32 in [0, 1]
    if not ink.any():
        return page.copy()
    near_ink = ndimage.binary_dilation(ink, iterations=HALO_MAX_PX)
    paper_around = fill_holes(page, near_ink)
    grain = _robust_std(page[~near_ink] - ndimage.gaussian_filter(page, GRAIN_SIGMA_PX)[~near_ink])
    halo = near_ink & (page < paper_around - HALO_NOISE_MULTIPLE * max(grain, 1.0 / 255.0))
    holes = ndimage.binary_dilation(ink | halo)
    filled = fill_holes(page, holes)
    return np.clip(filled + _grain_for(page, holes, rng), 0.0, 1.0)


def fill_holes(image: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """``image`` with its ``holes`` filled smoothly from the pixels around them (normalised convolution): each
    hole pixel takes the Gaussian-weighted mean of the known pixels at the finest scale that sees enough of them."""
    # image: (height, width) float32; holes: (height, width) bool
    known = (~holes).astype(np.float32)
    if not known.any():
        return np.full_like(image, float(image.mean()))
    filled = image.copy()
    unfilled = holes.copy()
    sigma = 1.0
    while unfilled.any():
        weight = _smoothed(known, sigma)
        mean = _smoothed(image * known, sigma) / np.maximum(weight, 1e-6)
        # At the widest scale every hole is filled, however little paper it sees.
        widest = sigma >= max(image.shape)
        reached = unfilled & ((weight >= FILL_MIN_WEIGHT) | (widest & (weight > 0)))
        filled[reached] = mean[reached]
        unfilled &= ~reached
        if widest and unfilled.any():
            filled[unfilled] = float(image[~holes].mean())
            break
        sigma *= 2.0
    return filled


def remove_paper(scan: np.ndarray, window_px: int | None = None) -> np.ndarray:
    """A scanned line (or page) as ink on white: each pixel divided by the paper under it (the background
    estimate), and what is no darker than the paper's grain set to white. The ink keeps its own shades."""
    # scan: (height, width) uint8; returns (height, width) uint8, 255 = white
    page = scan.astype(np.float32) / 255.0
    window = window_px or max(15, min(page.shape) | 1)
    ratio = np.clip(page / np.maximum(background_estimate(page, window), 1e-3), 0.0, 1.0)
    noise_floor = 1.0 - max(INK_MIN_CONTRAST, INK_NOISE_MULTIPLE * _robust_std(ratio))
    ratio[ratio >= noise_floor] = 1.0
    return _to_uint8(ratio)


# ------------------------------------------------------------------------------------------- patches


def cut_patch(image: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """``image[top:top + height, left:left + width]``, mirrored at the edges where the image is smaller."""
    # image: (rows, columns) any dtype
    rows = np.arange(top, top + height)
    columns = np.arange(left, left + width)
    return image[np.ix_(_mirrored_indices(rows, image.shape[0]), _mirrored_indices(columns, image.shape[1]))]


def _mirrored_indices(indices: np.ndarray, size: int) -> np.ndarray:
    """Indices reflected back into [0, size) (..., 1, 0, 0, 1, ..., size - 1, size - 1, ...), any distance out."""
    period = 2 * size
    folded = np.mod(indices, period)
    return np.where(folded < size, folded, period - 1 - folded)


# ------------------------------------------------------------------------------------------- helpers


def _grain_for(page: np.ndarray, holes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Grain for the hole pixels, copied from the page shifted by a random offset where the source is paper."""
    # page: (height, width) float32; holes: (height, width) bool; returns float32, 0 outside the holes
    height, width = page.shape
    paper = ~holes
    known = paper.astype(np.float32)
    smooth_paper = _smoothed(page * known, GRAIN_SIGMA_PX) / np.maximum(_smoothed(known, GRAIN_SIGMA_PX), 1e-6)
    residual = np.where(paper, page - smooth_paper, 0.0)
    grain = np.zeros_like(page)
    missing = holes.copy()
    for _ in range(GRAIN_TRIES):
        if not missing.any():
            break
        shift = (int(rng.integers(-height // 2, height // 2 + 1)), int(rng.integers(-width // 2, width // 2 + 1)))
        shifted_residual = np.roll(residual, shift, axis=(0, 1))
        shifted_is_paper = np.roll(paper, shift, axis=(0, 1))
        taken = missing & shifted_is_paper
        grain[taken] = shifted_residual[taken]
        missing &= ~taken
    return grain.astype(np.float32)


def _smoothed(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur; wide ones on a coarser grid (block means), interpolated back: the same at a fraction of
    the cost."""
    # image: (height, width) float32
    step = max(1, int(sigma // 2))
    if step == 1:
        return ndimage.gaussian_filter(image, sigma, mode="reflect")
    height, width = image.shape
    padded = np.pad(image, ((0, -height % step), (0, -width % step)), mode="edge")
    blocks = padded.reshape(padded.shape[0] // step, step, padded.shape[1] // step, step).mean(axis=(1, 3))
    return _resized(ndimage.gaussian_filter(blocks, sigma / step, mode="reflect"), image.shape)


def _resized(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A float32 image resized to ``shape`` (height, width) by bilinear interpolation."""
    if image.shape == shape:
        return image.astype(np.float32, copy=False)
    resized = Image.fromarray(image.astype(np.float32)).resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32)


def _scaled(image: np.ndarray, scale: float) -> np.ndarray:
    """A uint8 image resized by ``scale`` (area-averaged when reduced)."""
    if scale == 1.0:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    resample = Image.Resampling.BOX if scale < 1.0 else Image.Resampling.BICUBIC
    return np.asarray(Image.fromarray(image).resize(size, resample))


def _robust_std(values: np.ndarray) -> float:
    """The standard deviation a normal distribution with the values' median absolute deviation would have."""
    if values.size == 0:
        return 0.0
    sample = values.ravel()[:: max(1, values.size // 200_000)]
    return float(1.4826 * np.median(np.abs(sample - np.median(sample))))


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
