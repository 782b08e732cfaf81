"""Restoring an image of any size in overlapping windows, blended with smooth weights, in bounded memory.

A page is cut into windows of the size the generator was trained near; neighbouring windows share ``overlap``
pixels, and each restored window is weighted by a ramp that falls towards its edges, so the output at a window
border comes mostly from the neighbour that sees that spot in its interior. Without blending, the zero padding
and (with ``normalisation: instance``) the per-window statistics of the generator show as seams along every window
border.

A long line is the same problem with one row of windows: resize it to the model height and call
:func:`restore_tiled` with ``window_height`` equal to that height.

Memory: the windows are processed one band (one row of window origins) at a time. Float accumulators exist
only for the rows of the current band; rows that no later band reaches are written to the uint8 output at once.
A 10,000 x 8,000 page therefore never holds a full-page float array, only its uint8 input and output.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from typing import Literal, cast, get_args

import numpy as np
import torch
from PIL import Image

from htr_pipeline.data.images import normalise_line
from htr_pipeline.progress import tqdm

Ramp = Literal["linear", "gaussian"]
RAMPS: tuple[str, ...] = get_args(Ramp)

WEIGHT_FLOOR = 1e-3
"""Smallest window weight: a page border pixel is seen by one window only, at the very edge of its ramp, and
the blend divides by the weight sum there."""

GAUSSIAN_SIGMAS_PER_OVERLAP = 3.0
"""The gaussian ramp spans three standard deviations over the overlap, reaching ~1% at the window edge."""


def window_weights(height: int, width: int, overlap_y: int, overlap_x: int, ramp: Ramp) -> np.ndarray:
    """(height, width) float32 blending weights: 1 in the interior, falling to the edges over the overlaps.

    The weight is the product of a vertical and a horizontal profile; each profile ramps over ``overlap``
    pixels from both ends (an overlap of 0 gives a flat profile). Never below ``WEIGHT_FLOOR``.
    """
    if ramp not in RAMPS:
        raise ValueError(f"unknown ramp {ramp!r}; valid ramps: {', '.join(RAMPS)}")
    vertical = _ramp_profile(height, overlap_y, ramp)
    horizontal = _ramp_profile(width, overlap_x, ramp)
    return np.maximum(np.outer(vertical, horizontal), WEIGHT_FLOOR).astype(np.float32)


def _ramp_profile(length: int, overlap: int, ramp: Ramp) -> np.ndarray:
    """(length,) weights in (0, 1], by each pixel centre's distance to the nearer end."""
    if overlap <= 0:
        return np.ones(length)
    centres = np.arange(length) + 0.5
    distance_to_edge = np.minimum(centres, length - centres)
    if ramp == "linear":
        return np.minimum(distance_to_edge / overlap, 1.0)
    sigma = overlap / GAUSSIAN_SIGMAS_PER_OVERLAP
    inside_ramp = np.maximum(overlap - distance_to_edge, 0.0)
    return np.exp(-0.5 * (inside_ramp / sigma) ** 2)


def window_origins(length: int, window: int, overlap: int) -> list[int]:
    """Start positions of windows covering [0, length), neighbours sharing at least ``overlap`` pixels.

    The windows advance by ``window - overlap``; the last one is moved inward to end exactly at ``length``
    (sharing more than ``overlap`` with its neighbour) rather than reaching past the image.
    A length up to one window gives the single origin 0.
    """
    if length <= window:
        return [0]
    if not 0 <= overlap < window:
        raise ValueError(f"the overlap ({overlap}) must be at least 0 and below the window ({window})")
    last_origin = length - window
    return [*range(0, last_origin, window - overlap), last_origin]


