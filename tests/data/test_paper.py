"""Paper taken from scanned pages: with a ground truth, estimated without one, and lines made ink on white."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from htr_pipeline.data.degradations import smooth_random_field
from htr_pipeline.data.images import read_grayscale
from htr_pipeline.data.paper import (
    PaperError,
    cut_patch,
    estimate_ink,
    fill_holes,
    paper_from_pair,
    paper_from_scan,
    remove_paper,
)
from htr_pipeline.metrics import f_measure
from tests.conftest import SHARED_DATA, requires_shared_data

DIBCO = SHARED_DATA / "dibco_2009_2011"


def generated_page(seed: int = 0, shape: tuple[int, int] = (180, 260)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A scan of strokes on textured paper: (scan uint8, the strokes' core as bool, the bare paper as float). The
    visible ink reaches about a pixel beyond the core (the halo a ground truth leaves out)."""
    rng = np.random.default_rng(seed)
    paper = 0.78 + 0.06 * smooth_random_field(shape, 40.0, rng) + 0.015 * rng.standard_normal(shape)
    strokes = Image.new("L", shape[::-1], 0)
    draw = ImageDraw.Draw(strokes)
    for _ in range(14):
        x, y = rng.integers(10, shape[1] - 40), rng.integers(10, shape[0] - 30)
        draw.line([(x, y), (x + rng.integers(8, 35), y + rng.integers(-4, 25))], fill=255, width=3)
    core = np.asarray(strokes) > 0
    # Ink spreads beyond the core a ground truth marks: the dark halo a scan shows around every stroke.
    coverage = np.clip(ndimage.gaussian_filter(core.astype(np.float32), 1.2) * 1.6, 0.0, 1.0)
    scan = np.clip(paper * (1.0 - 0.8 * coverage), 0.0, 1.0)
    return np.round(scan * 255).astype(np.uint8), core, paper.astype(np.float32)


def ground_truth_of(core: np.ndarray) -> np.ndarray:
    return np.where(core, 0, 255).astype(np.uint8)


def test_paper_from_a_pair_is_the_paper_without_a_ghost_of_the_ink() -> None:
    scan, core, paper = generated_page()
    page = paper_from_pair("generated:0", scan, ground_truth_of(core))

    under_ink = ndimage.binary_dilation(core, iterations=3)
    recovered = page.paper.astype(np.float32) / 255.0
    scanned = scan.astype(np.float32) / 255.0
    assert abs(float((recovered - paper)[under_ink].mean())) < 0.01, "the filled paper is neither darker nor lighter"
    assert float(np.abs(recovered - paper)[under_ink].mean()) < 0.035
    assert float((paper - scanned)[under_ink].mean()) > 0.15, "the scan itself is far darker there"
    far = ~ndimage.binary_dilation(core, iterations=12)
    assert np.array_equal(page.paper[far], scan[far]), "paper away from the ink is the scan as it is"
    assert page.ink_from == "ground_truth" and 0.5 < page.ink_absorption <= 0.9
    assert page.ink[core].mean() > 100 and page.ink[far].max() < 30, "the ink layer holds the strokes alone"


def test_paper_from_a_scan_without_ground_truth_estimates_the_ink() -> None:
    scan, core, paper = generated_page(seed=1)
    visible_ink = ndimage.binary_dilation(core)
    assert f_measure(estimate_ink(scan), visible_ink) > 80

    page = paper_from_scan("generated:1", scan)
    under_ink = ndimage.binary_dilation(core, iterations=3)
    recovered = page.paper.astype(np.float32) / 255.0
    assert abs(float((recovered - paper)[under_ink].mean())) < 0.015
    assert page.ink_from == "estimated"


def test_a_page_at_a_smaller_scale_keeps_its_ink_mask_and_paper() -> None:
    scan, core, _ = generated_page(seed=2, shape=(240, 320))
    page = paper_from_pair("generated:2", scan, ground_truth_of(core), scale=0.5)
    assert page.shape == (120, 160) and page.scale == 0.5
    assert page.ink.max() > 100, "thin strokes survive the reduction"


