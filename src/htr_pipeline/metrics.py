"""The one definition of every metric: CER and WER (jiwer), PSNR and SSIM (scikit-image), the combined score,
and the DIBCO binarisation scores (F-measure, pseudo-F-measure, PSNR, DRD) with the Otsu and Sauvola baselines.

Error rates are measured against the ground-truth transcription, never against another reading of the image (the
previous system compared the recognizer's reading of the restored image with its reading of the clean one). The
headline figure is corpus-level: total edit operations over total reference length, so a long line weighs more
than a short one; per-line rates and their mean are kept beside it for analysis.

Empty references: jiwer has no rate for a line whose reference is empty, so these lines are scored here.
- Per line: 0.0 when the hypothesis is empty too, else 1.0. The insertions are counted against a length floor of
  1 and the rate is capped at 1.0, so one spurious line cannot outweigh every other line in the per-line mean.
- Corpus: the line adds its insertions to the edits and 0 to the reference length; the corpus rate is
  edits / max(reference length, 1), so all-empty references give 0.0 without edits and never divide by zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import jiwer
import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu, threshold_sauvola
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.morphology import skeletonize

MAX_PSNR_DB = 100.0
"""PSNR of identical images (and the cap for nearly identical ones): a finite number that loggers, means and
plots accept, where the true value is infinite. 100 dB is an MSE of 1e-10 on [0, 1] images."""

SSIM_DEFAULT_WINDOW = 7
SSIM_MIN_WINDOW = 3

_CHARACTERS = jiwer.ReduceToListOfListOfChars()
"""Characters are compared exactly as given (spaces included, nothing stripped): a stray leading or trailing
space in a reading is a real error. Callers pass charset-normalised text."""
_WORDS = jiwer.wer_default
"""Words are split on runs of white space; leading and trailing space separate nothing."""


@dataclass(frozen=True)
class ErrorRates:
    """Error rates of a set of lines, with the counts they come from."""

    corpus: float
    """Total edit operations / total reference length: the figure to report and to select models by."""
    mean_per_line: float
    """Mean of :attr:`per_line`: every line weighs the same, whatever its length."""
    per_line: list[float]
    edits: int
    """Substitutions + deletions + insertions over all lines."""
    reference_length: int
    """Reference characters (or words) over all lines."""


# -------------------------------------------------------------------------------------------- error rates


def character_error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> ErrorRates:
    """CER of each hypothesis against its ground-truth reference, per corpus and per line."""
    return _error_rates(references, hypotheses, _CHARACTERS, jiwer.process_characters)


def word_error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> ErrorRates:
    """WER of each hypothesis against its ground-truth reference, per corpus and per line."""
    return _error_rates(references, hypotheses, _WORDS, jiwer.process_words)


def _error_rates(
    references: Sequence[str],
    hypotheses: Sequence[str],
    to_units: jiwer.AbstractTransform | jiwer.Compose,
    process: Callable[..., jiwer.WordOutput | jiwer.CharacterOutput],
) -> ErrorRates:
    if isinstance(references, str) or isinstance(hypotheses, str):
        raise TypeError("references and hypotheses must be sequences of lines, not single strings")
    if len(references) != len(hypotheses):
        raise ValueError(f"got {len(references)} references but {len(hypotheses)} hypotheses")
    if not references:
        raise ValueError("no lines to score: an empty set has no error rate")

    reference_units = to_units(list(references))
    hypothesis_units = to_units(list(hypotheses))
    edits_per_line = [len(units) for units in hypothesis_units]  # empty references: every unit is an insertion
    scored = [index for index, units in enumerate(reference_units) if units]
    # Only lines with a non-empty reference reach jiwer: older releases raise on empty ones.
    if scored:
        output = process(
            [references[index] for index in scored],
            [hypotheses[index] for index in scored],
            reference_transform=to_units,
            hypothesis_transform=to_units,
        )
        for index, alignment in zip(scored, output.alignments, strict=True):
            edits_per_line[index] = _edit_count(alignment)

    reference_lengths = [len(units) for units in reference_units]
    per_line = [_line_rate(edits, length) for edits, length in zip(edits_per_line, reference_lengths, strict=True)]
    total_edits = sum(edits_per_line)
    total_length = sum(reference_lengths)
    return ErrorRates(
        corpus=corpus_rate(edits_per_line, reference_lengths),
        mean_per_line=sum(per_line) / len(per_line),
        per_line=per_line,
        edits=total_edits,
        reference_length=total_length,
    )


def corpus_rate(edits_per_line: Sequence[int], reference_lengths: Sequence[int]) -> float:
    """Total edits / total reference length of a set of lines (the length floored at 1, never a division by
    zero): the corpus error rate, from per-line counts such as a stored per-line table holds."""
    edits = np.asarray(edits_per_line, dtype=np.int64)
    lengths = np.asarray(reference_lengths, dtype=np.int64)
    if edits.shape != lengths.shape:
        raise ValueError(f"got {edits.size} edit counts but {lengths.size} reference lengths")
    if not edits.size:
        raise ValueError("no lines to score: an empty set has no error rate")
    return int(edits.sum()) / max(int(lengths.sum()), 1)


def mean_per_line(values: Sequence[float]) -> float:
    """The mean of per-line figures (PSNR, SSIM, a per-line CER): every line weighs the same."""
    line_values = np.asarray(values, dtype=np.float64)
    if not line_values.size:
        raise ValueError("no lines to average: an empty set has no mean")
    return float(np.mean(line_values))


def _edit_count(alignment: Sequence[jiwer.AlignmentChunk]) -> int:
    """Substitutions + deletions + insertions of one aligned line."""
    edits = 0
    for chunk in alignment:
        if chunk.type in ("substitute", "delete"):
            edits += chunk.ref_end_idx - chunk.ref_start_idx
        elif chunk.type == "insert":
            edits += chunk.hyp_end_idx - chunk.hyp_start_idx
    return edits


def _line_rate(edits: int, reference_length: int) -> float:
    if reference_length == 0:
        return min(float(edits), 1.0)
    return edits / reference_length


# ------------------------------------------------------------------------------------------- image fidelity


def psnr_db(clean: np.ndarray, candidate: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two same-shaped images with values in [0, 1]; at most MAX_PSNR_DB."""
    clean, candidate = _unit_images(clean, candidate)
    if np.array_equal(clean, candidate):
        return MAX_PSNR_DB
    return min(float(peak_signal_noise_ratio(clean, candidate, data_range=1.0)), MAX_PSNR_DB)


