"""Best-model criterion audit: which epoch each validation metric picks, where they disagree, which checkpoints
exist. The previous system kept one checkpoint chosen by the combined score (epoch 24) while epoch 26 had the best
CER, and its per-epoch save could delete the best."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import pandas as pd
from matplotlib.figure import Figure

from htr_pipeline.checkpoints import best_of_metric, checkpoint_file_name
from htr_pipeline.diagnostics.run_inputs import AuditedCheckpoint, AuditedRun, existing_checkpoints, run_config
from htr_pipeline.diagnostics.verdicts import AuditReport, Finding, markdown_table
from htr_pipeline.figure_axes import integer_axis, is_rate, rate_axis
from htr_pipeline.metric_names import MONITOR_MODES, PAGE_MONITOR, validation_metric
from htr_pipeline.metrics import combined_score

NAME = "best_model"
TITLE = "Best-model criterion"

VAL_CER, VAL_PSNR, VAL_COMBINED = (validation_metric(score) for score in ("cer", "psnr", "combined"))


@dataclass(frozen=True)
class CriterionChoice:
    metric: str
    mode: Literal["min", "max"]
    epoch: int
    value: float
    checkpoint: str
    checkpoint_exists: bool | None
    """None when no checkpoint folder was given."""


def history_table(history: Mapping[str, Sequence[tuple[int, float]]]) -> pd.DataFrame:
    """``{metric: [(epoch, value), ...]}`` (an MLflow metric history) as one row per epoch."""
    columns = {metric: pd.Series(dict(points), dtype="float64") for metric, points in history.items()}
    return pd.DataFrame(columns).sort_index().rename_axis("epoch")


def with_combined(table: pd.DataFrame, cer_weight: float) -> pd.DataFrame:
    """Fill ``val/combined`` (:func:`~htr_pipeline.metrics.combined_score` of val/psnr and val/cer) where it
    was not logged."""
    computed = combined_score(table[VAL_PSNR], table[VAL_CER], cer_weight)
    filled = table.copy()
    filled[VAL_COMBINED] = table[VAL_COMBINED].fillna(computed) if VAL_COMBINED in table else computed
    return filled


def criterion_choices(
    table: pd.DataFrame, cer_weight: float, existing_checkpoints: Sequence[str] | None = None
) -> list[CriterionChoice]:
    """The epoch each criterion picks (ties: the earliest), and whether its checkpoint was kept; a criterion the
    run did not log (``val/page_f_measure`` without real pages to validate on) picks nothing."""
    table = with_combined(table, cer_weight)
    choices = []
    for metric, mode in MONITOR_MODES.items():
        values = table[metric].dropna() if metric in table else pd.Series(dtype="float64")
        if values.empty:
            continue
        epoch = int(values.idxmin() if mode == "min" else values.idxmax())
        checkpoint = checkpoint_file_name(best_of_metric(metric))
        exists = None if existing_checkpoints is None else checkpoint in existing_checkpoints
        choices.append(CriterionChoice(metric, mode, epoch, float(values[epoch]), checkpoint, exists))
    return choices


def disagreements(choices: Sequence[CriterionChoice]) -> list[str]:
    return [
        f"{first.metric} picks epoch {first.epoch}, {second.metric} picks epoch {second.epoch}"
        for index, first in enumerate(choices)
        for second in choices[index + 1 :]
        if first.epoch != second.epoch
    ]


def best_model_report(
    table: pd.DataFrame, cer_weight: float, existing_checkpoints: Sequence[str] | None = None
) -> AuditReport:
    """A missing best checkpoint is a problem (that model is lost); criteria that disagree are a warning (the
    paper must say which criterion chose the reported model)."""
    if _no_validation(table):
        finding = Finding("warning", "the run logged no val/cer and val/psnr history: no epoch was validated")
        return AuditReport(NAME, TITLE, [finding], {"choices": [], "disagreements": []})
    choices = criterion_choices(table, cer_weight, existing_checkpoints)
    disagreeing = disagreements(choices)
    findings = [
        Finding(
            "problem",
            f"{choice.metric} is best at epoch {choice.epoch} but {choice.checkpoint} is not in the run's checkpoint "
            "folder: that model is lost",
        )
        for choice in choices
        if choice.checkpoint_exists is False
    ]
    if existing_checkpoints is None:
        findings.append(Finding("warning", "the run's checkpoint folder is unknown or absent: kept models unchecked"))
    if disagreeing:
        findings.append(
            Finding(
                "warning",
                "the criteria pick different epochs (" + "; ".join(disagreeing) + "): report which one chose "
                "the model, or evaluate each best_<metric> checkpoint",
            )
        )
    if not findings:
        findings.append(Finding("ok", f"every criterion picks epoch {choices[0].epoch}, and its checkpoint exists"))
    records = [asdict(choice) for choice in choices]
    return AuditReport(
        audit=NAME,
        title=TITLE,
        findings=findings,
        details={
            "cer_weight": cer_weight,
            "epochs": [int(epoch) for epoch in table.index],
            "choices": records,
            "disagreements": disagreeing,
            "existing_checkpoints": None if existing_checkpoints is None else sorted(existing_checkpoints),
        },
        markdown_sections=[
            "## Epoch picked by each criterion\n\n"
            + markdown_table(records, ["metric", "mode", "epoch", "value", "checkpoint", "checkpoint_exists"])
        ],
    )


def _no_validation(table: pd.DataFrame) -> bool:
    return table.empty or VAL_CER not in table or VAL_PSNR not in table


DEGRADED_PREFIX = "val_degraded"
"""The validation scores of the degraded input itself, logged at step 0: the baseline the generator must beat."""


def metric_unit(metric: str, cer_weight: float) -> str:
    """What a validation metric's axis measures, in words and units."""
    score = metric.rsplit("/", 1)[-1]
    return {
        "cer": "CER (edits / reference characters)",
        "wer": "WER (edits / reference words)",
        "psnr": "PSNR against the clean line (dB)",
        "ssim": "SSIM against the clean line (0-1)",
        "combined": f"PSNR - {cer_weight:g} x CER (dB)",
        "page_f_measure": "F-measure, valid real pages (%)",
    }[score]


