"""DIBCO binarisation scores (F-measure, pseudo-F-measure, PSNR, DRD) and the Otsu / Sauvola baselines."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from PIL import Image
from skimage.color import rgb2gray

from htr_pipeline.metrics import (
    MAX_PSNR_DB,
    binarise,
    binary_psnr_db,
    count_non_uniform_blocks,
    dibco_scores,
    drd,
    f_measure,
    pseudo_f_measure,
)
from tests.conftest import SHARED_DATA, requires_shared_data

DIBCO = SHARED_DATA / "dibco_2009_2011"

# The 5 x 5 DRD weights before normalisation, written out by hand: 1 / distance to the centre, centre 0.
R2, R5, R8 = 1 / math.sqrt(2), 1 / math.sqrt(5), 1 / math.sqrt(8)
RAW_DRD_WEIGHTS = np.array(
    [
        [R8, R5, 1 / 2, R5, R8],
        [R5, R2, 1.0, R2, R5],
        [1 / 2, 1.0, 0.0, 1.0, 1 / 2],
        [R5, R2, 1.0, R2, R5],
        [R8, R5, 1 / 2, R5, R8],
    ]
)
RAW_DRD_WEIGHT_SUM = 4 * 1.0 + 4 * R2 + 4 * (1 / 2) + 8 * R5 + 4 * R8


@pytest.fixture
def stroke_truth() -> np.ndarray:
    """16 x 24 ground truth: a 4 x 12 stroke across the two left block columns and one solid ink 8 x 8 block.

    Of its six 8 x 8 blocks, the four the stroke crosses hold ink and background (non-uniform); the top-right block
    is all background and the bottom-right all ink, so NUBN = 4.
    """
    truth = np.zeros((16, 24), dtype=bool)
    truth[6:10, 2:14] = True  # 48 stroke pixels
    truth[8:16, 16:24] = True  # 64 pixels, exactly one block
    return truth


def test_a_perfect_result_scores_perfectly(stroke_truth: np.ndarray) -> None:
    scores = dibco_scores(stroke_truth.copy(), stroke_truth)

    assert scores == {"f_measure": 100.0, "pseudo_f_measure": 100.0, "psnr_db": MAX_PSNR_DB, "drd": 0.0}


def test_f_measure_counts_extra_and_missing_ink(stroke_truth: np.ndarray) -> None:
    result = stroke_truth.copy()
    result[6, 2:6] = False  # 4 stroke pixels missed
    result[0, 0] = result[14, 4] = True  # 2 background pixels taken for ink
    true_ink, false_ink, missed_ink = 112 - 4, 2, 4
    precision = true_ink / (true_ink + false_ink)
    recall = true_ink / (true_ink + missed_ink)

    assert f_measure(result, stroke_truth) == pytest.approx(100 * 2 * precision * recall / (precision + recall))


def test_drd_of_one_flipped_pixel_is_its_weighted_disagreement_over_nubn(stroke_truth: np.ndarray) -> None:
    result = stroke_truth.copy()
    result[5, 7] = True  # background pixel just above the stroke, taken for ink
    # Its 5 x 5 neighbourhood (rows 3-7, columns 5-9) is background in rows 3-5 and stroke in rows 6-7, so the
    # new ink pixel disagrees with the top three rows of the window.
    distortion = RAW_DRD_WEIGHTS[:3, :].sum() / RAW_DRD_WEIGHT_SUM

    assert count_non_uniform_blocks(stroke_truth) == 4
    assert drd(result, stroke_truth) == pytest.approx(distortion / 4)


def test_drd_leaves_neighbours_outside_the_page_out(stroke_truth: np.ndarray) -> None:
    result = stroke_truth.copy()
    result[0, 0] = True  # corner: only the lower-right 3 x 3 of the window is on the page, all background
    distortion = RAW_DRD_WEIGHTS[2:, 2:].sum() / RAW_DRD_WEIGHT_SUM

    assert drd(result, stroke_truth) == pytest.approx(distortion / 4)


def test_nubn_judges_partial_edge_blocks_on_their_own_pixels() -> None:
    truth = np.zeros((10, 10), dtype=bool)
    truth[8:, :] = True  # the bottom partial blocks (2 rows) are all ink: uniform
    truth[0, 9] = True  # the top-right partial block (8 x 2) holds ink and background

    assert count_non_uniform_blocks(truth) == 1


def test_pseudo_f_forgives_thinned_strokes_that_keep_the_skeleton() -> None:
    truth = np.zeros((17, 24), dtype=bool)
    truth[6:11, 2:22] = True  # a stroke 5 px thick and 20 px long; its skeleton lies in rows 7-8
    thinned = truth.copy()
    thinned[[6, 10], :] = False  # top and bottom edge rows of the stroke missed: 60 of 100 ink pixels kept
    precision, recall = 1.0, 0.6

    assert f_measure(thinned, truth) == pytest.approx(100 * 2 * precision * recall / (precision + recall))  # 75
    assert pseudo_f_measure(thinned, truth) == pytest.approx(100.0)


def test_binary_psnr_is_the_fraction_of_flipped_pixels_in_db(stroke_truth: np.ndarray) -> None:
    result = stroke_truth.copy()
    result[0, :6] = True  # 6 of 384 pixels flipped

    assert binary_psnr_db(result, stroke_truth) == pytest.approx(10 * math.log10(384 / 6))


def test_masks_of_different_shapes_are_refused_with_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(16, 24\) vs \(16, 23\)"):
        dibco_scores(np.zeros((16, 24), dtype=bool), np.zeros((16, 23), dtype=bool))


def test_a_ground_truth_that_is_not_a_bool_mask_is_refused() -> None:
    page = np.full((16, 24), 255, dtype=np.uint8)  # a DIBCO file as read: 0 = ink, 255 = background
    with pytest.raises(TypeError, match="bool mask"):
        f_measure(page == 0, page)


def test_drd_takes_well_under_a_second_on_a_full_page() -> None:
    rng = np.random.default_rng(0)
    truth = np.zeros((3000, 2000), dtype=bool)
    truth[::40] = truth[1::40] = True  # text lines two pixels thick
    result = truth ^ (rng.random(truth.shape) < 0.05)
    drd(result[:64, :64], truth[:64, :64])  # warm up imports and allocators

    started = time.perf_counter()
    drd(result, truth)
    assert time.perf_counter() - started < 1.5  # about 0.3 s on a loaded two-core machine; a pixel loop takes minutes


def test_binarise_marks_dark_pixels_as_ink_for_both_dtypes() -> None:
    page = np.full((40, 60), 0.9)
    page[10:30, 20:24] = 0.1
    for method in ("otsu", "sauvola"):
        ink = binarise(page, method, window_size=15)
        assert ink.dtype == np.bool_
        assert ink[10:30, 20:24].all() and not ink[:, :15].any(), method
        assert np.array_equal(binarise((page * 255).round().astype(np.uint8), method, window_size=15), ink), method


def test_binarise_finds_no_ink_on_a_blank_page() -> None:
    assert not binarise(np.full((20, 20), 200, dtype=np.uint8), "otsu").any()


def _dibco_pair(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The degraded page as grayscale in [0, 1] and its ground-truth ink mask (the files store 0 = ink)."""
    degraded = rgb2gray(np.asarray(Image.open(DIBCO / "images" / f"{name}.png").convert("RGB")))
    ink_truth = np.asarray(Image.open(DIBCO / "gt" / f"{name}_gt.png").convert("L")) == 0
    return degraded, ink_truth


