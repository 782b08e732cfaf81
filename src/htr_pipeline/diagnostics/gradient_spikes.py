"""Gradient spikes: which layer produced each spike, in which epoch, and how far above the usual norm.

The previous system logged gradient norms up to 7,494 against a mean of ~28 (a ratio of ~267) and could not say
where they came from. Training now logs, per epoch, one :class:`~htr_pipeline.training.grad_stats.GradientSummary` per
model (artifact ``gradients/epoch_NNN.json``: ``{"epoch": int, "generator": {...}, "discriminator": {...}}``);
this audit reads those records back and names the spiking layers.

A spike is a step whose global norm exceeded the training run's ``spike_factor`` times the median of every
earlier step; its ratio here is that global norm over that median. Non-finite steps are judged by precision: with
fp16 they are the loss scaler's routine overflows (the step is skipped), with fp32 or bf16 nothing explains them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, MaxNLocator

from htr_pipeline.config import PRECISIONS, DiagnosticsConfig
from htr_pipeline.diagnostics.run_inputs import AuditedCheckpoint, AuditedRun, run_config
from htr_pipeline.diagnostics.verdicts import AuditReport, Finding, markdown_table
from htr_pipeline.training.grad_stats import RunningMedian

NAME = "gradient_spikes"
TITLE = "Gradient spikes"

ROUTINE_FP16_OVERFLOW_SHARE = 0.05
"""With fp16, up to this share of a model's steps may overflow (the loss scaler backs off and retries) before it
is a warning: more means the loss scale keeps collapsing."""
MARKDOWN_ROW_LIMIT = 20
CLIPPING_WARNING_SHARE = 0.5
"""Clipping that acts on more than this share of a model's steps is a warning: the update is then mostly the
gradient's direction at the clip's norm, not the gradient the loss gives."""

EPOCH_COLUMNS = [
    "model",
    "epoch",
    "steps",
    "mean_global_norm",
    "max_global_norm",
    "clipped_steps",
    "spike_steps",
    "non_finite_steps",
]
CLIPPING_COLUMNS = ["model", "steps", "clipped_steps", "clipped_share", "mean_norm_over_clip", "clip_norm"]
STEP_COLUMNS = [
    "model",
    "epoch",
    "step_in_epoch",
    "global_step",
    "global_norm",
    "median_before",
    "ratio",
    "layer",
    "layer_norm",
]
LAYER_COLUMNS = ["model", "layer", "spikes", "epochs", "largest_ratio", "largest_layer_norm"]


# ------------------------------------------------------------------------------------------------- records


def _sorted_by_epoch(epoch_reports: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(epoch_reports, key=lambda report: int(report["epoch"]))


def _model_names(epoch_reports: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every model with a gradient summary ("generator", "discriminator"), in order of first appearance."""
    names: dict[str, None] = {}
    for report in epoch_reports:
        names.update((key, None) for key, value in report.items() if key != "epoch" and isinstance(value, Mapping))
    return list(names)


def _as_float(value: Any) -> float:
    """A logged number; a strict JSON writer may have stored nan as null."""
    return math.nan if value is None else float(value)


def _json_number(value: float | None) -> float | str | None:
    """Finite floats as they are; nan and infinities as text, which strict JSON (and kedro-viz) can read."""
    if value is None or math.isfinite(value):
        return value
    return str(value)


def _ratio(global_norm: float, median_before: float | None) -> float:
    """How many times the median of earlier steps this step's global norm was (inf above a zero median)."""
    if median_before is None or median_before <= 0:
        return math.inf
    return global_norm / median_before


def _step_norms(summary: Mapping[str, Any]) -> list[float]:
    """Every step's global norm before clipping (empty for runs trained before these were kept)."""
    return [_as_float(norm) for norm in summary.get("global_norms", [])]


def _clipped_steps(summary: Mapping[str, Any], clip_norm: float | None) -> int | None:
    """Steps whose norm before clipping exceeded the clip (None: no clip, or no per-step norms logged)."""
    norms = _step_norms(summary)
    if clip_norm is None or not norms:
        return None
    return sum(1 for norm in norms if math.isfinite(norm) and norm > clip_norm)


