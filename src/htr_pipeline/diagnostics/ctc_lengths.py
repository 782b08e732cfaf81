"""CTC length analysis: per sample, time steps T, label length L, adjacent repeats R and slack T - (L + R), and
what the recognizer's CTC loss looks like against L.

The previous system's raw CTC of ~629 per sample (summed over time) was read as "hard alignment"; this audit shows
whether labels fit their time steps at all, what width or downsampling would make every one fit, and whether
the loss per character is that of a recognizer that reads (below ln(num_classes), the cost of a uniform guess)
or of one that emits blanks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from htr_pipeline.diagnostics.recognizer_readings import LineReading, readings_table
from htr_pipeline.diagnostics.run_inputs import AuditedCheckpoint, AuditedRun, run_config
from htr_pipeline.diagnostics.verdicts import AuditReport, Finding, markdown_table
from htr_pipeline.trained_run import TrainedRun
from htr_pipeline.training.ctc_feasibility import feasibility_report

NAME = "ctc_length_report"
TITLE = "CTC length analysis"

HISTOGRAM_BINS = 30
ALL_BLANK_PROBLEM_SHARE = 0.5
"""More than this share of lines read as nothing but blanks: the recognizer has collapsed to the blank."""
SUMMED_LOSS_MIN_RATIO = 5.0
"""A logged CTC at least this many times (and at least half the mean label length times) the per-character
CTC measured here looks summed over the label or the time steps rather than length-normalised."""


def ctc_length_summary(manifest: pd.DataFrame, width_downsampling: int) -> dict[str, Any]:
    """Counts and recommendations for the samples with text (JSON-safe)."""
    report = feasibility_report(manifest, width_downsampling)
    table = report.table
    needed_steps = table["label_length"] + table["repeats"]
    infeasible = report.infeasible
    return {
        "samples_with_text": len(table),
        "width_downsampling": width_downsampling,
        "infeasible_count": len(infeasible),
        "infeasible_share": len(infeasible) / len(table) if len(table) else 0.0,
        "infeasible_by_split": {str(split): int(count) for split, count in infeasible["split"].value_counts().items()},
        "infeasible_samples": infeasible["sample_id"].tolist(),
        "min_slack": int(table["slack"].min()) if len(table) else None,
        "median_slack": float(table["slack"].median()) if len(table) else None,
        "width_px_for_every_label": int(needed_steps.max() * width_downsampling) if len(table) else None,
        "largest_feasible_downsampling": report.largest_feasible_downsampling(),
    }


def recognizer_loss_summary(readings: Sequence[LineReading], num_classes: int) -> dict[str, Any]:
    """Mean CTC per line (summed over the label) and per character, against the per-character cost of chance."""
    table = readings_table(list(readings))
    scored = table[table["ctc_loss_nats"].notna() & (table["label_length"] > 0)]
    per_character = scored["ctc_loss_nats"] / scored["label_length"]
    return {
        "lines_read": len(table),
        "lines_scored": len(scored),
        "mean_loss_per_line_nats": _mean_or_none(scored["ctc_loss_nats"]),
        "mean_loss_per_character_nats": _mean_or_none(per_character),
        "chance_loss_per_character_nats": math.log(num_classes),
        "mean_label_length": _mean_or_none(scored["label_length"]),
        "mean_blank_share": _mean_or_none(table["blank_share"]),
        "lines_all_blank": int((table["blank_share"] >= 1.0).sum()),
    }


def _mean_or_none(values: pd.Series) -> float | None:
    return float(values.mean()) if len(values) else None


def ctc_length_report(
    manifest: pd.DataFrame,
    width_downsampling: int,
    drop_infeasible: bool,
    readings: Sequence[LineReading] | None,
    num_classes: int,
    logged_train_ctc: float | None,
) -> AuditReport:
    """Feasibility of every label, and (with ``readings``) the recognizer's loss and blank share on clean lines.

    ``logged_train_ctc`` is the last per-sample CTC the run logged for the recognizer; it is checked against
    the length-normalised loss measured here.
    """
    lengths = ctc_length_summary(manifest, width_downsampling)
    findings = _feasibility_findings(lengths, drop_infeasible)
    details: dict[str, Any] = {"lengths": lengths, "logged_train_ctc": logged_train_ctc}
    sections = [_lengths_section(lengths)]
    if readings is None:
        findings.append(
            Finding("warning", "no recognizer checkpoint was available: CTC loss and blank share unchecked")
        )
    else:
        losses = recognizer_loss_summary(readings, num_classes)
        findings += _loss_findings(losses, logged_train_ctc)
        details["recognizer"] = losses
        details["lines"] = _json_records(readings_table(list(readings)))
        sections.append("## Recognizer on clean lines\n\n" + markdown_table([losses], list(losses)))
    if not findings:
        findings.append(Finding("ok", "every label fits its time steps and the recognizer's CTC is that of a reader"))
    return AuditReport(NAME, TITLE, findings, details, sections)


def _json_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain dicts, nan as None (JSON has no nan)."""
    return table.astype(object).where(table.notna(), None).to_dict(orient="records")


def _feasibility_findings(lengths: dict[str, Any], drop_infeasible: bool) -> list[Finding]:
    count = lengths["infeasible_count"]
    if count == 0:
        return [
            Finding(
                "ok",
                f"all {lengths['samples_with_text']} labels fit their time steps at width / "
                f"{lengths['width_downsampling']} (smallest slack {lengths['min_slack']})",
            )
        ]
    advice = (
        f"lines {lengths['width_px_for_every_label']} px wide, or recognizer.width_downsampling "
        f"{lengths['largest_feasible_downsampling']}, would fit every label"
    )
    consequence = "training dropped them (drop_infeasible)" if drop_infeasible else "their CTC is infinite"
    return [
        Finding(
            "warning" if drop_infeasible else "problem",
            f"{count} labels ({lengths['infeasible_share']:.1%}, by split {lengths['infeasible_by_split']}) need more "
            f"time steps than their width gives: {consequence}; {advice}",
        )
    ]