@requires_shared_data("dibco_2009_2011")
def test_otsu_on_real_dibco_2009_h01_gives_a_plausible_f_measure() -> None:
    degraded, ink_truth = _dibco_pair("2009-H01")

    scores = dibco_scores(binarise(degraded, "otsu"), ink_truth)

    # Measured: F 90.85, pseudo-F 94.55, PSNR 19.26 dB, DRD 2.34.
    assert 60 < scores["f_measure"] < 100
    assert scores["f_measure"] < scores["pseudo_f_measure"] < 100
    assert 10 < scores["psnr_db"] < 40
    assert 0 < scores["drd"] < 20


@requires_shared_data("dibco_2009_2011")
def test_the_real_ground_truth_against_itself_scores_perfectly() -> None:
    _, ink_truth = _dibco_pair("2009-H01")

    assert dibco_scores(ink_truth.copy(), ink_truth) == {
        "f_measure": 100.0,
        "pseudo_f_measure": 100.0,
        "psnr_db": MAX_PSNR_DB,
        "drd": 0.0,
    }


@requires_shared_data("dibco_2009_2011")
def test_sauvola_on_real_dibco_2009_h01_runs() -> None:
    degraded, ink_truth = _dibco_pair("2009-H01")

    scores = dibco_scores(binarise(degraded, "sauvola"), ink_truth)

    # Measured with window 25, k 0.2: F 80.18, pseudo-F 91.44, PSNR 16.53 dB, DRD 4.74.
    assert 50 < scores["f_measure"] < 100
    assert 0 < scores["drd"] < 30
