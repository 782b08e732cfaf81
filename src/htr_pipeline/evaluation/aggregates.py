"""The evaluation summary, computed only from the per-line table of :func:`.scoring.score_samples`, with the
definitions of :mod:`htr_pipeline.metrics` (corpus rate, mean per line).

Nothing here sees a model or an image: every figure is a sum or a mean of table columns, so anyone holding the
stored table can recompute the summary exactly (same seed, same numbers).

- Corpus error rates are total edits / total reference length over the lines with text; the mean per line is
  reported beside them.
- Gains (restored minus degraded) come with a paired bootstrap interval: lines are resampled with replacement,
  the same lines for both sides of the difference, and the interval is the percentile interval of the resampled
  gains. The CER reduction is recomputed as a corpus ratio on each resample, never averaged over lines.
- A figure that cannot exist is ``None`` rather than a made-up number: text metrics when no line has text,
  restored metrics when the table comes from the recognizer alone.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from htr_pipeline.metrics import corpus_rate, mean_per_line
from htr_pipeline.scoring.lines import VARIANTS


def has_restored(samples: pd.DataFrame) -> bool:
    """Whether a generator was evaluated (``False`` for a recognizer-only table)."""
    return bool(samples["reading_restored"].notna().any())


def summarise(samples: pd.DataFrame, resamples: int, seed: int, confidence: float = 0.95) -> dict[str, Any]:
    """Corpus and mean error rates, image means and bootstrap-backed gains; plain JSON types only."""
    if samples.empty:
        raise ValueError("no lines to summarise: the per-line table is empty")
    if resamples < 1:
        raise ValueError(f"bootstrap resamples must be at least 1, got {resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")

    restored = has_restored(samples)
    with_text = samples[samples["has_text"].astype(bool)]
    text_variants = [variant for variant in VARIANTS if variant != "restored" or restored] if len(with_text) else []
    rng = np.random.default_rng(seed)

    summary: dict[str, Any] = {
        "lines": len(samples),
        "lines_with_text": len(with_text),
        "generator_evaluated": restored,
        "bootstrap_resamples": resamples,
        "bootstrap_seed": seed,
        "confidence_level": confidence,
    }
    for variant in VARIANTS:
        rates = _error_rates(with_text, variant) if variant in text_variants else dict.fromkeys(_RATE_NAMES)
        summary.update({f"{name}_{variant}": value for name, value in rates.items()})

    summary["psnr_db_mean_degraded"] = mean_per_line(samples["psnr_db_degraded"])
    summary["psnr_db_mean_restored"] = mean_per_line(samples["psnr_db_restored"]) if restored else None
    summary["ssim_mean_degraded"] = mean_per_line(samples["ssim_degraded"])
    summary["ssim_mean_restored"] = mean_per_line(samples["ssim_restored"]) if restored else None

    if restored:
        # One set of line indices for both image gains, so they are paired with each other as well.
        line_indices = rng.integers(0, len(samples), size=(resamples, len(samples)))
        summary["psnr_gain_db"] = _mean_gain(samples, "psnr_db", line_indices, confidence)
        summary["ssim_gain"] = _mean_gain(samples, "ssim", line_indices, confidence)
    else:
        summary["psnr_gain_db"] = None
        summary["ssim_gain"] = None

    if "restored" in text_variants:
        text_indices = rng.integers(0, len(with_text), size=(resamples, len(with_text)))
        summary["cer_reduction"] = _cer_reduction(with_text, text_indices, confidence)
    else:
        summary["cer_reduction"] = None

    summary["cer_gap_closed"], summary["cer_gap_closed_note"] = _cer_gap_closed(summary, restored, len(with_text))
    return summary


_RATE_NAMES = ("cer_corpus", "cer_mean_per_line", "wer_corpus", "wer_mean_per_line")


def _error_rates(with_text: pd.DataFrame, variant: str) -> dict[str, float]:
    return {
        "cer_corpus": corpus_rate(with_text[f"char_edits_{variant}"], with_text["char_reference_length"]),
        "cer_mean_per_line": mean_per_line(with_text[f"cer_{variant}"]),
        "wer_corpus": corpus_rate(with_text[f"word_edits_{variant}"], with_text["word_reference_length"]),
        "wer_mean_per_line": mean_per_line(with_text[f"wer_{variant}"]),
    }


def percentile_interval(estimate: float, resampled: np.ndarray, confidence: float) -> dict[str, float]:
    """``estimate`` with the percentile interval of its bootstrap ``resampled`` values at ``confidence``."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(resampled, [tail, 1.0 - tail])
    return {"estimate": float(estimate), "ci_low": float(low), "ci_high": float(high)}