def _loss_findings(losses: dict[str, Any], logged_train_ctc: float | None) -> list[Finding]:
    if losses["lines_scored"] == 0:
        return [Finding("warning", "no line could be scored (no text the charset can encode): CTC loss unchecked")]
    findings = []
    per_character, chance = losses["mean_loss_per_character_nats"], losses["chance_loss_per_character_nats"]
    if losses["lines_all_blank"] > ALL_BLANK_PROBLEM_SHARE * losses["lines_read"]:
        findings.append(
            Finding(
                "problem",
                f"{losses['lines_all_blank']} of {losses['lines_read']} clean lines read as nothing but blanks: the "
                "recognizer has collapsed to the blank and cannot give the generator a useful CTC gradient",
            )
        )
    if per_character > chance:
        findings.append(
            Finding(
                "warning",
                f"the recognizer's CTC on clean lines is {per_character:.3g} nats per character, above the "
                f"{chance:.3g} (ln of {round(math.exp(chance))} classes) of a uniform guess: it does not read these "
                "lines yet; pre-train it longer before trusting its CTC as a training signal",
            )
        )
    if logged_train_ctc is not None and per_character > 0:
        ratio = logged_train_ctc / per_character
        if ratio >= max(SUMMED_LOSS_MIN_RATIO, losses["mean_label_length"] / 2):
            findings.append(
                Finding(
                    "warning",
                    f"the run logged a training CTC of {logged_train_ctc:.4g}, {ratio:.1f} x the "
                    f"{per_character:.3g} nats per character measured here: it looks summed over the label or the "
                    "time steps rather than length-normalised, which inflates its weight in the loss",
                )
            )
    return findings


def _lengths_section(lengths: dict[str, Any]) -> str:
    shown = {key: value for key, value in lengths.items() if key != "infeasible_samples"}
    section = "## Label lengths against time steps\n\n" + markdown_table([shown], list(shown))
    if lengths["infeasible_samples"]:
        section += "\n\nInfeasible samples (first 20): " + ", ".join(lengths["infeasible_samples"][:20])
    return section


def plot_ctc_lengths(
    manifest: pd.DataFrame, width_downsampling: int, readings: Sequence[LineReading] | None = None
) -> Figure:
    """Slack histogram, time steps against label length and, with readings, CTC loss against L and blank share."""
    table = feasibility_report(manifest, width_downsampling).table
    figure = Figure(figsize=(12, 8 if readings else 4.5), layout="constrained")
    axes = np.atleast_2d(figure.subplots(2 if readings else 1, 2))
    _plot_slack(axes[0, 0], table)
    _plot_steps_against_length(axes[0, 1], table, width_downsampling)
    if readings:
        lines = readings_table(list(readings))
        _plot_loss_against_length(axes[1, 0], lines)
        axes[1, 1].hist(lines["blank_share"], bins=HISTOGRAM_BINS, range=(0, 1), color="tab:gray")
        axes[1, 1].set(title="Blank share of the greedy output per line", xlabel="share of time steps", ylabel="lines")
    return figure


def _plot_slack(axes: Any, table: pd.DataFrame) -> None:
    axes.hist(table["slack"], bins=HISTOGRAM_BINS, color="tab:blue")
    axes.axvline(0, color="tab:red", linestyle="--", label="infeasible below 0")
    axes.set(title="Slack T - (L + R) per sample", xlabel="time steps to spare", ylabel="samples")
    axes.legend()


def _plot_steps_against_length(axes: Any, table: pd.DataFrame, width_downsampling: int) -> None:
    feasible, infeasible = table[table["feasible"]], table[~table["feasible"]]
    axes.scatter(feasible["label_length"], feasible["time_steps"], s=6, label="feasible")
    axes.scatter(infeasible["label_length"], infeasible["time_steps"], s=12, color="tab:red", label="infeasible")
    longest = int(table["label_length"].max()) if len(table) else 1
    axes.plot([0, longest], [0, longest], color="grey", linestyle=":", label="T = L")
    axes.set(title=f"Time steps (width / {width_downsampling}) vs label length", xlabel="L", ylabel="T")
    axes.legend()


def _plot_loss_against_length(axes: Any, lines: pd.DataFrame) -> None:
    scored = lines[lines["ctc_loss_nats"].notna()]
    axes.scatter(scored["label_length"], scored["ctc_loss_nats"], s=6, color="tab:purple")
    axes.set(title="Recognizer CTC per line (summed, nats) vs label length", xlabel="L", ylabel="CTC (nats)")


def audit_ctc_lengths(
    run: AuditedRun, checkpoint: AuditedCheckpoint, readings: list[LineReading], manifest: pd.DataFrame
) -> AuditReport:
    """Label lengths against the time steps of the run's recognizer; its CTC on clean lines where the checkpoint
    is there to read them."""
    training = run_config(checkpoint, run.params).training
    width_downsampling = training.recognizer.width_downsampling
    pretraining_losses = run.metric_history.get("recognizer/train_ctc_loss")
    trained = isinstance(checkpoint, TrainedRun)
    report = ctc_length_report(
        manifest,
        width_downsampling,
        training.drop_infeasible,
        readings if trained else None,
        checkpoint.charset.num_classes if trained else 0,
        pretraining_losses[-1][1] if pretraining_losses else None,
    )
    return report.with_figure(plot_ctc_lengths(manifest, width_downsampling, readings))
