"""Figures and the markdown report of an evaluation, made from the per-line table and the summary.

Figures are built on matplotlib's Agg canvas directly (no pyplot, no global state), so they render the same in
a headless pipeline run as in a test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
CHANGED_LINES_IN_REPORT = 10
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


def evaluation_caption(summary: Mapping[str, Any]) -> str:
    """What the evaluation figures show: the checkpoint, the split and the recognizer that read it."""
    # Two lines: a checkpoint's path alone is about as wide as a figure's title can be.
    return (
        f"{summary['checkpoint']}\nsplit '{summary['split']}', read by {summary['headline_recognizer']} "
        f"({summary['decoding']} decoding)"
    )


def plot_evaluation(samples: pd.DataFrame, figures: Mapping[str, Any] | None = None, caption: str = "") -> Figure:
    """CER distributions (degraded vs restored, corpus CERs of degraded, restored and clean marked), per-line PSNR
    gain (its mean and interval marked), and CER against reference length. ``figures``: the summary of the
    recognizer that read ``samples`` (its corpus CERs and PSNR gain interval); ``caption``: what is shown
    (:func:`evaluation_caption`)."""
    figures = figures or {}
    restored = has_restored(samples)
    with_text = samples[samples["has_text"].astype(bool)]
    # A recognizer-only table has no restored reading: the clean reading is the other side of the comparison.
    compared, compared_label = ("restored", RESTORED) if restored else ("clean", "clean")
    compared_colour = _RESTORED_COLOUR if restored else _CLEAN_COLOUR
    # Two by two, not one row: a preview (kedro-viz, MLflow) shows the whole figure at a readable size.
    figure = _new_figure(13, 9.5)
    if caption:
        figure.suptitle(caption, fontsize=11)
    (cer_axes, psnr_axes), (length_axes, figures_axes) = figure.subplots(2, 2)
    _headline_figures(figures_axes, figures, len(samples), len(with_text))

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
        # The corpus CERs (total edits / total reference length), clean the reference the restored aims at.
        for variant, label, colour in (
            ("degraded", "degraded", _DEGRADED_COLOUR),
            ("restored", RESTORED, _RESTORED_COLOUR),
            ("clean", "clean", _CLEAN_COLOUR),
        ):
            corpus = figures.get(f"cer_corpus_{variant}")
            if corpus is not None:
                cer_axes.axvline(corpus, color=colour, linestyle="--", label=f"corpus CER {label} {corpus:.3f}")
        cer_axes.set_xlabel("CER of the line (edits / reference characters)")
        cer_axes.set_ylabel("lines")
        integer_axis(cer_axes, "y")
        cer_axes.legend(fontsize="small")

    psnr_axes.set_title(f"Per-line PSNR gain ({RESTORED} - degraded)")
    if restored:
        gains_db = (samples["psnr_db_restored"] - samples["psnr_db_degraded"]).to_numpy(dtype=np.float64)
        psnr_axes.hist(gains_db, bins=25, color=_RESTORED_COLOUR, label="lines")
        psnr_axes.axvline(0.0, color="black", linewidth=1)
        gain = figures.get("psnr_gain_db")
        if gain is not None:
            level = f"{100 * figures.get('confidence_level', 0.95):g}%"
            psnr_axes.axvspan(
                gain["ci_low"], gain["ci_high"], color="tab:orange", alpha=0.3, zorder=0, label=f"{level} interval"
            )
            psnr_axes.axvline(gain["estimate"], color="tab:orange", label=f"mean {gain['estimate']:.2f} dB")
            psnr_axes.legend(fontsize="small")
        psnr_axes.set_xlabel("PSNR gain (dB, against the clean line)")
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
        if restored:
            length_axes.scatter(
                lengths, with_text["cer_clean"], s=14, marker=".", color=_CLEAN_COLOUR, label="clean (reference)"
            )
        length_axes.set_xlabel("reference length (characters)")
        length_axes.set_ylabel("CER of the line (edits / reference characters)")
        integer_axis(length_axes, "x")
        rate_axis(length_axes, [*with_text["cer_degraded"], *with_text[f"cer_{compared}"]])
        length_axes.legend(fontsize="small")
    return figure


def _headline_figures(axes: Any, figures: Mapping[str, Any], lines: int, lines_with_text: int) -> None:
    """The summary's corpus figures as text, beside the distributions they summarise."""
    axes.axis("off")
    axes.set_title("Corpus figures")

    def number(key: str, digits: int = 4) -> str:
        value = figures.get(key)
        return "n/a" if value is None else f"{value:.{digits}f}"

    def interval(key: str, digits: int) -> str:
        gain = figures.get(key)
        return (
            "n/a"
            if gain is None
            else f"{gain['estimate']:.{digits}f} [{gain['ci_low']:.{digits}f}, {gain['ci_high']:.{digits}f}]"
        )

    level = f"{100 * figures.get('confidence_level', 0.95):g}%"
    rows = [
        f"lines: {lines} ({lines_with_text} with a ground-truth text)",
        "",
        f"{'':<22}{'degraded':>10}{RESTORED:>10}{'clean':>10}",
        f"{'corpus CER':<22}{number('cer_corpus_degraded'):>10}{number('cer_corpus_restored'):>10}"
        f"{number('cer_corpus_clean'):>10}",
        f"{'corpus WER':<22}{number('wer_corpus_degraded'):>10}{number('wer_corpus_restored'):>10}"
        f"{number('wer_corpus_clean'):>10}",
        f"{'mean PSNR (dB)':<22}{number('psnr_db_mean_degraded', 2):>10}{number('psnr_db_mean_restored', 2):>10}",
        f"{'mean SSIM':<22}{number('ssim_mean_degraded'):>10}{number('ssim_mean_restored'):>10}",
        "",
        f"CER reduction ({level} interval): {interval('cer_reduction', 4)}",
        f"PSNR gain, dB ({level} interval): {interval('psnr_gain_db', 2)}",
    ]
    axes.text(0.0, 1.0, "\n".join(rows), family="monospace", fontsize=10, va="top", transform=axes.transAxes)


