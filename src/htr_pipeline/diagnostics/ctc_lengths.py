"""CTC length analysis: per sample, time steps T, label length L, adjacent repeats R and slack T - (L + R).

The seed run's raw CTC of ~629 per sample (summed over time) was read as "hard alignment"; this audit shows
whether labels fit their time steps at all, and what width or downsampling would make every one fit.
"""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd
from matplotlib.figure import Figure

from htr_pipeline.training.ctc_feasibility import feasibility_report

HISTOGRAM_BINS = 30


def ctc_length_summary(manifest: pd.DataFrame, width_downsampling: int) -> dict[str, Any]:
    """Counts and recommendations for the samples with text (JSON-safe)."""
    report = feasibility_report(manifest, width_downsampling)
    table = report.table
    needed_steps = table["label_length"] + table["repeats"]
    infeasible = report.infeasible
    verdict: Literal["ok", "problem"] = "problem" if len(infeasible) else "ok"
    return {
        "samples_with_text": len(table),
        "width_downsampling": width_downsampling,
        "infeasible_count": len(infeasible),
        "infeasible_share": len(infeasible) / len(table) if len(table) else 0.0,
        "infeasible_samples": infeasible["sample_id"].tolist(),
        "min_slack": int(table["slack"].min()) if len(table) else None,
        "median_slack": float(table["slack"].median()) if len(table) else None,
        "width_px_for_every_label": int(needed_steps.max() * width_downsampling) if len(table) else None,
        "largest_feasible_downsampling": report.largest_feasible_downsampling(),
        "verdict": verdict,
    }


def plot_ctc_lengths(manifest: pd.DataFrame, width_downsampling: int) -> Figure:
    """Slack histogram (infeasible below zero) and time steps against label length."""
    table = feasibility_report(manifest, width_downsampling).table
    figure = Figure(figsize=(12, 4.5), layout="constrained")
    slack_axes, steps_axes = figure.subplots(1, 2)
    slack_axes.hist(table["slack"], bins=HISTOGRAM_BINS, color="tab:blue")
    slack_axes.axvline(0, color="tab:red", linestyle="--", label="infeasible below 0")
    slack_axes.set(title="Slack T - (L + R) per sample", xlabel="time steps to spare")
    slack_axes.legend()
    feasible = table[table["feasible"]]
    infeasible = table[~table["feasible"]]
    steps_axes.scatter(feasible["label_length"], feasible["time_steps"], s=6, label="feasible")
    steps_axes.scatter(infeasible["label_length"], infeasible["time_steps"], s=12, color="tab:red", label="infeasible")
    longest = int(table["label_length"].max()) if len(table) else 1
    steps_axes.plot([0, longest], [0, longest], color="grey", linestyle=":", label="T = L")
    steps_axes.set(title=f"Time steps (width / {width_downsampling}) vs label length", xlabel="L", ylabel="T")
    steps_axes.legend()
    return figure
