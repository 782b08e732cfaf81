import itertools
import tracemalloc

import numpy as np
import pytest
import torch
from torch import nn

from htr_pipeline.config import UnetGeneratorConfig
from htr_pipeline.inference.tiling import (
    resize_to,
    resize_to_height,
    restore_tiled,
    window_origins,
    window_weights,
)
from htr_pipeline.models.registry import build_generator

PAGE_HEIGHT, PAGE_WIDTH = 2000, 1500
PAGE_GREY = 200
WINDOW = 256
OVERLAP = 64
GENERATOR_SIZE_MULTIPLE = 4  # channels [8, 16, 32]: three levels, two halvings
TILES_PER_BATCH = 8

PAGE_BORDER_MARGIN = 32
"""The generator's own zero-padding effect reaches ~20 px into any image it sees (measured: neighbouring pixels
of one window differ by up to 106 grey levels at its edge, by at most 2 beyond 20 px). At the page border that
effect is the model's, tiled or not, so seams are measured at least this far from it."""

SEAM_BOUND = 6
"""Largest jump allowed across a window border with blending. Measured: 3 (linear) and 3 (gaussian), the same
as the model's own jumps inside one window (2, the period-4 pattern of its pooling and transposed convs) plus
rounding. Without blending (overlap 0) the same model jumps by 68 across window rows and 46 across columns."""


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def random_generator() -> nn.Module:
    """A small real generator, not the identity: the zero-initialised head and every other weight perturbed. No
    paper levels: they would bring the constant grey page to another constant first, and these tests are about
    the windows."""
    torch.manual_seed(0)
    generator = build_generator(UnetGeneratorConfig(variant="unet", channels=[8, 16, 32], paper_levels=None))
    with torch.no_grad():
        for parameter in generator.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return generator.eval()


@pytest.fixture(scope="module")
def constant_page() -> np.ndarray:
    return np.full((PAGE_HEIGHT, PAGE_WIDTH), PAGE_GREY, dtype=np.uint8)


@pytest.fixture(scope="module")
def unblended_page(random_generator: nn.Module, constant_page: np.ndarray) -> np.ndarray:
    return restore_tiled(
        constant_page, random_generator, WINDOW, WINDOW, 0, "linear", GENERATOR_SIZE_MULTIPLE, TILES_PER_BATCH
    )


def window_edges(length: int, window: int, overlap: int) -> list[int]:
    """Positions p where a window starts or ends between pixel p - 1 and p, away from the page border."""
    origins = window_origins(length, window, overlap)
    edges = {origin for origin in origins} | {origin + window for origin in origins}
    return sorted(edge for edge in edges if PAGE_BORDER_MARGIN < edge < length - PAGE_BORDER_MARGIN)


def largest_jump_across_window_edges(restored: np.ndarray, window: int, overlap: int) -> int:
    """Largest |difference| of neighbouring pixels on the two sides of any window edge, inside the margin."""
    # restored: (height, width) uint8
    grey = restored.astype(np.int32)
    height, width = grey.shape
    inner_columns = slice(PAGE_BORDER_MARGIN, width - PAGE_BORDER_MARGIN)
    inner_rows = slice(PAGE_BORDER_MARGIN, height - PAGE_BORDER_MARGIN)
    row_jumps = [
        np.abs(grey[y, inner_columns] - grey[y - 1, inner_columns]).max() for y in window_edges(height, window, overlap)
    ]
    column_jumps = [
        np.abs(grey[inner_rows, x] - grey[inner_rows, x - 1]).max() for x in window_edges(width, window, overlap)
    ]
    return int(max(row_jumps + column_jumps))


@pytest.mark.parametrize(
    ("length", "window", "overlap"),
    [(2000, 256, 64), (1500, 256, 64), (257, 256, 64), (1000, 256, 0), (513, 256, 255), (256, 256, 64), (90, 256, 64)],
)
def test_window_origins_cover_the_length_exactly_with_the_overlap(length: int, window: int, overlap: int):
    origins = window_origins(length, window, overlap)
    assert origins[0] == 0
    assert origins == sorted(set(origins))
    if length <= window:
        assert origins == [0]
        return
    assert origins[-1] + window == length, "the last window ends exactly at the end"
    assert all(origin + window <= length for origin in origins)
    shared = [previous + window - following for previous, following in itertools.pairwise(origins)]
    assert min(shared) >= overlap


def test_window_origins_refuse_an_overlap_as_large_as_the_window():
    with pytest.raises(ValueError, match="overlap"):
        window_origins(1000, 256, 256)


@pytest.mark.parametrize("ramp", ["linear", "gaussian"])
def test_window_weights_are_positive_symmetric_and_flat_inside(ramp: str):
    weights = window_weights(64, 96, 16, 24, ramp)
    assert weights.dtype == np.float32 and weights.shape == (64, 96)
    assert weights.min() > 0.0
    assert np.allclose(weights, weights[::-1]) and np.allclose(weights, weights[:, ::-1])
    assert np.all(weights[16:-16, 24:-24] == 1.0)
    assert weights[0, 0] < weights[8, 12] < weights[16, 24]


