"""Score every line: greedy readings and error rates against the ground truth, image fidelity against clean.

Each line is scored three ways: the degraded input, the generator's enhanced output and the clean line, each read
by the same recognizer. A table of per-line counts (edits and reference lengths) is the only thing the summary is
computed from, so corpus figures can always be recomputed from the stored table.

Lines without text get no error rates (NaN) and no edit counts (NA); without a generator, every enhanced column
is empty (None / NaN / NA).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from htr_pipeline.charset import Charset
from htr_pipeline.data.line_batches import LineBatch
from htr_pipeline.metrics import character_error_rates, psnr_db, ssim, word_error_rates
from htr_pipeline.training.runtime import autocast
from htr_pipeline.training.validation import greedy_readings

Reader = Callable[[torch.Tensor, torch.Tensor, int, Charset], list[str]]

VARIANTS = ("degraded", "enhanced", "clean")
"""What the recognizer reads: the input, the generator's output, the clean line (the recognizer's own ceiling)."""

EDIT_COUNT_DTYPE = "Int64"
"""Nullable integers: NA where a line has no text or the variant was not evaluated, never a fake 0."""


@torch.no_grad()
def enhance_lines(
    batch: LineBatch, generator: nn.Module, device: torch.device, precision: str = "fp32"
) -> list[np.ndarray]:
    """The generator's output for each line of ``batch``, cropped to its own width: (height, width) in [0, 1].

    The generator runs in eval mode and is given back in the mode it came in.
    """
    training = generator.training
    generator.eval()
    try:
        enhanced = _enhance(batch.degraded.to(device), generator, device, precision).cpu().numpy()
    finally:
        generator.train(training)
    return [enhanced[index, 0, :, :width].copy() for index, width in enumerate(batch.widths.cpu().tolist())]


def _enhance(degraded: torch.Tensor, generator: nn.Module, device: torch.device, precision: str) -> torch.Tensor:
    # degraded: (batch, 1, height, padded_width), values in [0, 1]
    with autocast(device, precision):  # type: ignore[arg-type]
        enhanced = generator(degraded)
    # Half-precision outputs can round a hair outside [0, 1], which the image metrics reject.
    return enhanced.float().clamp(0.0, 1.0)


@torch.no_grad()
def score_samples(
    batches: Iterable[LineBatch],
    generator: nn.Module | None,
    recognizer: nn.Module,
    charset: Charset,
    device: torch.device,
    precision: str = "fp32",
    read: Reader = greedy_readings,
) -> pd.DataFrame:
    """One row per line, in input order; ``generator=None`` evaluates the recognizer alone (no enhanced columns).

    ``read`` turns the recognizer's logits into text (greedy best path by default; see ``decoding``).

    Models are put in eval mode for the scoring and given back in the mode they came in.
    """
    readers = {"recognizer": RecognizerReading(recognizer, reads_enhanced=True)}
    return score_samples_by_recognizer(batches, generator, readers, charset, device, precision, read)["recognizer"]


@dataclass(frozen=True)
class RecognizerReading:
    recognizer: nn.Module
    reads_enhanced: bool
    """False: the recognizer reads only degraded and clean lines (its table has no enhanced columns)."""


@torch.no_grad()
def score_samples_by_recognizer(
    batches: Iterable[LineBatch],
    generator: nn.Module | None,
    readers: Mapping[str, RecognizerReading],
    charset: Charset,
    device: torch.device,
    precision: str = "fp32",
    read: Reader = greedy_readings,
) -> dict[str, pd.DataFrame]:
    """One table per recognizer, as :func:`score_samples` makes it; each batch is loaded, enhanced and compared
    with its clean lines once, whatever the number of recognizers reading it."""
    models = [model for model in (generator, *(reader.recognizer for reader in readers.values())) if model is not None]
    modes = [model.training for model in models]
    for model in models:
        model.eval()
    try:
        rows: dict[str, list[dict]] = {name: [] for name in readers}
        for batch in batches:
            for name, batch_rows in _score_batch(batch, generator, readers, charset, device, precision, read).items():
                rows[name] += batch_rows
    finally:
        for model, training in zip(models, modes, strict=True):
            model.train(training)
    return {name: _as_table(name_rows) for name, name_rows in rows.items()}


def _score_batch(
    batch: LineBatch,
    generator: nn.Module | None,
    readers: Mapping[str, RecognizerReading],
    charset: Charset,
    device: torch.device,
    precision: str,
    read: Reader,
) -> dict[str, list[dict]]:
    batch = batch.to(device)
    # images: (batch, 1, height, padded_width), values in [0, 1]
    images = {"degraded": batch.degraded, "clean": batch.clean}
    if generator is not None and any(reader.reads_enhanced for reader in readers.values()):
        images["enhanced"] = _enhance(batch.degraded, generator, device, precision)
    arrays = {variant: variant_images.float().cpu().numpy() for variant, variant_images in images.items()}
    fidelity = _image_fidelity(arrays, batch.widths.cpu().tolist())
    return {
        name: _reader_rows(batch, images, fidelity, reader, charset, device, precision, read)
        for name, reader in readers.items()
    }


def _image_fidelity(arrays: Mapping[str, np.ndarray], widths: list[int]) -> list[dict]:
    """PSNR and SSIM of the degraded and enhanced lines against clean, each cropped to its own width."""
    scores = []
    for index, width in enumerate(widths):
        clean_line = arrays["clean"][index, 0, :, :width]
        line_scores = {}
        for variant in ("degraded", "enhanced"):
            if variant in arrays:
                candidate_line = arrays[variant][index, 0, :, :width]
                line_scores[f"psnr_db_{variant}"] = psnr_db(clean_line, candidate_line)
                line_scores[f"ssim_{variant}"] = ssim(clean_line, candidate_line)
            else:
                line_scores[f"psnr_db_{variant}"] = np.nan
                line_scores[f"ssim_{variant}"] = np.nan
        scores.append(line_scores)
    return scores


def _reader_rows(
    batch: LineBatch,
    images: Mapping[str, torch.Tensor],
    fidelity: list[dict],
    reader: RecognizerReading,
    charset: Charset,
    device: torch.device,
    precision: str,
    read: Reader,
) -> list[dict]:
    readings = {}
    for variant, variant_images in images.items():
        if variant == "enhanced" and not reader.reads_enhanced:
            continue
        with autocast(device, precision):  # type: ignore[arg-type]
            logits = reader.recognizer(variant_images.float()).logits
        readings[variant] = read(logits.float(), batch.widths, reader.recognizer.width_downsampling, charset)

    rows = []
    for index, width in enumerate(batch.widths.cpu().tolist()):
        reference = batch.texts[index] or ""
        row: dict = {
            "sample_id": batch.sample_ids[index],
            "reference": reference,
            "has_text": bool(reference),
            "width": int(width),
        }
        for variant in VARIANTS:
            row[f"reading_{variant}"] = readings[variant][index] if variant in readings else None
        row.update(_line_error_rates(reference, {variant: row[f"reading_{variant}"] for variant in VARIANTS}))
        line_fidelity = fidelity[index]
        if not reader.reads_enhanced:
            line_fidelity = {**line_fidelity, "psnr_db_enhanced": np.nan, "ssim_enhanced": np.nan}
        row.update(line_fidelity)
        rows.append(row)
    return rows


def _line_error_rates(reference: str, readings: dict[str, str | None]) -> dict:
    """Per-line CER/WER and their counts, from the metrics module (the one definition of edit distance)."""
    scores: dict = {
        "char_reference_length": 0,
        "word_reference_length": 0,
    }
    for variant, reading in readings.items():
        scored = bool(reference) and reading is not None
        characters = character_error_rates([reference], [reading]) if scored else None
        words = word_error_rates([reference], [reading]) if scored else None
        scores[f"cer_{variant}"] = characters.corpus if characters else np.nan
        scores[f"wer_{variant}"] = words.corpus if words else np.nan
        scores[f"char_edits_{variant}"] = characters.edits if characters else pd.NA
        scores[f"word_edits_{variant}"] = words.edits if words else pd.NA
        if characters and words:
            scores["char_reference_length"] = characters.reference_length
            scores["word_reference_length"] = words.reference_length
    return scores


EDIT_KINDS = ("char_edits", "word_edits")

COLUMNS = [
    "sample_id",
    "reference",
    "has_text",
    "width",
    *(f"reading_{variant}" for variant in VARIANTS),
    *(f"{rate}_{variant}" for variant in VARIANTS for rate in ("cer", "wer")),
    *(f"{edits}_{variant}" for variant in VARIANTS for edits in EDIT_KINDS),
    "char_reference_length",
    "word_reference_length",
    "psnr_db_degraded",
    "psnr_db_enhanced",
    "ssim_degraded",
    "ssim_enhanced",
]


def _as_table(rows: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=COLUMNS)
    table = table.astype(
        {
            "sample_id": str,
            "reference": str,
            "has_text": bool,
            "width": "int64",
            "char_reference_length": "int64",
            "word_reference_length": "int64",
            **{f"{rate}_{variant}": "float64" for variant in VARIANTS for rate in ("cer", "wer")},
            **{f"{edits}_{variant}": EDIT_COUNT_DTYPE for variant in VARIANTS for edits in EDIT_KINDS},
            **{
                f"{metric}_{variant}": "float64"
                for metric in ("psnr_db", "ssim")
                for variant in ("degraded", "enhanced")
            },
        }
    )
    for variant in VARIANTS:
        table[f"reading_{variant}"] = table[f"reading_{variant}"].astype(object)
    return table
