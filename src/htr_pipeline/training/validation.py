"""Validation: a summary of the per-line scoring of :mod:`htr_pipeline.scoring.lines`, the loop that evaluation
uses too, read on one variant of the valid lines (the restored, the degraded or the clean ones)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import pandas as pd
import torch

from htr_pipeline.charset import Charset
from htr_pipeline.data.line_batches import LineBatch
from htr_pipeline.metric_names import PAGE_SCORE, VALIDATION_SCORES, Monitor, validation_metric
from htr_pipeline.metrics import MAX_PSNR_DB, combined_score, corpus_rate, mean_per_line
from htr_pipeline.precision import Precision
from htr_pipeline.scoring.lines import RecognizerReading, score_line_tables

ValidatedLines = Literal["restored", "degraded", "clean"]


@dataclass(frozen=True)
class ValidationPages:
    """Real pages every validation scores besides the lines (``val/page_f_measure``), built above training by
    :mod:`htr_pipeline.evaluation.page_validation`."""

    names: tuple[str, ...]
    scans_f_measure: float
    """The scans' own mean F-measure (binarised as the restored pages are): the baseline, ``val_degraded``."""
    score: Callable[[torch.nn.Module], float]
    """A generator -> the mean F-measure of the pages it restores."""


@dataclass(frozen=True)
class ValidationMetrics:
    cer: float
    """Corpus-level: total character edits / total reference length, against the ground-truth text."""
    wer: float
    psnr_db: float
    ssim: float
    combined: float
    lines: int
    page_f_measure: float | None = None
    """Mean F-measure of the valid split's real pages (:mod:`htr_pipeline.evaluation.page_validation`); None where
    the run validates on none."""

    def as_logged(self, prefix: str) -> dict[str, float]:
        scores = {"cer": self.cer, "wer": self.wer, "psnr": self.psnr_db, "ssim": self.ssim, "combined": self.combined}
        logged = {validation_metric(score, prefix): scores[score] for score in VALIDATION_SCORES}
        if self.page_f_measure is not None:
            logged[validation_metric(PAGE_SCORE, prefix)] = self.page_f_measure
        return logged

    def value_of(self, monitor: Monitor) -> float:
        """The monitored value; NaN (never an improvement) for a page score the run does not have."""
        return self.as_logged("val").get(monitor, math.nan)


@torch.no_grad()
def score_lines(
    batches: Iterable[LineBatch],
    recognizer: torch.nn.Module,
    charset: Charset,
    device: torch.device,
    precision: Precision,
    cer_weight: float,
    restore: torch.nn.Module | None = None,
    read_clean: bool = False,
) -> ValidationMetrics:
    """Score ``restore(degraded)`` (or the degraded input itself, or the clean line) against clean and the text.

    PSNR and SSIM compare each line, cropped to its own width, with its clean image (data range 1.0); CER and
    WER compare the recognizer's greedy reading with the ground-truth transcription, corpus-level.
    """
    lines: ValidatedLines = "clean" if read_clean else "restored" if restore is not None else "degraded"
    readers = {"recognizer": RecognizerReading(recognizer, reads_restored=lines == "restored")}
    tables = score_line_tables(batches, restore, readers, charset, device, precision, variants=(lines,))
    return summarise_validation(tables["recognizer"], lines, cer_weight)


def summarise_validation(table: pd.DataFrame, lines: ValidatedLines, cer_weight: float) -> ValidationMetrics:
    """Corpus CER and WER over the lines with text, mean PSNR and SSIM over all lines, of the ``lines`` variant
    of a per-line table. A clean line compared with itself scores MAX_PSNR_DB and SSIM 1.0."""
    with_text = table[table["has_text"]]
    cer = corpus_rate(with_text[f"char_edits_{lines}"], with_text["char_reference_length"])
    wer = corpus_rate(with_text[f"word_edits_{lines}"], with_text["word_reference_length"])
    if lines == "clean":
        psnr, ssim = MAX_PSNR_DB, 1.0
    else:
        psnr, ssim = mean_per_line(table[f"psnr_db_{lines}"]), mean_per_line(table[f"ssim_{lines}"])
    return ValidationMetrics(
        cer=cer, wer=wer, psnr_db=psnr, ssim=ssim, combined=combined_score(psnr, cer, cer_weight), lines=len(table)
    )
