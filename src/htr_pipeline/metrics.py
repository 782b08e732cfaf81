"""The one definition of every metric: CER and WER (jiwer), PSNR and SSIM (scikit-image), the combined score.

Error rates are measured against the ground-truth transcription, never against another reading of the image (the
seed system compared the recognizer's reading of the enhanced image with its reading of the clean one). The
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

import jiwer
import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

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
        corpus=total_edits / max(total_length, 1),
        mean_per_line=sum(per_line) / len(per_line),
        per_line=per_line,
        edits=total_edits,
        reference_length=total_length,
    )


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
    """PSNR minus ``cer_weight`` times CER: one number where higher is better (the seed used cer_weight 50)."""
    return psnr_db - cer_weight * cer