def _epoch_rows(
    epoch_reports: Sequence[Mapping[str, Any]], models: Sequence[str], clip_norm: float | None = None
) -> list[dict[str, Any]]:
    return [
        {
            "model": model,
            "epoch": int(report["epoch"]),
            "steps": int(report[model]["steps"]),
            "mean_global_norm": _as_float(report[model]["mean_global_norm"]),
            "max_global_norm": _as_float(report[model]["max_global_norm"]),
            "clipped_steps": _clipped_steps(report[model], clip_norm),
            "spike_steps": int(report[model]["spike_steps"]),
            "non_finite_steps": int(report[model]["non_finite_steps"]),
        }
        for model in models
        for report in epoch_reports
        if model in report
    ]


def _step_rows(
    epoch_reports: Sequence[Mapping[str, Any]], models: Sequence[str], kind: Literal["spikes", "non_finite"]
) -> list[dict[str, Any]]:
    """Every spike (or non-finite step) of every epoch, in training order per model."""
    rows = []
    for model in models:
        for report in epoch_reports:
            for step in report.get(model, {}).get(kind, []):
                global_norm = _as_float(step["global_norm"])
                median_before = None if step["median_before"] is None else float(step["median_before"])
                rows.append(
                    {
                        "model": model,
                        "epoch": int(report["epoch"]),
                        "global_step": int(step["global_step"]),
                        "step_in_epoch": int(step["step_in_epoch"]),
                        "global_norm": global_norm,
                        "median_before": median_before,
                        "ratio": _ratio(global_norm, median_before),
                        "layer": str(step["layer"]),
                        "layer_norm": _as_float(step["layer_norm"]),
                    }
                )
    return rows


