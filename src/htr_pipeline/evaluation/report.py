"""Figures and the markdown report of an evaluation, made from the per-line table and the summary.

Figures are built on matplotlib's Agg canvas directly (no pyplot, no global state), so they render the same in
a headless pipeline run as in a test.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from htr_pipeline.evaluation.aggregates import has_restored
from htr_pipeline.figure_axes import integer_axis, rate_axis
from htr_pipeline.training.recognizer_training import (
    DEGRADED_TRAINED_RECOGNIZER,
    IN_LOOP_RECOGNIZER,
    JUDGE_RECOGNIZER,
)

PLOTS_FILE = "evaluation_plots.png"
GALLERY_FILE = "evaluation_gallery.png"
WORST_LINES_IN_REPORT = 10
GALLERY_TEXT_CHARS = 100
"""Readings longer than this are cut (with an ellipsis) under the gallery images."""
REPORT_TEXT_CHARS = 80
RESTORED = "restored"
"""What every picture and report calls the generator's output (``restored`` in the data's column names)."""
NOTHING_READ = "∅ (nothing read)"

_DEGRADED_COLOUR = "tab:red"
_RESTORED_COLOUR = "tab:blue"
_CLEAN_COLOUR = "tab:green"


def _new_figure(width_in: float, height_in: float) -> Figure:
    figure = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _say_empty(axes: Any, message: str) -> None:
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes, color="grey")
    axes.set_xticks([])
    axes.set_yticks([])


# ------------------------------------------------------------------------------------------------ plots


def plot_evaluation(samples: pd.DataFrame) -> Figure:
    """CER distributions (degraded vs restored), per-line PSNR gain, and CER against reference length."""
    restored = has_restored(samples)
    with_text = samples[samples["has_text"].astype(bool)]
    # A recognizer-only table has no restored reading: the clean reading is the other side of the comparison.
    compared, compared_label = ("restored", RESTORED) if restored else ("clean", "clean")
    compared_colour = _RESTORED_COLOUR if restored else _CLEAN_COLOUR
    figure = _new_figure(16, 4.5)
    cer_axes, psnr_axes, length_axes = figure.subplots(1, 3)

    cer_axes.set_title(f"Per-line CER: degraded vs {compared_label}")
    if with_text.empty:
        _say_empty(cer_axes, "no text: no CER")
    else:
        cer_degraded = with_text["cer_degraded"].to_numpy(dtype=np.float64)
        cer_compared = with_text[f"cer_{compared}"].to_numpy(dtype=np.float64)
        bins = np.linspace(0.0, max(1.0, float(np.nanmax([cer_degraded.max(), cer_compared.max()]))), 26)
        # Side by side, not overlapping: a line's two bars keep their own colours, as in the legend.
        cer_axes.hist(
            [cer_degraded, cer_compared],
            bins=bins,
            color=[_DEGRADED_COLOUR, compared_colour],
            label=["degraded", compared_label],
        )
        cer_axes.set_xlabel("CER of the line")
        cer_axes.set_ylabel("lines")
        integer_axis(cer_axes, "y")
        cer_axes.legend()

    psnr_axes.set_title(f"Per-line PSNR gain ({RESTORED} - degraded)")
    if restored:
        gains_db = (samples["psnr_db_restored"] - samples["psnr_db_degraded"]).to_numpy(dtype=np.float64)
        psnr_axes.hist(gains_db, bins=25, color=_RESTORED_COLOUR)
        psnr_axes.axvline(0.0, color="black", linewidth=1)
        psnr_axes.set_xlabel("PSNR gain (dB)")
        psnr_axes.set_ylabel("lines")
        integer_axis(psnr_axes, "y")
    else:
        _say_empty(psnr_axes, "no generator: no restored image")

    length_axes.set_title("CER against reference length")
    if with_text.empty:
        _say_empty(length_axes, "no text: no CER")
    else:
        lengths = with_text["char_reference_length"].to_numpy(dtype=np.int64)
        length_axes.scatter(
            lengths,
            with_text["cer_degraded"],
            s=28,
            marker="o",
            facecolors="none",
            color=_DEGRADED_COLOUR,
            label="degraded",
        )
        length_axes.scatter(
            lengths, with_text[f"cer_{compared}"], s=28, marker="x", color=compared_colour, label=compared_label
        )
        length_axes.set_xlabel("reference length (characters)")
        length_axes.set_ylabel("CER of the line")
        rate_axis(length_axes, [*with_text["cer_degraded"], *with_text[f"cer_{compared}"]])
        length_axes.legend()
    return figure


# ---------------------------------------------------------------------------------------------- gallery


def worst_lines(samples: pd.DataFrame, k: int) -> pd.DataFrame:
    """The ``k`` lines with text and the highest restored CER (clean CER without a generator); ties: longer first."""
    cer_column = "cer_restored" if has_restored(samples) else "cer_clean"
    with_text = samples[samples["has_text"].astype(bool)]
    ranked = with_text.sort_values([cer_column, "char_reference_length"], ascending=[False, False], kind="stable")
    return ranked.head(k)


def _truncate(text: str | None, limit: int) -> str:
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return "-"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reading(text: str | None, limit: int) -> str:
    """A recognizer's reading as shown: an empty one says so, instead of showing nothing at all."""
    return NOTHING_READ if text == "" else _truncate(text, limit)