# ---------------------------------------------------------------------------------------------- gallery


BREAKS = "breaks"
FIXES = "fixes"


def changed_lines(samples: pd.DataFrame, k: int) -> pd.DataFrame:
    """The lines with text that restoration changed most, up to ``k``: half what it ``breaks`` (restored CER
    furthest above the clean line's: the recognizer reads the clean line but not the restored one), half what it
    ``fixes`` (restored CER furthest below the degraded line's), each largest change first; a line counts in the
    half where its change is larger, and a half with fewer such lines leaves its places to the other. Adds
    ``gallery`` (breaks or fixes) and ``cer_change`` (restored - clean for a break, degraded - restored for a
    fix: always > 0). Without a generator: what degradation breaks (degraded - clean).

    Ranking by the restored CER alone would fill the gallery with lines the recognizer cannot read even clean."""
    with_text = samples[samples["has_text"].astype(bool)]
    if has_restored(samples):
        broken = with_text["cer_restored"] - with_text["cer_clean"]
        fixed = with_text["cer_degraded"] - with_text["cer_restored"]
    else:
        broken = with_text["cer_degraded"] - with_text["cer_clean"]
        fixed = pd.Series(0.0, index=with_text.index)
    # A line counts where restoration changed it most (restored far below degraded yet a little above clean:
    # a fix).
    breaks = _largest(with_text, broken.where(broken >= fixed, 0.0), BREAKS, k)
    fixes = _largest(with_text, fixed.where(fixed > broken, 0.0), FIXES, k)
    kept_fixes = min(len(fixes), max(k // 2, k - len(breaks)))
    return pd.concat([breaks.head(k - kept_fixes), fixes.head(kept_fixes)])


def _largest(rows: pd.DataFrame, change: pd.Series, kind: str, k: int) -> pd.DataFrame:
    """The ``k`` rows of largest positive ``change``; ties: longer reference first."""
    changed = rows.assign(gallery=kind, cer_change=change)[change > 0]
    return changed.sort_values(["cer_change", "char_reference_length"], ascending=False, kind="stable").head(k)


def _truncate(text: str | None, limit: int) -> str:
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return "-"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reading(text: str | None, limit: int) -> str:
    """A recognizer's reading as shown: an empty one says so, instead of showing nothing at all."""
    return NOTHING_READ if text == "" else _truncate(text, limit)


def _gallery_heading(row: pd.Series, restored: bool) -> str:
    """What restoration (or, without a generator, degradation) did to the line, after its id."""
    if "gallery" not in row or pd.isna(row["cer_change"]):
        return ""
    if not restored:
        return f"  (degradation breaks it: degraded CER {row['cer_change']:.3f} above clean)"
    if row["gallery"] == BREAKS:
        return f"  (restoration breaks it: restored CER {row['cer_change']:.3f} above clean)"
    return f"  (restoration fixes it: restored CER {row['cer_change']:.3f} below degraded)"


def failure_gallery(
    rows: pd.DataFrame, images: Sequence[tuple[np.ndarray, np.ndarray | None, np.ndarray]], caption: str = ""
) -> Figure:
    """One block per line: what restoration did to it (``rows`` from :func:`changed_lines`), degraded |
    restored | clean images with their CER, then the reference and the three readings. ``caption``: what is
    shown (checkpoint, split, recognizer).

    ``images[i]`` belongs to ``rows.iloc[i]``: (degraded, restored, clean), each (height, width) in [0, 1]; the
    restored image is ``None`` for a recognizer-only evaluation.
    """
    if len(rows) != len(images):
        raise ValueError(f"gallery got {len(rows)} rows but {len(images)} image triples")
    if rows.empty:
        figure = _new_figure(8, 2)
        _say_empty(figure.subplots(), "no line with text changed its CER")
        return figure

    figure = _new_figure(16, 2.3 * len(rows) + 0.4)
    if caption:
        figure.suptitle(f"Lines restoration breaks and fixes most (CER: edits / reference characters)\n{caption}")
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
        block = "\n".join(
            [
                f"{'line':<10}{row['sample_id']}{_gallery_heading(row, has_restored(rows))}",
                f"{'reference':<10}{_truncate(row['reference'], GALLERY_TEXT_CHARS)}",
            ]
            + [
                f"{label:<10}{_reading(row[f'reading_{variant}'], GALLERY_TEXT_CHARS)}"
                for label, variant in (("degraded", "degraded"), (RESTORED, "restored"), ("clean", "clean"))
            ]
        )
        text_axes.text(0.0, 1.0, block, family="monospace", fontsize=11, va="top", transform=text_axes.transAxes)
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
    intervals, the lines restoration breaks and fixes most (read by the headline recognizer)."""
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
        f"![Lines restoration breaks and fixes: degraded, {RESTORED}, clean]({GALLERY_FILE})",
        "",
    ]
    lines += _changed_lines_table(samples)
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


def _changed_lines_table(samples: pd.DataFrame) -> list[str]:
    """What restoration breaks and fixes most, as in the gallery (by the headline recognizer)."""
    restored = has_restored(samples)
    changed = changed_lines(samples, CHANGED_LINES_IN_REPORT)
    header = (
        f"## Lines restoration changed most (up to {CHANGED_LINES_IN_REPORT}): what it breaks (restored CER far "
        "above the clean line's) and what it fixes (far below the degraded line's)"
        if restored
        else f"## Lines degradation breaks most (up to {CHANGED_LINES_IN_REPORT}; no generator: degraded CER far "
        "above the clean line's)"
    )
    if changed.empty:
        return [header, "", "No line with a ground-truth text changed its CER.", ""]
    shown = "restored" if restored else "degraded"
    table = [
        header,
        "",
        f"| | sample | reference | {RESTORED if restored else 'degraded'} reading | CER degraded | CER "
        f"{RESTORED} | CER clean |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, row in changed.iterrows():
        restored_cer = _number(row["cer_restored"]) if restored else "n/a"
        table.append(
            f"| {row['gallery']} | {_cell(row['sample_id'])} | {_cell(row['reference'])} "
            f"| {_cell(row[f'reading_{shown}'])} | {row['cer_degraded']:.4f} | {restored_cer} "
            f"| {row['cer_clean']:.4f} |"
        )
    return [*table, ""]