def _layer_rows(spike_rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (model, layer) that caused a spike, the largest ratio first."""
    layers: dict[tuple[str, str], dict[str, Any]] = {}
    for spike in spike_rows:
        row = layers.setdefault(
            (spike["model"], spike["layer"]),
            {
                "model": spike["model"],
                "layer": spike["layer"],
                "spikes": 0,
                "epochs": [],
                "largest_ratio": 0.0,
                "largest_layer_norm": 0.0,
            },
        )
        row["spikes"] += 1
        if spike["epoch"] not in row["epochs"]:
            row["epochs"].append(spike["epoch"])
        row["largest_ratio"] = max(row["largest_ratio"], spike["ratio"])
        row["largest_layer_norm"] = max(row["largest_layer_norm"], spike["layer_norm"])
    return sorted(layers.values(), key=lambda row: row["largest_ratio"], reverse=True)


# ------------------------------------------------------------------------------------------------ findings


def _spike_finding(
    model: str, epoch_rows: Sequence[Mapping[str, Any]], spike_rows: Sequence[Mapping[str, Any]], problem_factor: float
) -> Finding:
    steps = sum(row["steps"] for row in epoch_rows)
    if not spike_rows:
        largest = max((row["max_global_norm"] for row in epoch_rows), default=math.nan)
        epochs = f"{len(epoch_rows)} epoch{'' if len(epoch_rows) == 1 else 's'}"
        return Finding(
            "ok", f"{model}: no gradient spikes in {steps} steps over {epochs} (largest global norm {largest:.4g})"
        )
    worst = max(spike_rows, key=lambda spike: spike["ratio"])
    spiking_layers = _layer_rows(spike_rows)
    layer_counts = ", ".join(f"{row['layer']} ({row['spikes']})" for row in spiking_layers[:3])
    worst_text = (
        f"{model}: {len(spike_rows)} of {steps} steps spiked (layers: {layer_counts}); the worst, in epoch "
        f"{worst['epoch']} (step {worst['step_in_epoch']} of the epoch, global step {worst['global_step']}), had "
        f"global norm {worst['global_norm']:.4g}, {worst['ratio']:.3g}x the median of earlier steps "
        f"({_format_median(worst['median_before'])}), with layer {worst['layer']} the largest "
        f"(norm {worst['layer_norm']:.4g})"
    )
    if worst["ratio"] >= problem_factor:
        return Finding(
            "problem",
            f"{worst_text}; that is at least {problem_factor:g}x: look at {worst['layer']} (its learning rate, "
            "normalisation, the loss terms that reach it) or clip gradients",
        )
    return Finding("warning", f"{worst_text}; below the {problem_factor:g}x problem factor")


def _clipping_row(model: str, epoch_rows: Sequence[Mapping[str, Any]], clip_norm: float) -> dict[str, Any]:
    """How often the clip acted on ``model`` over the run, and its mean norm before clipping over the clip."""
    steps = sum(row["steps"] for row in epoch_rows)
    finite_means = [
        (row["mean_global_norm"], row["steps"]) for row in epoch_rows if math.isfinite(row["mean_global_norm"])
    ]
    mean_norm = sum(mean * count for mean, count in finite_means) / max(sum(count for _, count in finite_means), 1)
    counted = [row["clipped_steps"] for row in epoch_rows if row["clipped_steps"] is not None]
    clipped = sum(counted) if len(counted) == len(epoch_rows) else None
    return {
        "model": model,
        "steps": steps,
        "clipped_steps": clipped,
        "clipped_share": None if clipped is None else clipped / max(steps, 1),
        "mean_norm_over_clip": mean_norm / clip_norm,
        "mean_global_norm": mean_norm,
        "clip_norm": clip_norm,
    }


def _clipping_finding(row: Mapping[str, Any]) -> Finding:
    """A warning when the clip acts on most steps: the update is then the gradient's direction at the clip's norm
    (Adam sees every step's gradient rescaled to it), not what the loss and learning rate say."""
    model, clip, ratio = row["model"], row["clip_norm"], row["mean_norm_over_clip"]
    share = row["clipped_share"]
    acted = (
        f"clipping acted on {row['clipped_steps']} of {row['steps']} steps ({share:.0%})"
        if share is not None
        else "the run kept no per-step norms, so the clipped steps cannot be counted"
    )
    measured = (
        f"{model}: {acted}; mean norm before clipping {row['mean_global_norm']:.4g} = {ratio:.3g}x the clip {clip:g}"
    )
    frequent = share > CLIPPING_WARNING_SHARE if share is not None else ratio > 1.0
    if not frequent:
        return Finding("ok", measured)
    return Finding(
        "warning",
        f"{measured}: the effective update is the gradient rescaled to norm {clip:g} (its direction only; a "
        "large gradient weighs no more than a small one in Adam's moments), not the gradient at the configured "
        "learning rate; raise training.optimizer.gradient_clip_norm towards the usual norm, or keep it knowingly",
    )


def _format_median(median_before: float | None) -> str:
    return "none" if median_before is None else f"{median_before:.4g}"


def _non_finite_finding(
    model: str, epoch_rows: Sequence[Mapping[str, Any]], non_finite_rows: Sequence[Mapping[str, Any]], precision: str
) -> Finding | None:
    if not non_finite_rows:
        return None
    steps = sum(row["steps"] for row in epoch_rows)
    share = len(non_finite_rows) / max(steps, 1)
    first = non_finite_rows[0]
    where = (
        f"the first in epoch {first['epoch']} (step {first['step_in_epoch']} of the epoch, global step "
        f"{first['global_step']}), layer {first['layer']}"
    )
    counted = f"{model}: {len(non_finite_rows)} of {steps} steps ({share:.1%}) had a non-finite gradient norm"
    if precision != "fp16":
        return Finding(
            "problem",
            f"{counted} under {precision}, where no loss scaler explains them; {where}: find what overflows "
            "there (a log of zero, a division, an exploding activation)",
        )
    if share > ROUTINE_FP16_OVERFLOW_SHARE:
        return Finding(
            "warning",
            f"{counted}: more than the {ROUTINE_FP16_OVERFLOW_SHARE:.0%} an fp16 loss scaler routinely skips, so "
            f"the loss scale keeps collapsing; {where}; consider bf16",
        )
    return Finding("ok", f"{counted}: the fp16 loss scaler's routine overflows (those steps were skipped)")


# -------------------------------------------------------------------------------------------------- report


def gradient_spike_report(
    epoch_reports: Sequence[Mapping[str, Any]], problem_factor: float, precision: str, clip_norm: float | None = None
) -> AuditReport:
    """Spikes and non-finite steps of every model over the run, attributed to layers, and how often gradient
    clipping acted, with a verdict.

    ``epoch_reports``: the parsed ``gradients/epoch_NNN.json`` artifacts, one per epoch, in any order.
    ``problem_factor``: a spike at least this many times the median of earlier steps is a problem, a smaller one
    a warning. ``precision``: the run's training precision, which decides what a non-finite step means.
    ``clip_norm``: the run's ``training.optimizer.gradient_clip_norm`` (None: it did not clip).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if problem_factor <= 0:
        raise ValueError(f"problem_factor must be > 0 (a multiple of the median norm), got {problem_factor}")
    if not epoch_reports:
        return AuditReport(
            audit=NAME,
            title=TITLE,
            findings=[Finding("warning", "the run logged no gradient statistics (trained before this was logged?)")],
            details={"epochs": 0, "precision": precision, "problem_factor": problem_factor},
        )
    ordered = _sorted_by_epoch(epoch_reports)
    models = _model_names(ordered)
    epoch_rows = _epoch_rows(ordered, models, clip_norm)
    spike_rows = _step_rows(ordered, models, "spikes")
    non_finite_rows = _step_rows(ordered, models, "non_finite")
    layer_rows = _layer_rows(spike_rows)
    findings = []
    clipping_rows = []
    for model in models:
        model_epochs = [row for row in epoch_rows if row["model"] == model]
        findings.append(
            _spike_finding(model, model_epochs, [row for row in spike_rows if row["model"] == model], problem_factor)
        )
        if clip_norm is not None:
            clipping_rows.append(_clipping_row(model, model_epochs, clip_norm))
            findings.append(_clipping_finding(clipping_rows[-1]))
        non_finite = _non_finite_finding(
            model, model_epochs, [row for row in non_finite_rows if row["model"] == model], precision
        )
        if non_finite is not None:
            findings.append(non_finite)
    return AuditReport(
        audit=NAME,
        title=TITLE,
        findings=findings,
        details={
            "epochs": len(ordered),
            "models": models,
            "precision": precision,
            "problem_factor": problem_factor,
            "clip_norm": clip_norm,
            "clipping": _json_safe_rows(clipping_rows),
            "per_epoch": _json_safe_rows(epoch_rows),
            "spikes": _json_safe_rows(spike_rows),
            "non_finite_steps": _json_safe_rows(non_finite_rows),
            "per_layer": _json_safe_rows(layer_rows),
        },
        markdown_sections=[
            "## Gradient clipping\n\n"
            + (
                markdown_table(clipping_rows, CLIPPING_COLUMNS)
                if clipping_rows
                else "The run did not clip gradients (training.optimizer.gradient_clip_norm: null)."
            ),
            "## Per epoch\n\n" + markdown_table(epoch_rows, EPOCH_COLUMNS),
            "## Layers that spiked\n\n" + markdown_table(layer_rows, LAYER_COLUMNS),
            "## Spikes, largest ratio first\n\n"
            + markdown_table(
                sorted(spike_rows, key=lambda spike: spike["ratio"], reverse=True), STEP_COLUMNS, MARKDOWN_ROW_LIMIT
            ),
            "## Non-finite steps\n\n" + markdown_table(non_finite_rows, STEP_COLUMNS, MARKDOWN_ROW_LIMIT),
        ],
    )


def _json_safe_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {key: _json_number(value) if isinstance(value, float) else value for key, value in row.items()} for row in rows
    ]


# ---------------------------------------------------------------------------------------------------- plot


def plot_gradient_spikes(
    epoch_reports: Sequence[Mapping[str, Any]], clip_norm: float | None = None, spike_factor: float | None = None
) -> Figure:
    """Per model, every step's global gradient norm before clipping (log scale), with the clip and the spike
    threshold (``spike_factor`` x the median of earlier steps) drawn, each spike marked and the epochs divided.
    A run that kept no per-step norms gets its mean and max per epoch instead."""
    ordered = _sorted_by_epoch(epoch_reports)
    models = _model_names(ordered)
    figure = Figure(figsize=(7 * max(len(models), 1), 4.5), layout="constrained")
    if not models:
        figure.text(0.5, 0.5, "the run logged no gradient statistics", ha="center", va="center")
        return figure
    spike_rows = _step_rows(ordered, models, "spikes")
    for axes, model in zip(figure.subplots(1, len(models), squeeze=False)[0], models, strict=True):
        summaries = [(int(report["epoch"]), report[model]) for report in ordered if model in report]
        spikes = [spike for spike in spike_rows if spike["model"] == model]
        if all(_step_norms(summary) for _, summary in summaries):
            _plot_steps(axes, summaries, spikes, spike_factor)
        else:
            _plot_epochs(axes, _epoch_rows(ordered, [model]), spikes)
        if clip_norm is not None:
            axes.axhline(clip_norm, color="black", linewidth=1.2, label=f"clip ({clip_norm:g})")
        axes.set_yscale("log")
        # Plain numbers (28, 7000) read more easily than 2.8 x 10^1, also on the minor ticks of a narrow range.
        axes.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
        axes.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set(title=f"{model} gradient norm", ylabel="global L2 norm before clipping")
        axes.legend(fontsize="small")
    return figure


def _plot_steps(
    axes: Any,
    summaries: Sequence[tuple[int, Mapping[str, Any]]],
    spikes: Sequence[Mapping[str, Any]],
    factor: float | None,
) -> None:
    """Every step's norm, the spike threshold over the steps, the spikes, and a dotted line between epochs."""
    norms: list[float] = []
    for index, (epoch, summary) in enumerate(summaries):
        if index:
            axes.axvline(len(norms) - 0.5, color="grey", linestyle=":", linewidth=0.8)
        axes.text(
            len(norms),
            0.01,
            f" epoch {epoch}",
            transform=axes.get_xaxis_transform(),
            va="bottom",
            fontsize=8,
            color="grey",
        )
        norms += _step_norms(summary)
    axes.plot(range(len(norms)), norms, linewidth=0.8, color="tab:blue", label="global norm, each step")
    if factor is not None:
        median, threshold = RunningMedian(), []
        for norm in norms:
            before = median.median()
            threshold.append(math.nan if before is None else factor * before)
            if math.isfinite(norm):
                median.add(norm)
        axes.plot(range(len(norms)), threshold, color="tab:orange", linestyle="--", label=f"spike: {factor:g}x median")
    _mark_spikes(axes, spikes, "global_step")
    axes.set_xlabel("step (all epochs)")


def _mark_spikes(axes: Any, spikes: Sequence[Mapping[str, Any]], position: str) -> None:
    """A red cross at each spike's norm, at its ``position`` (``global_step`` or ``epoch``)."""
    if spikes:
        positions = [spike[position] for spike in spikes]
        norms = [spike["global_norm"] for spike in spikes]
        axes.scatter(positions, norms, marker="x", color="tab:red", zorder=3, label="spike")


def _plot_epochs(axes: Any, rows: Sequence[Mapping[str, Any]], spikes: Sequence[Mapping[str, Any]]) -> None:
    """Mean and max norm per epoch, for a run that kept no per-step norms."""
    epochs = [row["epoch"] for row in rows]
    axes.plot(epochs, [row["mean_global_norm"] for row in rows], marker="o", label="mean global norm")
    axes.plot(epochs, [row["max_global_norm"] for row in rows], marker="^", label="max global norm")
    _mark_spikes(axes, spikes, "epoch")
    for index, epoch in enumerate(row["epoch"] for row in rows if row["non_finite_steps"]):
        axes.axvline(epoch, color="grey", linestyle=":", label="non-finite steps" if index == 0 else None)
    axes.set_xlabel("epoch (the run kept no per-step norms)")


def audit_gradient_spikes(
    run: AuditedRun, checkpoint: AuditedCheckpoint, diagnostics: DiagnosticsConfig
) -> AuditReport:
    """The run's per-layer gradient statistics, judged at the precision it trained with."""
    training = run_config(checkpoint, run.params).training
    clip_norm = training.optimizer.gradient_clip_norm
    report = gradient_spike_report(
        run.gradient_reports, diagnostics.gradient_problem_factor, training.precision, clip_norm
    )
    return report.with_figure(plot_gradient_spikes(run.gradient_reports, clip_norm, training.gradient_spike_factor))