def failure_gallery(rows: pd.DataFrame, images: Sequence[tuple[np.ndarray, np.ndarray | None, np.ndarray]]) -> Figure:
    """One block per line: degraded | restored | clean images, then the reference and the three readings.

    ``images[i]`` belongs to ``rows.iloc[i]``: (degraded, restored, clean), each (height, width) in [0, 1]; the
    restored image is ``None`` for a recognizer-only evaluation.
    """
    if len(rows) != len(images):
        raise ValueError(f"gallery got {len(rows)} rows but {len(images)} image triples")
    if rows.empty:
        figure = _new_figure(8, 2)
        _say_empty(figure.subplots(), "no lines with text to show")
        return figure

    figure = _new_figure(16, 2.1 * len(rows))
    grid = figure.add_gridspec(2 * len(rows), 3, height_ratios=[1.3, 0.85] * len(rows))
    for position, ((_, row), triple) in enumerate(zip(rows.iterrows(), images, strict=True)):
        for column, (variant, image) in enumerate(zip(("degraded", "restored", "clean"), triple, strict=True)):
            shown = RESTORED if variant == "restored" else variant
            axes = figure.add_subplot(grid[2 * position, column])
            if image is None:
                _say_empty(axes, f"no {shown} image")
            else:
                axes.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, aspect="equal")
                axes.set_xticks([])
                axes.set_yticks([])
            cer = row.get(f"cer_{variant}")
            cer_text = "" if cer is None or pd.isna(cer) else f"  CER {cer:.3f}"
            axes.set_title(f"{shown}{cer_text}", fontsize=11)
        text_axes = figure.add_subplot(grid[2 * position + 1, :])
        text_axes.axis("off")
        caption = "\n".join(
            [f"{'line':<10}{row['sample_id']}", f"{'reference':<10}{_truncate(row['reference'], GALLERY_TEXT_CHARS)}"]
            + [
                f"{label:<10}{_reading(row[f'reading_{variant}'], GALLERY_TEXT_CHARS)}"
                for label, variant in (("degraded", "degraded"), (RESTORED, "restored"), ("clean", "clean"))
            ]
        )
        text_axes.text(0.0, 1.0, caption, family="monospace", fontsize=11, va="top", transform=text_axes.transAxes)
    return figure


# ----------------------------------------------------------------------------------------------- report


