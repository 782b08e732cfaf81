"""The figures runs are compared by, computed from per-line tables, and their bootstrap intervals.

Every figure is recomputed from the stored per-line table of an evaluation (``evaluation_samples``) with the
definitions of :mod:`htr_pipeline.metrics`, as :mod:`htr_pipeline.evaluation.aggregates` does:

- an error rate is corpus-level, total edits / total reference length (lines without text add nothing to either),
  recomputed as a ratio on every resample, never averaged over lines;
- PSNR and SSIM are means over lines.

Intervals are percentile intervals of a bootstrap over lines: each resample draws as many lines as the table has,
with replacement. A **paired** difference between two runs uses the same drawn lines for both runs on every
resample, so it measures how much the difference moves with the choice of test lines, not how much each run
does on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from htr_pipeline.evaluation.aggregates import percentile_interval
from htr_pipeline.scoring.lines import VARIANTS

DEGRADED, RESTORED, CLEAN = VARIANTS
"""The line variants of a per-line table, by the names its columns use (:data:`htr_pipeline.scoring.lines.VARIANTS`
owns them): the input, the generator's output, the clean line."""


@dataclass(frozen=True)
class Statistic:
    """One number computed from the per-line table of one recognizer (a corpus rate or a mean over lines)."""

    name: str
    """Key in tables and JSON (``cer_restored``)."""
    label: str
    """Column heading (``CER restored``)."""
    column: str
    """The per-line column: edit counts for a rate, per-line values for a mean."""
    reference_length: str | None
    """For a corpus rate, the per-line reference length it is divided by; None for a mean over lines."""
    better: Literal["lower", "higher"]
    digits: int

    @property
    def is_rate(self) -> bool:
        return self.reference_length is not None


def error_rate(kind: Literal["cer", "wer"], variant: str) -> Statistic:
    """Corpus CER or WER of ``variant`` lines."""
    unit = "char" if kind == "cer" else "word"
    return Statistic(
        name=f"{kind}_{_person_name(variant)}",
        label=f"{kind.upper()} {_person_name(variant)}",
        column=f"{unit}_edits_{variant}",
        reference_length=f"{unit}_reference_length",
        better="lower",
        digits=4,
    )


def image_mean(kind: Literal["psnr_db", "ssim"], variant: str) -> Statistic:
    """Mean PSNR (dB) or SSIM of ``variant`` lines against the clean ones."""
    label = "PSNR (dB)" if kind == "psnr_db" else "SSIM"
    return Statistic(
        name=f"{kind}_{_person_name(variant)}",
        label=f"{label} {_person_name(variant)}",
        column=f"{kind}_{variant}",
        reference_length=None,
        better="higher",
        digits=2 if kind == "psnr_db" else 4,
    )


def _person_name(variant: str) -> str:
    """What a person reads for a variant: the generator's output is "restored" whatever the column says."""
    return "restored" if variant == RESTORED else variant


HEADLINE_FIGURES: tuple[Statistic, ...] = (
    error_rate("cer", RESTORED),
    error_rate("wer", RESTORED),
    image_mean("psnr_db", RESTORED),
    image_mean("ssim", RESTORED),
)
"""What a comparison puts side by side: the headline recognizer's CER and WER of restored lines, their PSNR and
SSIM against the clean lines."""

CER_RESTORED, WER_RESTORED, PSNR_RESTORED, SSIM_RESTORED = HEADLINE_FIGURES


class MissingFigureError(ValueError):
    """A per-line table has no values for a figure (no generator was evaluated, or no line has text)."""


def line_values(table: pd.DataFrame, figure: Statistic) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-line numerators (edits or values) and, for a rate, reference lengths; lines without text count 0 of
    each for a rate, so a resample of all lines gives the corpus rate of its lines with text."""
    if figure.is_rate:
        with_text = table["has_text"].astype(bool).to_numpy()
        if not with_text.any():
            raise MissingFigureError(f"{figure.label}: no line has a ground-truth text")
        edits = table[figure.column].astype("Float64")
        if edits[with_text].isna().any():
            raise MissingFigureError(f"{figure.label}: the table has no {figure.column} (was a generator evaluated?)")
        lengths = table[figure.reference_length].to_numpy(dtype=np.int64)
        return edits.fillna(0).to_numpy(dtype=np.float64) * with_text, np.where(with_text, lengths, 0)
    values = table[figure.column].to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        raise MissingFigureError(f"{figure.label}: the table has no {figure.column} (was a generator evaluated?)")
    return values, None


def figure_value(table: pd.DataFrame, figure: Statistic) -> float:
    """The figure over every line of ``table``."""
    values, lengths = line_values(table, figure)
    if lengths is None:
        return float(values.mean())
    return float(values.sum() / max(int(lengths.sum()), 1))


def resampled_values(table: pd.DataFrame, figure: Statistic, line_indices: np.ndarray) -> np.ndarray:
    """The figure on each resample; ``line_indices``: (resamples, lines) rows of ``table``."""
    values, lengths = line_values(table, figure)
    if lengths is None:
        return values[line_indices].mean(axis=1)
    return values[line_indices].sum(axis=1) / np.maximum(lengths[line_indices].sum(axis=1), 1)


def line_resamples(lines: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, lines) line indices drawn with replacement: one draw that every figure and run shares."""
    if lines < 1:
        raise ValueError("no lines to resample")
    return np.random.default_rng(seed).integers(0, lines, size=(resamples, lines))


@dataclass(frozen=True)
class Interval:
    estimate: float
    ci_low: float
    ci_high: float

    @property
    def excludes_zero(self) -> bool:
        return self.ci_low > 0.0 or self.ci_high < 0.0

    def as_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "ci_low": self.ci_low, "ci_high": self.ci_high}


def level_interval(table: pd.DataFrame, figure: Statistic, line_indices: np.ndarray, confidence: float) -> Interval:
    """The figure of one run with its bootstrap interval."""
    interval = percentile_interval(
        figure_value(table, figure), resampled_values(table, figure, line_indices), confidence
    )
    return Interval(**interval)


def paired_difference(
    tables: Sequence[pd.DataFrame],
    baseline_tables: Sequence[pd.DataFrame],
    figure: Statistic,
    line_indices: np.ndarray,
    confidence: float,
) -> Interval:
    """Mean of ``tables``' figure minus mean of ``baseline_tables``' (one table each for two runs; one per seed
    for two configurations), each resample on the same lines for every table. Rows of every table must be the
    same lines in the same order (:meth:`htr_pipeline.experiments.runs.ComparedRun.table`, once paired)."""
    estimate = np.mean([figure_value(table, figure) for table in tables]) - np.mean(
        [figure_value(table, figure) for table in baseline_tables]
    )
    resampled = np.mean([resampled_values(table, figure, line_indices) for table in tables], axis=0) - np.mean(
        [resampled_values(table, figure, line_indices) for table in baseline_tables], axis=0
    )
    return Interval(**percentile_interval(float(estimate), resampled, confidence))