def test_window_weights_without_overlap_are_flat():
    assert np.all(window_weights(8, 8, 0, 0, "gaussian") == 1.0)


@pytest.mark.parametrize("ramp", ["linear", "gaussian"])
@pytest.mark.parametrize(
    ("height", "width"),
    [(1, 1), (7, 13), (40, 50), (64, 64), (65, 200), (131, 257), (300, 97), (200, 1000)],
)
def test_an_identity_restore_gives_the_image_back_exactly(height: int, width: int, ramp: str):
    image = np.random.default_rng(height * width).integers(0, 256, size=(height, width), dtype=np.uint8)
    restored = restore_tiled(image, lambda tiles: tiles, 64, 64, 16, ramp, 8, 3)
    assert restored.dtype == np.uint8
    assert np.array_equal(restored, image)


def test_a_long_line_is_restored_in_windows_along_its_width():
    line = np.random.default_rng(1).integers(0, 256, size=(32, 1000), dtype=np.uint8)
    batch_shapes = []

    def invert(tiles: torch.Tensor) -> torch.Tensor:
        batch_shapes.append(tuple(tiles.shape))
        return 1.0 - tiles

    restored = restore_tiled(line, invert, 32, 128, 32, "gaussian", 8, 4, progress=True)
    assert np.array_equal(restored, 255 - line)
    assert all(shape[1:] == (1, 32, 128) and shape[0] <= 4 for shape in batch_shapes)


def test_a_page_smaller_than_a_window_is_padded_to_the_size_multiple_only():
    small_page = np.random.default_rng(2).integers(0, 256, size=(10, 30), dtype=np.uint8)
    batch_shapes = []

    def invert(tiles: torch.Tensor) -> torch.Tensor:
        batch_shapes.append(tuple(tiles.shape))
        return 1.0 - tiles

    restored = restore_tiled(small_page, invert, 64, 64, 16, "linear", 8, 4)
    assert batch_shapes == [(1, 1, 16, 32)]
    assert np.array_equal(restored, 255 - small_page), "the reflected padding is cropped away"


def test_a_restore_that_changes_the_shape_is_refused():
    with pytest.raises(ValueError, match="batch shape"):
        restore_tiled(np.zeros((64, 64), dtype=np.uint8), lambda tiles: tiles[..., :-1], 64, 64, 16, "linear", 8, 2)


def test_windows_must_be_multiples_of_the_size_multiple():
    with pytest.raises(ValueError, match="multiples"):
        restore_tiled(np.zeros((64, 64), dtype=np.uint8), lambda tiles: tiles, 60, 64, 16, "linear", 8, 2)


@pytest.mark.slow
@pytest.mark.parametrize("ramp", ["linear", "gaussian"])
def test_blended_windows_leave_no_seams_where_unblended_ones_do(
    random_generator: nn.Module, constant_page: np.ndarray, unblended_page: np.ndarray, ramp: str
):
    blended_page = restore_tiled(
        constant_page, random_generator, WINDOW, WINDOW, OVERLAP, ramp, GENERATOR_SIZE_MULTIPLE, TILES_PER_BATCH
    )
    assert np.abs(blended_page.astype(int) - PAGE_GREY).max() > 50, "the generator must not be the identity"
    assert largest_jump_across_window_edges(blended_page, WINDOW, OVERLAP) <= SEAM_BOUND
    assert largest_jump_across_window_edges(unblended_page, WINDOW, 0) > 3 * SEAM_BOUND


@pytest.mark.slow
def test_a_page_is_restored_without_a_page_sized_float_array(random_generator: nn.Module, constant_page: np.ndarray):
    # tracemalloc sees numpy's arrays (the accumulators, windows and output), not torch's own allocator.
    full_page_accumulators_bytes = 2 * 4 * PAGE_HEIGHT * PAGE_WIDTH  # 24 MB
    output_bytes = PAGE_HEIGHT * PAGE_WIDTH  # 3 MB of uint8
    band_accumulators_bytes = 2 * 4 * WINDOW * PAGE_WIDTH  # 3.1 MB
    window_batch_bytes = 4 * TILES_PER_BATCH * WINDOW * WINDOW  # 2.1 MB
    slack_bytes = 2_000_000  # one restored window times its weights (0.26 MB), Python objects
    # Measured peak: 8.8 MB.
    expected_peak_bytes = output_bytes + band_accumulators_bytes + window_batch_bytes + slack_bytes

    tracemalloc.start()
    try:
        restore_tiled(
            constant_page,
            random_generator,
            WINDOW,
            WINDOW,
            OVERLAP,
            "gaussian",
            GENERATOR_SIZE_MULTIPLE,
            TILES_PER_BATCH,
        )
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak_bytes < expected_peak_bytes
    assert peak_bytes < full_page_accumulators_bytes / 2


def test_a_line_resized_to_the_model_height_goes_back_to_its_size():
    line = np.random.default_rng(3).integers(0, 256, size=(50, 333), dtype=np.uint8)
    resized, scale = resize_to_height(line, 64)
    assert resized.shape == (64, 426) and resized.dtype == np.uint8
    assert scale == pytest.approx(64 / 50)
    assert resize_to(resized, 50, 333).shape == (50, 333)