def _number(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _gain(gain: dict[str, float] | None, digits: int = 4) -> str:
    if gain is None:
        return "n/a"
    return f"{gain['estimate']:.{digits}f} [{gain['ci_low']:.{digits}f}, {gain['ci_high']:.{digits}f}]"


def _cell(text: str | None) -> str:
    """Text safe inside a markdown table cell."""
    return _truncate(text, REPORT_TEXT_CHARS).replace("|", "\\|").replace("`", "'") or " "


RECOGNIZER_ROLES = {
    IN_LOOP_RECOGNIZER: (
        "the in-loop recognizer: the generator was trained through it (its CTC and feature losses), so it may have "
        "learnt to please it"
    ),
    JUDGE_RECOGNIZER: (
        "the judge: trained apart on the clean train lines, with its own seed and architecture; no GAN loss ever saw it"
    ),
    DEGRADED_TRAINED_RECOGNIZER: (
        "the degraded-trained baseline: the in-loop architecture trained on the degraded train lines, reading the "
        "degraded test lines without any restoration"
    ),
}


def markdown_report(summary: dict[str, Any], samples: pd.DataFrame, checkpoint_description: str) -> str:
    """A readable report: what was evaluated, error rates by each recognizer, image fidelity, gains with
    intervals, worst lines (of the headline recognizer)."""
    headline = summary["headline_recognizer"]
    figures = summary[headline]
    confidence_pct = f"{100 * figures['confidence_level']:g}%"
    mode = "generator + recognizer" if figures["generator_evaluated"] else "recognizer only (no generator)"
    lines = [
        "# Evaluation report",
        "",
        f"- Checkpoint: {checkpoint_description}",
        f"- Evaluated: {mode}",
        f"- Lines: {figures['lines']} ({figures['lines_with_text']} with a ground-truth text)",
        "- CER and WER are measured against the ground-truth text. Corpus figures are total edits / total "
        "reference length over the lines with text; the per-line mean weighs every line the same.",
        f"- Headline figures are read by **{headline}**. Recognizers:",
        *(f"  - `{name}`: {RECOGNIZER_ROLES[name]}." for name in summary["recognizers"]),
    ]
    if headline != JUDGE_RECOGNIZER:
        lines.append(
            "- **No judge recognizer** (training.judge was null, or the checkpoint predates it): the CER gain below "
            "is read by the recognizer the generator was trained to please, and cannot stand on its own."
        )
    for name in summary["recognizers"]:
        lines += _readability_section(name, summary[name], confidence_pct)
    lines += [
        "## Image fidelity (against the clean line)",
        "",
        "| image | mean PSNR (dB) | mean SSIM |",
        "|---|---|---|",
        f"| degraded | {_number(figures['psnr_db_mean_degraded'], 2)} | {_number(figures['ssim_mean_degraded'])} |",
        f"| {RESTORED} | {_number(figures['psnr_db_mean_restored'], 2)} | {_number(figures['ssim_mean_restored'])} |",
        "",
        f"- PSNR gain (dB): {_gain(figures['psnr_gain_db'], 2)}",
        f"- SSIM gain: {_gain(figures['ssim_gain'])}",
        f"- ({confidence_pct} paired bootstrap intervals, {figures['bootstrap_resamples']} resamples, seed "
        f"{figures['bootstrap_seed']})",
        "",
        "## Plots (headline recognizer)",
        "",
        f"![CER and PSNR distributions]({PLOTS_FILE})",
        "",
        f"![Worst lines: degraded, {RESTORED}, clean]({GALLERY_FILE})",
        "",
    ]
    lines += _worst_lines_table(samples)
    return "\n".join(lines) + "\n"


def _readability_section(name: str, figures: dict[str, Any], confidence_pct: str) -> list[str]:
    variants = ("degraded", "clean") if name == DEGRADED_TRAINED_RECOGNIZER else ("degraded", "restored", "clean")
    lines = [
        "",
        f"## Readability by `{name}`",
        "",
        "| input read | corpus CER | mean per-line CER | corpus WER | mean per-line WER |",
        "|---|---|---|---|---|",
    ]
    for variant in variants:
        lines.append(
            f"| {RESTORED if variant == 'restored' else variant} | {_number(figures[f'cer_corpus_{variant}'])} "
            f"| {_number(figures[f'cer_mean_per_line_{variant}'])} "
            f"| {_number(figures[f'wer_corpus_{variant}'])} "
            f"| {_number(figures[f'wer_mean_per_line_{variant}'])} |"
        )
    if name != DEGRADED_TRAINED_RECOGNIZER:
        lines += [
            "",
            f"- Corpus CER reduction (degraded - {RESTORED}, {confidence_pct} paired bootstrap interval): "
            f"{_gain(figures['cer_reduction'])}",
            f"- Share of the degraded-to-clean CER gap closed: {_number(figures['cer_gap_closed'], 3)}"
            + (f" ({figures['cer_gap_closed_note']})" if figures["cer_gap_closed_note"] else ""),
        ]
    return [*lines, ""]


def _worst_lines_table(samples: pd.DataFrame) -> list[str]:
    restored = has_restored(samples)
    reading, cer = ("restored", "cer_restored") if restored else ("clean", "cer_clean")
    shown = RESTORED if restored else "clean"
    worst = worst_lines(samples, WORST_LINES_IN_REPORT)
    header = f"## The {WORST_LINES_IN_REPORT} worst lines (highest {shown} CER)"
    if worst.empty:
        return [header, "", "No line has a ground-truth text.", ""]
    table = [header, "", f"| sample | reference | {shown} reading | CER |", "|---|---|---|---|"]
    for _, row in worst.iterrows():
        table.append(
            f"| {_cell(row['sample_id'])} | {_cell(row['reference'])} | {_cell(row[f'reading_{reading}'])} "
            f"| {row[cer]:.4f} |"
        )
    return [*table, ""]