def restore_tiled(
    image: np.ndarray,
    restore: Callable[[torch.Tensor], torch.Tensor],
    window_height: int,
    window_width: int,
    overlap: int,
    ramp: str,
    size_multiple: int,
    tiles_per_batch: int,
    progress: bool = False,
) -> np.ndarray:
    """``image`` restored window by window by ``restore``, blended, as (height, width) uint8.

    ``restore`` maps a CPU float32 batch ``(n, 1, h, w)`` in [0, 1] to the same shape (on any device); it is
    called under ``torch.no_grad()`` with at most ``tiles_per_batch`` windows of one band at a time.

    Windows must be multiples of ``size_multiple`` (the generator's total downsampling). An image smaller than
    a window in a dimension is restored in one window shrunk to the image size rounded up to ``size_multiple``:
    the missing remainder (< ``size_multiple`` pixels) is filled by reflecting the image, the only padding
    anywhere, and cropped from the output.
    """
    # image: (height, width) uint8
    _check_tiling_arguments(image, window_height, window_width, ramp, size_multiple, tiles_per_batch)
    height, width = image.shape
    tile_height = min(window_height, _round_up(height, size_multiple))
    tile_width = min(window_width, _round_up(width, size_multiple))
    # The image, or its reflect-padded remainder, spans max(size, tile) along each dimension.
    origins_y = window_origins(max(height, tile_height), tile_height, overlap)
    origins_x = window_origins(max(width, tile_width), tile_width, overlap)
    # A single window along a dimension has no neighbour to blend with: a flat profile there.
    weights = window_weights(
        tile_height,
        tile_width,
        overlap if len(origins_y) > 1 else 0,
        overlap if len(origins_x) > 1 else 0,
        cast(Ramp, ramp),
    )
    restored = np.empty_like(image)
    # The band's rows, reused for every band: rows shared with the next band move up instead of being copied
    # into a fresh pair, so the float memory is one band's pair whatever the page height.
    band_sum = np.zeros((tile_height, max(width, tile_width)), dtype=np.float32)
    band_weight = np.zeros_like(band_sum)
    next_origins_y = [*origins_y[1:], None]
    with torch.no_grad():
        for top, next_top in tqdm(
            list(zip(origins_y, next_origins_y, strict=True)), desc="bands", disable=not progress, leave=False
        ):
            band = _padded_band(image, top, tile_height, tile_width)
            _accumulate_band(band, band_sum, band_weight, origins_x, weights, restore, tiles_per_batch)
            # Rows above the next band's top are final: no later window reaches them.
            final_rows = tile_height if next_top is None else next_top - top
            _write_final_rows(restored, top, band_sum[:final_rows], band_weight[:final_rows])
            _move_rows_up(band_sum, final_rows)
            _move_rows_up(band_weight, final_rows)
    return restored


def _check_tiling_arguments(
    image: np.ndarray, window_height: int, window_width: int, ramp: str, size_multiple: int, tiles_per_batch: int
) -> None:
    if image.ndim != 2 or image.dtype != np.uint8 or image.size == 0:
        raise ValueError(f"expected a non-empty (height, width) uint8 image, got {image.dtype} {image.shape}")
    if ramp not in RAMPS:
        raise ValueError(f"unknown ramp {ramp!r}; valid ramps: {', '.join(RAMPS)}")
    if size_multiple < 1 or window_height % size_multiple or window_width % size_multiple:
        raise ValueError(
            f"windows ({window_height} x {window_width}) must be multiples of the generator's size multiple "
            f"({size_multiple})"
        )
    if tiles_per_batch < 1:
        raise ValueError(f"tiles_per_batch must be at least 1, got {tiles_per_batch}")


def _round_up(length: int, multiple: int) -> int:
    return math.ceil(length / multiple) * multiple


def _padded_band(image: np.ndarray, top: int, tile_height: int, tile_width: int) -> np.ndarray:
    """The image rows [top, top + tile_height), reflected at the bottom and right up to one window if short."""
    # image: (height, width) uint8 -> band: (tile_height, max(width, tile_width)) uint8
    rows = image[top : top + tile_height]
    missing_rows = tile_height - rows.shape[0]
    missing_columns = max(tile_width - rows.shape[1], 0)
    if missing_rows == 0 and missing_columns == 0:
        return rows
    return np.pad(rows, ((0, missing_rows), (0, missing_columns)), mode="reflect")