def test_a_pair_of_different_sizes_names_the_page() -> None:
    scan, core, _ = generated_page()
    with pytest.raises(PaperError, match=r"generated:odd: the scan is 260 x 180 px but its ground truth 259 x 180"):
        paper_from_pair("generated:odd", scan, ground_truth_of(core)[:, :-1])


def test_fill_holes_continues_a_gradient_smoothly() -> None:
    rows, columns = np.indices((64, 96), dtype=np.float32)
    ramp = 0.3 + 0.5 * columns / 95.0 + 0.1 * rows / 63.0
    holes = np.zeros(ramp.shape, bool)
    holes[20:40, 30:60] = True
    filled = fill_holes(np.where(holes, 0.0, ramp).astype(np.float32), holes)
    # A steep ramp (half the grey scale over 96 px): a normalised convolution leans toward the hole's middle.
    assert float(np.abs(filled - ramp)[holes].mean()) < 0.015
    assert float(np.abs(filled - ramp)[holes].max()) < 0.04
    assert np.array_equal(filled[~holes], ramp[~holes])


def test_cut_patch_mirrors_where_the_page_is_smaller() -> None:
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(cut_patch(image, 1, 1, 2, 2), image[1:3, 1:3])
    patch = cut_patch(image, 0, 0, 5, 9)
    assert patch.shape == (5, 9)
    assert np.array_equal(patch[:3, :4], image)
    assert np.array_equal(patch[3, :4], image[2]) and np.array_equal(patch[4, :4], image[1])
    assert np.array_equal(patch[0, 4:9], [3, 2, 1, 0, 0])


def test_remove_paper_leaves_ink_on_white() -> None:
    rng = np.random.default_rng(3)
    shape = (48, 300)
    paper = 0.7 + 0.1 * np.linspace(0, 1, shape[1])[None, :] + 0.01 * rng.standard_normal(shape)
    ink = np.zeros(shape, bool)
    for x in range(20, 280, 24):
        ink[12:36, x : x + 3] = True
    line = np.round(np.clip(np.where(ink, 0.25, paper), 0, 1) * 255).astype(np.uint8)
    cleaned = remove_paper(line)
    assert (cleaned[~ndimage.binary_dilation(ink, iterations=2)] == 255).mean() > 0.97
    assert cleaned[ink].mean() < 110, "the ink stays dark: divided by the paper under it"


# -------------------------------------------------------------------------------------- real DIBCO pages


@requires_shared_data("dibco_2009_2011")
@pytest.mark.parametrize("stem", ["2009-H01", "2010-H05", "2011-HW8", "2011-PR6"])
def test_real_pages_give_paper_without_dark_ghosts(stem: str) -> None:
    scan = read_grayscale(DIBCO / "images" / f"{stem}.png")
    truth = read_grayscale(DIBCO / "gt" / f"{stem}_gt.png")
    ink = truth < 128
    page = paper_from_pair(f"dibco:{stem}", scan, truth)

    ring = ndimage.binary_dilation(ink, iterations=14) & ~ndimage.binary_dilation(ink, iterations=10)
    paper = page.paper.astype(np.float32)
    # Measured over the 36 pages: -2.3 to +7.4 grey levels; the scan itself is 9 to 100 levels darker on the ink.
    assert paper[ink].mean() - paper[ring].mean() > -3.0
    assert scan[ring].mean() - scan[ink].mean() > 8.0
    assert f_measure(estimate_ink(scan), ink) > 70, "without ground truth the ink is found as well"


@requires_shared_data("testaments_poilus_fr")
def test_real_lines_become_ink_on_white() -> None:
    lines = sorted((SHARED_DATA / "testaments_poilus_fr" / "lines").glob("*.png"))[:12]
    for path in lines:
        line = read_grayscale(Path(path))
        cleaned = remove_paper(line)
        assert cleaned.shape == line.shape
        assert (cleaned == 255).mean() > 0.6, f"{path.name}: the paper is white"
        darkest = cleaned <= np.percentile(cleaned, 2)
        assert cleaned[darkest].mean() < 150, f"{path.name}: the ink stays"