def _mean_gain(samples: pd.DataFrame, metric: str, line_indices: np.ndarray, confidence: float) -> dict[str, float]:
    # line_indices: (resamples, lines)
    gain_per_line = (samples[f"{metric}_restored"] - samples[f"{metric}_degraded"]).to_numpy(dtype=np.float64)
    return _mean_gain_interval(gain_per_line, line_indices, confidence)


def _mean_gain_interval(gain_per_item: np.ndarray, indices: np.ndarray, confidence: float) -> dict[str, float]:
    # gain_per_item: (items,); indices: (resamples, items)
    return percentile_interval(gain_per_item.mean(), gain_per_item[indices].mean(axis=1), confidence)


def _cer_reduction(with_text: pd.DataFrame, text_indices: np.ndarray, confidence: float) -> dict[str, float]:
    """Corpus CER degraded - restored; each resample is a corpus ratio over its own resampled lines."""
    return _corpus_reduction_interval(
        with_text["char_edits_degraded"].to_numpy(dtype=np.int64),
        with_text["char_edits_restored"].to_numpy(dtype=np.int64),
        with_text["char_reference_length"].to_numpy(dtype=np.int64),
        text_indices,
        confidence,
    )


def _corpus_reduction_interval(
    edits_before: np.ndarray,
    edits_after: np.ndarray,
    reference_lengths: np.ndarray,
    indices: np.ndarray,
    confidence: float,
) -> dict[str, float]:
    # edits_before, edits_after, reference_lengths: (lines,); indices: (resamples, lines)
    estimate = corpus_rate(edits_before, reference_lengths) - corpus_rate(edits_after, reference_lengths)
    resampled_lengths = np.maximum(reference_lengths[indices].sum(axis=1), 1)
    resampled_edit_reduction = edits_before[indices].sum(axis=1) - edits_after[indices].sum(axis=1)
    return percentile_interval(estimate, resampled_edit_reduction / resampled_lengths, confidence)


def paired_corpus_reduction(
    edits_before: np.ndarray,
    edits_after: np.ndarray,
    reference_lengths: np.ndarray,
    resamples: int,
    seed: int,
    confidence: float = 0.95,
) -> dict[str, float]:
    """Corpus error rate before minus after, with the paired bootstrap interval :func:`summarise` gives the CER
    reduction: lines resampled with replacement, the same lines on both sides, a corpus ratio per resample."""
    # edits_before, edits_after, reference_lengths: (lines,) integer counts
    lines = len(reference_lengths)
    indices = np.random.default_rng(seed).integers(0, lines, size=(resamples, lines))
    return _corpus_reduction_interval(
        np.asarray(edits_before, dtype=np.int64),
        np.asarray(edits_after, dtype=np.int64),
        np.asarray(reference_lengths, dtype=np.int64),
        indices,
        confidence,
    )


def paired_mean_gain(
    before: np.ndarray, after: np.ndarray, resamples: int, seed: int, confidence: float = 0.95
) -> dict[str, float]:
    """Mean of after - before over paired items (pages, lines), with its paired bootstrap percentile interval."""
    # before, after: (items,)
    gain = np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64)
    indices = np.random.default_rng(seed).integers(0, len(gain), size=(resamples, len(gain)))
    return _mean_gain_interval(gain, indices, confidence)


def _cer_gap_closed(summary: dict[str, Any], restored: bool, lines_with_text: int) -> tuple[float | None, str | None]:
    """Share of the CER gap between degraded and clean lines that the generator closes (1.0: reads like clean)."""
    if not lines_with_text:
        return None, "no line has a ground-truth text, so there is no CER to compare"
    if not restored:
        return None, "no generator was evaluated (recognizer-only table)"
    degraded, restored_cer, clean = (summary[f"cer_corpus_{variant}"] for variant in VARIANTS)
    gap = degraded - clean
    if gap <= 0 or math.isclose(gap, 0.0, abs_tol=1e-12):
        return None, (
            f"undefined: the recognizer reads degraded lines no worse than clean ones (corpus CER degraded "
            f"{degraded:.4f}, clean {clean:.4f}), so there is no gap to close"
        )
    return (degraded - restored_cer) / gap, None