def _accumulate_band(
    band: np.ndarray,
    band_sum: np.ndarray,
    band_weight: np.ndarray,
    origins_x: list[int],
    weights: np.ndarray,
    restore: Callable[[torch.Tensor], torch.Tensor],
    tiles_per_batch: int,
) -> None:
    """Add the band's weighted restored windows to ``band_sum`` and their weights to ``band_weight``."""
    # band: (tile_height, band_width) uint8; band_sum, band_weight: (tile_height, band_width) float32
    # weights: (tile_height, tile_width) float32
    tile_height, tile_width = weights.shape
    for batch_origins in _batches(origins_x, tiles_per_batch):
        # tiles: (n, 1, tile_height, tile_width) float32 in [0, 1]
        tiles = np.empty((len(batch_origins), 1, tile_height, tile_width), dtype=np.float32)
        for index, left in enumerate(batch_origins):
            tiles[index, 0] = band[:, left : left + tile_width]
        tiles /= 255.0
        restored_tiles = _restore_batch(restore, tiles)
        for left, restored_tile in zip(batch_origins, restored_tiles, strict=True):
            band_sum[:, left : left + tile_width] += restored_tile * weights
            band_weight[:, left : left + tile_width] += weights


def _batches(origins: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(origins), size):
        yield origins[start : start + size]


def _restore_batch(restore: Callable[[torch.Tensor], torch.Tensor], tiles: np.ndarray) -> np.ndarray:
    """(n, tile_height, tile_width) float32 restorations of ``tiles`` (n, 1, tile_height, tile_width)."""
    restored = restore(torch.from_numpy(tiles))
    if tuple(restored.shape) != tiles.shape:
        raise ValueError(f"restore must keep the batch shape {tiles.shape}, returned {tuple(restored.shape)}")
    return restored.detach().to("cpu", torch.float32).numpy()[:, 0]


def _write_final_rows(restored: np.ndarray, top: int, row_sum: np.ndarray, row_weight: np.ndarray) -> None:
    """Blend the final rows and write those inside the image (padding dropped) to ``restored`` from ``top``.

    ``row_sum`` is overwritten with the blend: its rows are done with, and a fresh array would double the
    band's float memory.
    """
    # restored: (height, width) uint8; row_sum, row_weight: (rows, band_width) float32
    height, width = restored.shape
    rows = min(row_sum.shape[0], height - top)
    blended = row_sum[:rows, :width]
    np.divide(blended, row_weight[:rows, :width], out=blended)
    blended *= 255.0
    np.clip(np.round(blended, out=blended), 0.0, 255.0, out=blended)
    restored[top : top + rows] = blended


def _move_rows_up(accumulator: np.ndarray, rows: int) -> None:
    """Drop the first ``rows`` rows: the others move to the top and the freed rows at the bottom start at 0."""
    # accumulator: (tile_height, band_width) float32
    kept_rows = accumulator.shape[0] - rows
    accumulator[:kept_rows] = accumulator[rows:]
    accumulator[kept_rows:] = 0.0


def resize_to_height(image: np.ndarray, height: int) -> tuple[np.ndarray, float]:
    """``image`` resized to ``height`` rows keeping its aspect ratio (LANCZOS), and the scale applied."""
    # image: (original_height, original_width) uint8 -> (height, ~original_width * scale) uint8
    # The line normalisation of ingestion, never squeezed: long lines are restored in windows along the width.
    line = normalise_line(image, image_height=height, max_width=sys.maxsize)
    return line.image, height / image.shape[0]


def resize_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` resized to (height, width) (LANCZOS), e.g. a restored line back to its original size."""
    # image: (any_height, any_width) uint8 -> (height, width) uint8
    if image.shape == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS))
