"""Pictures of a comparison: every run's validation curves overlaid, and CER against PSNR per run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from htr_pipeline.experiments.comparison import Comparison
from htr_pipeline.experiments.runs import ComparedRun
from htr_pipeline.figure_axes import integer_axis, rate_axis

VALIDATION_PANELS = (("val/cer", "validation CER (in-loop recognizer)"), ("val/psnr", "validation PSNR (dB)"))
"""The per-epoch figures every training run logs (step = epoch), and the degraded input's at step 0."""
DEGRADED_PREFIX = "val_degraded/"
LINE_STYLES = ("-", "--", ":", "-.")


def _new_figure(width_in: float, height_in: float) -> Figure:
    figure = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _colour_and_style(runs: Sequence[ComparedRun]) -> dict[str, tuple[str, str]]:
    """One colour per configuration (per run when runs are not grouped), one line style per seed within it."""
    configurations = list(dict.fromkeys(run.configuration or run.run_id for run in runs))
    styles: dict[str, tuple[str, str]] = {}
    seen: dict[str, int] = {}
    for run in runs:
        key = run.configuration or run.run_id
        colour = f"C{configurations.index(key) % 10}"
        styles[run.run_id] = (colour, LINE_STYLES[seen.get(key, 0) % len(LINE_STYLES)])
        seen[key] = seen.get(key, 0) + 1
    return styles


def plot_validation_curves(runs: Sequence[ComparedRun]) -> Figure:
    """Validation CER and PSNR by epoch of every run, overlaid; the degraded input as a grey dashed line."""
    figure = _new_figure(11.0, 4.2)
    styles = _colour_and_style(runs)
    last_epoch = 1
    for axes, (metric, title) in zip(figure.subplots(1, 2), VALIDATION_PANELS, strict=True):
        values = []
        for run in runs:
            history = run.validation_history.get(metric, [])
            if not history:
                continue
            epochs, points = zip(*history, strict=True)
            colour, style = styles[run.run_id]
            axes.plot(epochs, points, style, color=colour, marker="o", markersize=3, label=run.label)
            values += points
            last_epoch = max(last_epoch, *epochs)
        degraded = next((history for run in runs if (history := run.validation_history.get(_degraded(metric)))), None)
        if degraded:
            axes.axhline(degraded[0][1], color="grey", linestyle="--", linewidth=1, label="degraded input (epoch 0)")
            axes.plot([0], [degraded[0][1]], "x", color="grey", markersize=7)
            values.append(degraded[0][1])
        if not values:
            axes.text(0.5, 0.5, "no run logged it", ha="center", va="center", transform=axes.transAxes)
        if metric.endswith("cer"):
            rate_axis(axes, values)
        elif values:
            _at_least_span(axes, values, MIN_PSNR_SPAN_DB)
        integer_axis(axes)
        axes.set_xlim(-0.3, last_epoch + 0.3)
        axes.set_xlabel("epoch")
        axes.set_title(title)
        axes.grid(alpha=0.3)
    figure.axes[0].legend(fontsize=7, loc="best")
    figure.suptitle("Validation by epoch, every run")
    return figure


MIN_PSNR_SPAN_DB = 2.0
"""A PSNR axis spans at least this much, so hundredths of a dB do not look like a gap."""


def _degraded(metric: str) -> str:
    return DEGRADED_PREFIX + metric.split("/", 1)[1]


def _at_least_span(axes: Any, values: Sequence[float], span: float) -> None:
    low, high = min(values), max(values)
    if high - low < span:
        middle = (low + high) / 2
        axes.set_ylim(middle - span / 2, middle + span / 2)


def plot_cer_against_psnr(comparison: Comparison) -> Figure:
    """Each run's restored CER (judge) against its restored PSNR, both with their intervals: the trade-off a loss
    weight moves along. One colour per configuration (its seeds share it); squares: the baseline. Lower right is
    better."""
    figure = _new_figure(7.5, 5.5)
    axes = figure.subplots()
    styles = _colour_and_style([row.run for row in comparison.rows])
    cers, labelled = [], set()
    for row in comparison.rows:
        cer, psnr = row.figures.get("cer_restored"), row.figures.get("psnr_db_restored")
        if cer is None or psnr is None:
            continue
        colour, _ = styles[row.run.run_id]
        name = row.run.configuration_label or row.run.label
        axes.errorbar(
            psnr.estimate,
            cer.estimate,
            xerr=[[psnr.estimate - psnr.ci_low], [psnr.ci_high - psnr.estimate]],
            yerr=[[cer.estimate - cer.ci_low], [cer.ci_high - cer.estimate]],
            fmt="s" if row.is_baseline else "o",
            color=colour,
            capsize=3,
            markersize=8 if row.is_baseline else 6,
            alpha=0.8,
            label=None
            if name in labelled
            else name + (" (baseline)" if row.is_baseline and name != "baseline" else ""),
        )
        labelled.add(name)
        cers += [cer.ci_low, cer.ci_high]
    rate_axis(axes, cers)
    axes.set_xlabel("PSNR of restored lines (dB), mean")
    axes.set_ylabel(f"CER of restored lines ({comparison.headline_recognizer}), corpus")
    percent = f"{100 * comparison.bootstrap.confidence:g}%"
    axes.set_title(f"CER against PSNR per run, {percent} intervals over lines")
    axes.legend(fontsize=7, loc="best")
    axes.grid(alpha=0.3)
    return figure