def ssim(clean: np.ndarray, candidate: np.ndarray) -> float:
    """Structural similarity of two grayscale images (height, width) with values in [0, 1]."""
    clean, candidate = _unit_images(clean, candidate)
    if clean.ndim != 2:
        raise ValueError(f"ssim expects grayscale images (height, width), got shape {clean.shape}")
    return float(structural_similarity(clean, candidate, data_range=1.0, win_size=_ssim_window(clean.shape)))


def _ssim_window(shape: tuple[int, ...]) -> int:
    # scikit-image needs an odd window no larger than the image; a tiny crop still gets a score from the largest
    # window that fits, rather than an exception, as long as a 3 x 3 neighbourhood exists.
    shortest_side = min(shape)
    if shortest_side < SSIM_MIN_WINDOW:
        raise ValueError(f"ssim needs images of at least {SSIM_MIN_WINDOW} px on each side, got shape {shape}")
    window = min(SSIM_DEFAULT_WINDOW, shortest_side)
    return window if window % 2 == 1 else window - 1


def _unit_images(clean: np.ndarray, candidate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    clean = np.asarray(clean, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if clean.shape != candidate.shape:
        raise ValueError(f"clean and candidate images differ in shape: {clean.shape} vs {candidate.shape}")
    for name, image in (("clean", clean), ("candidate", candidate)):
        if image.size == 0:
            raise ValueError(f"{name} image is empty")
        if not np.isfinite(image).all() or image.min() < 0.0 or image.max() > 1.0:
            raise ValueError(f"{name} image must hold finite values in [0, 1], got [{image.min()}, {image.max()}]")
    return clean, candidate


# ------------------------------------------------------------------------------------------ model selection


def combined_score(psnr_db: float, cer: float, cer_weight: float) -> float:
    """PSNR minus ``cer_weight`` times CER: one number where higher is better (the previous system used
    cer_weight 50)."""
    return psnr_db - cer_weight * cer


# ------------------------------------------------------------------------------- binarisation (DIBCO)
#
# Ink masks are (height, width) bool arrays, True = ink. The DIBCO ground truth files store 0 = ink and
# 255 = background, so a mask is made with ``np.asarray(Image.open(path).convert("L")) == 0``. The metrics refuse
# any other dtype: an unconverted 0/255 ground truth would be read with ink and background swapped.
#
# References: Gatos, Ntirogiannis, Pratikakis, "ICDAR 2009 Document Image Binarization Contest (DIBCO 2009)";
# Pratikakis, Gatos, Ntirogiannis, "H-DIBCO 2010" (ICFHR 2010), "ICDAR 2011 DIBCO", "ICDAR 2013 DIBCO";
# Ntirogiannis, Gatos, Pratikakis, "Performance evaluation methodology for historical document image
# binarization" (IEEE TIP 2013); Lu, Kot, Shi, "Distance-reciprocal distortion measure for binary document images"
# (IEEE Signal Processing Letters 2004).

SAUVOLA_DYNAMIC_RANGE = 0.5
"""Sauvola's R (the dynamic range of the standard deviation) for images in [0, 1]: 128 of 256 grey levels, the
value of the original paper. Passed explicitly because scikit-image derives R from the dtype, which would give
R = 1 for float images and R = 127.5 for uint8 ones, so the same page would binarise differently."""

DRD_BLOCK_SIZE = 8
"""Side of the blocks counted in NUBN (Lu, Kot, Shi 2004; DIBCO)."""


def _drd_weight_matrix(size: int = 5) -> np.ndarray:
    # W[i, j] = 1 / distance to the centre, centre 0, normalised to sum 1 (Lu, Kot, Shi 2004, m = 5).
    offsets = np.arange(size) - size // 2
    distances = np.hypot(offsets[:, None], offsets[None, :])
    reciprocal = np.divide(1.0, distances, out=np.zeros_like(distances), where=distances > 0)
    return reciprocal / reciprocal.sum()


DRD_WEIGHTS = _drd_weight_matrix()
"""The 5 x 5 normalised weight matrix of DRD: reciprocal distance to the centre pixel, centre 0, sum 1."""


def binarise(
    image: np.ndarray, method: Literal["otsu", "sauvola"], window_size: int = 25, k: float = 0.2
) -> np.ndarray:
    """Ink mask of a grayscale page: True where the pixel is at or below (darker than) the threshold of ``method``.

    ``image`` is (height, width), uint8 or float in [0, 1]; both are scaled to [0, 1] first, so the two dtypes
    give the same mask. ``otsu`` is one global threshold (scikit-image ``threshold_otsu``); ``sauvola`` is the
    local threshold mean * (1 + k * (std / R - 1)) over a ``window_size`` square window (``threshold_sauvola``,
    R = :data:`SAUVOLA_DYNAMIC_RANGE`); ``window_size`` and ``k`` only apply to Sauvola. A pixel at or below the
    threshold is ink, the complement of scikit-image's ``image > threshold`` foreground.
    """
    # image: (height, width), uint8 or float in [0, 1]
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"binarise expects a grayscale image (height, width), got shape {image.shape}")
    if image.size == 0:
        raise ValueError("binarise got an empty image")
    if image.dtype == np.uint8:
        gray = image.astype(np.float64) / 255.0
    elif np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all() or image.min() < 0.0 or image.max() > 1.0:
            raise ValueError(f"a float image must hold finite values in [0, 1], got [{image.min()}, {image.max()}]")
        gray = image.astype(np.float64)
    else:
        raise TypeError(f"binarise expects uint8 or float images in [0, 1], got dtype {image.dtype}")

    if method == "otsu":
        if np.all(gray == gray.flat[0]):
            # No contrast, so no ink: threshold_otsu returns the single grey value, which would mark all as ink.
            return np.zeros(gray.shape, dtype=bool)
        return gray <= threshold_otsu(gray)
    if method == "sauvola":
        if window_size < 3 or window_size % 2 == 0:
            raise ValueError(f"Sauvola window_size must be an odd integer >= 3, got {window_size}")
        return gray <= threshold_sauvola(gray, window_size=window_size, k=k, r=SAUVOLA_DYNAMIC_RANGE)
    raise ValueError(f"unknown binarisation method {method!r}; expected 'otsu' or 'sauvola'")


def f_measure(ink: np.ndarray, ink_truth: np.ndarray) -> float:
    """DIBCO F-measure in percent (0-100): 2 * precision * recall / (precision + recall) over ink pixels.

    precision = TP / (TP + FP), recall = TP / (TP + FN), where TP counts pixels that are ink in both masks, FP ink
    only in ``ink``, FN ink only in ``ink_truth`` (DIBCO 2009-2013). Two masks without any ink score 100; when
    precision or recall is undefined otherwise (no ink on one side) it counts as 0, so the score is 0.
    """
    ink, ink_truth = _ink_masks(ink, ink_truth)
    true_ink = int(np.count_nonzero(ink & ink_truth))
    return _f_percent(
        true_ink_of_result=true_ink,
        result_ink=int(np.count_nonzero(ink)),
        true_ink_of_truth=true_ink,
        truth_ink=int(np.count_nonzero(ink_truth)),
    )


def pseudo_f_measure(ink: np.ndarray, ink_truth: np.ndarray) -> float:
    """DIBCO pseudo-F-measure in percent (0-100): F with recall measured on the skeleton of the ground truth.

    pseudo-recall = |ink AND skeleton(ink_truth)| / |skeleton(ink_truth)|, with the skeleton from scikit-image's
    ``skeletonize``; precision is the plain precision of :func:`f_measure`. A result that keeps every stroke's
    centre line but thins the strokes keeps a pseudo-recall of 100, so this score forgives stroke-width errors that
    the plain F-measure charges.

    Definition chosen: the evaluation-tool variant introduced with H-DIBCO 2010 and used through DIBCO 2011
    (pseudo-recall from the ground-truth skeleton, plain precision). The 2013 definition of Ntirogiannis, Gatos and
    Pratikakis, used from DIBCO 2013 on, also weights recall and precision (by local stroke width and by distance to
    the ground-truth contour); that variant is not implemented, so scores compare with the 2010-2011 tables. The
    official tool thinned with MATLAB's ``bwmorph``, so its skeleton can differ from scikit-image's by a pixel here
    and there.
    """
    ink, ink_truth = _ink_masks(ink, ink_truth)
    skeleton = skeletonize(ink_truth)
    return _f_percent(
        true_ink_of_result=int(np.count_nonzero(ink & ink_truth)),
        result_ink=int(np.count_nonzero(ink)),
        true_ink_of_truth=int(np.count_nonzero(ink & skeleton)),
        truth_ink=int(np.count_nonzero(skeleton)),
    )


def drd(ink: np.ndarray, ink_truth: np.ndarray) -> float:
    """Distance-Reciprocal Distortion (Lu, Kot, Shi 2004) as used by DIBCO since 2011; 0 is perfect, lower is better.

    DRD = sum_k DRD_k / NUBN. For each pixel k where ``ink`` differs from ``ink_truth``,
    DRD_k = sum over its 5 x 5 neighbourhood of |truth(neighbour) - ink(k)| * W, with W = :data:`DRD_WEIGHTS`
    (reciprocal distance to the centre, centre 0, sum 1): a flipped pixel costs more the more of its near neighbours
    in the ground truth disagree with it. NUBN is the number of 8 x 8 blocks of the ground truth that are neither
    all ink nor all background.

    Conventions at the page edge (published tools differ here; both choices only touch the outermost pixels):
    neighbours outside the page contribute nothing (as if they agreed with the flipped pixel, as in the Doxa
    implementation), and the blocks are laid from the top-left corner with partial blocks at the right and bottom
    edges counted on the pixels they hold. Raises ValueError when pixels differ but NUBN is 0 (a ground truth with
    no ink edge inside any block), where DRD is undefined.
    """
    ink, ink_truth = _ink_masks(ink, ink_truth)
    flipped = ink != ink_truth
    if not flipped.any():
        return 0.0
    # DRD_k for every pixel at once: a pixel that became ink disagrees with its background neighbours in the ground
    # truth, one that became background with its ink neighbours. Zero padding leaves neighbours outside the page out.
    ink_neighbour_weight = ndimage.correlate(ink_truth.astype(np.float64), DRD_WEIGHTS, mode="constant", cval=0.0)
    background_neighbour_weight = ndimage.correlate(
        (~ink_truth).astype(np.float64), DRD_WEIGHTS, mode="constant", cval=0.0
    )
    total_distortion = float(
        background_neighbour_weight[flipped & ink].sum() + ink_neighbour_weight[flipped & ink_truth].sum()
    )

    non_uniform_blocks = count_non_uniform_blocks(ink_truth)
    if non_uniform_blocks == 0:
        raise ValueError(
            f"DRD is undefined: the ground truth of shape {ink_truth.shape} has no {DRD_BLOCK_SIZE} x "
            f"{DRD_BLOCK_SIZE} block holding both ink and background (NUBN = 0); score a page with text on it"
        )
    return total_distortion / non_uniform_blocks


def count_non_uniform_blocks(ink_truth: np.ndarray, block_size: int = DRD_BLOCK_SIZE) -> int:
    """NUBN of DRD: the number of ``block_size`` square blocks of a mask holding both ink and background.

    Blocks are laid from the top-left corner; partial blocks at the right and bottom edges count on their pixels.
    """
    # ink_truth: (height, width) bool
    height, width = ink_truth.shape
    padding = ((0, -height % block_size), (0, -width % block_size))
    # Padding with False to ask "any ink?" and with True to ask "all ink?" judges a partial block on its own pixels.
    has_ink = _blocks(np.pad(ink_truth, padding, constant_values=False), block_size).any(axis=(1, 3))
    all_ink = _blocks(np.pad(ink_truth, padding, constant_values=True), block_size).all(axis=(1, 3))
    return int(np.count_nonzero(has_ink & ~all_ink))


def binary_psnr_db(ink: np.ndarray, ink_truth: np.ndarray) -> float:
    """DIBCO PSNR in dB of two ink masks: 10 log10(C^2 / MSE) with C = 1, MSE the fraction of differing pixels.

    Computed by :func:`psnr_db` on the masks as 0/1 images, so identical masks score :data:`MAX_PSNR_DB`.
    """
    ink, ink_truth = _ink_masks(ink, ink_truth)
    return psnr_db(ink_truth.astype(np.float64), ink.astype(np.float64))


def dibco_scores(ink: np.ndarray, ink_truth: np.ndarray) -> dict[str, float]:
    """The four DIBCO scores of a binarisation: F-measure and pseudo-F-measure (%), PSNR (dB) and DRD."""
    ink, ink_truth = _ink_masks(ink, ink_truth)
    return {
        "f_measure": f_measure(ink, ink_truth),
        "pseudo_f_measure": pseudo_f_measure(ink, ink_truth),
        "psnr_db": binary_psnr_db(ink, ink_truth),
        "drd": drd(ink, ink_truth),
    }


def _f_percent(true_ink_of_result: int, result_ink: int, true_ink_of_truth: int, truth_ink: int) -> float:
    # precision = true_ink_of_result / result_ink; recall = true_ink_of_truth / truth_ink. The two true-ink counts
    # are the same for the F-measure and differ for the pseudo-F-measure, whose recall is taken on the skeleton.
    if result_ink == 0 and truth_ink == 0:
        return 100.0
    precision = true_ink_of_result / result_ink if result_ink else 0.0
    recall = true_ink_of_truth / truth_ink if truth_ink else 0.0
    if precision + recall == 0.0:
        return 0.0
    return float(100.0 * 2.0 * precision * recall / (precision + recall))


def _blocks(mask: np.ndarray, block_size: int) -> np.ndarray:
    # mask: (height, width), both multiples of block_size -> (block rows, block_size, block columns, block_size)
    height, width = mask.shape
    return mask.reshape(height // block_size, block_size, width // block_size, block_size)


def _ink_masks(ink: np.ndarray, ink_truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ink = np.asarray(ink)
    ink_truth = np.asarray(ink_truth)
    for name, mask in (("ink", ink), ("ink_truth", ink_truth)):
        if mask.dtype != np.bool_:
            raise TypeError(
                f"{name} must be a bool mask (True = ink), got dtype {mask.dtype}; "
                "convert a DIBCO ground truth (0 = ink, 255 = background) with `image == 0`"
            )
    if ink.shape != ink_truth.shape:
        raise ValueError(f"ink and ink_truth masks differ in shape: {ink.shape} vs {ink_truth.shape}")
    if ink.ndim != 2 or ink.size == 0:
        raise ValueError(f"ink masks must be non-empty (height, width) arrays, got shape {ink.shape}")
    return ink, ink_truth
