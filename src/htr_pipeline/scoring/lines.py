"""Score every line: greedy readings and error rates against the ground truth, image fidelity against clean.

This is the one scoring loop: evaluation stores its per-line tables, validation during training summarises them
(:mod:`htr_pipeline.training.validation`). Each line can be scored three ways, the ``variants``: the degraded
input, the generator's restored output and the clean line, each read by the same recognizer. A table of per-line
counts (edits and reference lengths) is the only thing a summary is computed from, so corpus figures can always
be recomputed from the stored table.

Lines without text get no error rates (NaN) and no edit counts (NA); a variant that was not scored (no generator,
or not asked for) has every column empty (None / NaN / NA).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from htr_pipeline.charset import Charset
from htr_pipeline.data.line_batches import LineBatch
from htr_pipeline.metrics import character_error_rates, psnr_db, ssim, word_error_rates
from htr_pipeline.models.recognizer import ctc_time_steps
from htr_pipeline.precision import Precision, autocast
from htr_pipeline.restoring import restore_images

Reader = Callable[[torch.Tensor, torch.Tensor, int, Charset], list[str]]
"""(logits, widths, width_downsampling, charset) -> one reading per line."""

VARIANTS = ("degraded", "restored", "clean")
"""What the recognizer reads: the input, the generator's output, the clean line (the recognizer's own ceiling)."""

FIDELITY_VARIANTS = ("degraded", "restored")
"""The variants compared with the clean line (the clean line against itself needs no measuring)."""

EDIT_COUNT_DTYPE = "Int64"
"""Nullable integers: NA where a line has no text or the variant was not evaluated, never a fake 0."""

EDIT_KINDS = ("char_edits", "word_edits")


def greedy_readings(logits: torch.Tensor, widths: torch.Tensor, width_downsampling: int, charset: Charset) -> list[str]:
    """Best-path decoding of each line over its own time steps (padding excluded)."""
    # logits: (batch, time_steps, num_classes)
    best_paths = logits.argmax(dim=-1).cpu()
    return [
        charset.decode_greedy(best_paths[i, : ctc_time_steps(int(width), width_downsampling)].tolist())
        for i, width in enumerate(widths.cpu())
    ]


@dataclass(frozen=True)
class RecognizerReading:
    recognizer: nn.Module
    reads_restored: bool
    """False: the recognizer reads only degraded and clean lines (its table has no restored columns)."""


@torch.no_grad()
def score_line_tables(
    batches: Iterable[LineBatch],
    generator: nn.Module | None,
    readers: Mapping[str, RecognizerReading],
    charset: Charset,
    device: torch.device,
    precision: Precision = "fp32",
    read: Reader = greedy_readings,
    variants: Sequence[str] = VARIANTS,
) -> dict[str, pd.DataFrame]:
    """One table per recognizer, one row per line in input order, with the columns of :data:`COLUMNS`.

    Only ``variants`` are read and scored; ``restored`` needs a generator. Each batch is loaded, restored and
    compared with its clean lines once, whatever the number of recognizers reading it. ``read`` turns logits
    into text (greedy best path by default; see ``evaluation.decoding``). Models are put in eval mode for the
    scoring and given back in the mode they came in.
    """
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown line variants {sorted(unknown)}; expected some of {VARIANTS}")
    models = [model for model in (generator, *(reader.recognizer for reader in readers.values())) if model is not None]
    modes = [model.training for model in models]
    for model in models:
        model.eval()
    try:
        rows: dict[str, list[dict]] = {name: [] for name in readers}
        for batch in batches:
            scored = _score_batch(batch, generator, readers, charset, device, precision, read, variants)
            for name, batch_rows in scored.items():
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
    precision: Precision,
    read: Reader,
    variants: Sequence[str],
) -> dict[str, list[dict]]:
    on_host, batch = batch, batch.to(device)
    # images: (batch, 1, height, padded_width), values in [0, 1]
    images = {variant: getattr(batch, variant) for variant in ("degraded", "clean") if variant in variants}
    if generator is not None and "restored" in variants and any(reader.reads_restored for reader in readers.values()):
        images["restored"] = restore_images(generator, batch.degraded, precision)
    # The input lines are compared as the host has them: only the restored ones come back from the device.
    compared = {
        **images,
        **{variant: getattr(on_host, variant) for variant in ("degraded", "clean") if variant in images},
    }
    fidelity = _image_fidelity(on_host.clean, compared, on_host.host_widths.tolist())
    return {
        name: _reader_rows(batch, images, fidelity, reader, charset, device, precision, read)
        for name, reader in readers.items()
    }


def _image_fidelity(clean: torch.Tensor, images: Mapping[str, torch.Tensor], widths: list[int]) -> list[dict]:
    """PSNR and SSIM of the degraded and restored lines against clean, each cropped to its own width."""
    clean_images = clean.float().cpu().numpy()
    arrays = {variant: images[variant].float().cpu().numpy() for variant in FIDELITY_VARIANTS if variant in images}
    scores = []
    for index, width in enumerate(widths):
        clean_line = clean_images[index, 0, :, :width]
        line_scores = {}
        for variant in FIDELITY_VARIANTS:
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
    precision: Precision,
    read: Reader,
) -> list[dict]:
    readings = {}
    for variant, variant_images in images.items():
        if variant == "restored" and not reader.reads_restored:
            continue
        with autocast(device, precision):
            logits = reader.recognizer(variant_images.float()).logits
        readings[variant] = read(logits.float(), batch.host_widths, reader.recognizer.width_downsampling, charset)

    rows = []
    for index, width in enumerate(batch.host_widths.tolist()):
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
        if not reader.reads_restored:
            line_fidelity = {**line_fidelity, "psnr_db_restored": np.nan, "ssim_restored": np.nan}
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
    "psnr_db_restored",
    "ssim_degraded",
    "ssim_restored",
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
            **{f"{metric}_{variant}": "float64" for metric in ("psnr_db", "ssim") for variant in FIDELITY_VARIANTS},
        }
    )
    for variant in VARIANTS:
        table[f"reading_{variant}"] = table[f"reading_{variant}"].astype(object)
    return table