def degraded_baseline(history: Mapping[str, Sequence[tuple[int, float]]]) -> dict[str, float]:
    """``{val/<score>: value}`` of the degraded input (``val_degraded/<score>``, step 0), where the run logged it."""
    return {
        f"val/{metric.split('/', 1)[1]}": float(points[0][1])
        for metric, points in history.items()
        if metric.startswith(f"{DEGRADED_PREFIX}/") and points
    }


PANEL_WIDTH_IN = 3.8
LINE_CRITERIA = [metric for metric in MONITOR_MODES if metric != PAGE_MONITOR]
"""The criteria every validated run has; ``val/page_f_measure`` only where it validates on real pages."""


def plot_metric_history(table: pd.DataFrame, cer_weight: float, baseline: Mapping[str, float] | None = None) -> Figure:
    """One panel per criterion: its validation curve with its unit, the degraded input's score (the baseline to
    beat) and the epoch it picks marked."""
    baseline = baseline or {}
    if _no_validation(table):
        figure = Figure(figsize=(PANEL_WIDTH_IN * len(LINE_CRITERIA), 3.6), layout="constrained")
        figure.subplots(1, len(LINE_CRITERIA))
        return figure
    table = with_combined(table, cer_weight)
    choices = criterion_choices(table, cer_weight)
    figure = Figure(figsize=(PANEL_WIDTH_IN * len(choices), 3.6), layout="constrained")
    axes_row = figure.subplots(1, len(choices), squeeze=False)[0]
    for axes, choice in zip(axes_row, choices, strict=True):
        values = table[choice.metric].dropna()
        axes.plot(values.index, values.to_numpy(), marker="o", markersize=3, label="restored (validation)")
        if choice.metric in baseline:
            axes.axhline(
                baseline[choice.metric],
                color="grey",
                linestyle=":",
                label=f"degraded input {baseline[choice.metric]:.3g}",
            )
        axes.axvline(choice.epoch, color="tab:red", linestyle="--", label=f"picks epoch {choice.epoch}")
        better = "lower" if choice.mode == "min" else "higher"
        axes.set(
            title=f"{choice.metric} ({better} is better)", xlabel="epoch", ylabel=metric_unit(choice.metric, cer_weight)
        )
        first, last = int(values.index.min()), int(values.index.max())
        axes.set_xlim(first - 0.5, last + 0.5)  # one epoch is a point, not an axis from 0.95 to 1.05
        if last - first < 20:
            axes.set_xticks(range(first, last + 1))
        else:
            integer_axis(axes)
        if is_rate(choice.metric):
            rate_axis(axes, [*values, *([baseline[choice.metric]] if choice.metric in baseline else [])])
        axes.legend(fontsize="small")
    return figure


def audit_best_model(run: AuditedRun, checkpoint: AuditedCheckpoint) -> AuditReport:
    """The epoch each validation metric picks in the run's logged history, with its ``combined_cer_weight``."""
    validation_history = {metric: points for metric, points in run.metric_history.items() if metric.startswith("val/")}
    table = history_table(validation_history)
    cer_weight = run_config(checkpoint, run.params).training.combined_cer_weight
    report = best_model_report(table, cer_weight, existing_checkpoints(run.checkpoint_folder))
    return report.with_figure(plot_metric_history(table, cer_weight, degraded_baseline(run.metric_history)))
