"""Nodes of diagnostics: find the run, call one audit of the diagnostics library each, return data."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import click
import pandas as pd
from matplotlib.figure import Figure

from htr_pipeline.charset import Charset
from htr_pipeline.config import DataConfig, DiagnosticsConfig, TrainingConfig
from htr_pipeline.data.line_store import LineImageStore
from htr_pipeline.devices import resolve_device
from htr_pipeline.diagnostics.best_model import best_model_report, history_table, plot_metric_history
from htr_pipeline.diagnostics.charset_coverage import charset_coverage_report, plot_charset_coverage
from htr_pipeline.diagnostics.config_audit import audit_run_config
from htr_pipeline.diagnostics.ctc_lengths import ctc_length_report, plot_ctc_lengths
from htr_pipeline.diagnostics.gradient_spikes import gradient_spike_report, plot_gradient_spikes
from htr_pipeline.diagnostics.label_convention import label_convention_report
from htr_pipeline.diagnostics.recognizer_readability import recognizer_readability_report
from htr_pipeline.diagnostics.recognizer_readings import LineReading, read_clean_lines, readable_clean_lines
from htr_pipeline.diagnostics.run_inputs import (
    RunCheckpoint,
    existing_checkpoints,
    find_run_checkpoint,
    run_flag,
    run_setting,
)
from htr_pipeline.diagnostics.split_hygiene import plot_split_hygiene, split_hygiene_report
from htr_pipeline.diagnostics.summary import diagnostics_summary, failing_audits, summary_markdown
from htr_pipeline.diagnostics.verdicts import AuditReport, Finding
from htr_pipeline.tracking import (
    RunNotFoundError,
    TrainingRunRecord,
    checkpoint_folder_of_run,
    current_tracking_uri,
    latest_training_run_id,
    read_training_run,
)
from htr_pipeline.trained_run import TrainedRun

AUDITED_SECTIONS = ("data", "training")
"""What a training run depends on; the evaluation and diagnostics sections may change freely."""


class DiagnosticsFailedError(click.ClickException):
    """An audit reached ``diagnostics.fail_on``; every report was written before this is raised."""


class AuditedRunNotFoundError(click.ClickException):
    """No run to audit: the message says which run and store were searched, and what to do."""


def find_training_run(config: DiagnosticsConfig) -> TrainingRunRecord:
    tracking_uri = config.tracking_uri or current_tracking_uri()
    try:
        run = read_training_run(config.run_id or latest_training_run_id(tracking_uri), tracking_uri)
    except RunNotFoundError as error:
        raise AuditedRunNotFoundError(str(error)) from error
    return run


def load_run_checkpoint(run: TrainingRunRecord, config: DiagnosticsConfig) -> RunCheckpoint:
    folder_of_run = partial(
        checkpoint_folder_of_run, config_key="diagnostics.checkpoint", tracking_uri=run.tracking_uri
    )
    return find_run_checkpoint(config.checkpoint, config.checkpoint_name, run.checkpoint_folder, folder_of_run)


def read_lines_with_recognizer(
    checkpoint: RunCheckpoint, manifest: pd.DataFrame, line_images: LineImageStore, config: DiagnosticsConfig
) -> list[LineReading]:
    """The checkpoint's recognizer, with the charset it was trained with, on the clean lines of one split."""
    if checkpoint.state is None:
        return []
    charset = checkpoint.charset
    path = Path(str(checkpoint.path))
    recognizer = TrainedRun.from_recognizer_checkpoint(checkpoint.recognizer_checkpoint(), path).recognizer
    return read_clean_lines(
        recognizer,
        readable_clean_lines(manifest, config.split),
        line_images,
        charset,
        resolve_device(config.device, "diagnostics.device"),
        config.batch_size,
    )


# ------------------------------------------------------------------------------------------------ audits


def audit_config(
    run: TrainingRunRecord, checkpoint: RunCheckpoint, data: DataConfig, training: TrainingConfig
) -> tuple[dict[str, Any], str]:
    current = {"data": data.model_dump(mode="json"), "training": training.model_dump(mode="json")}
    report = audit_run_config(run.params, run.run_id, current, checkpoint.config, AUDITED_SECTIONS)
    return _published(run, report)[:2]


def audit_ctc_lengths(
    run: TrainingRunRecord, checkpoint: RunCheckpoint, readings: list[LineReading], manifest: pd.DataFrame
) -> tuple[dict[str, Any], str, Figure]:
    width_downsampling = int(run_setting(checkpoint, run.params, "training.recognizer.width_downsampling"))
    drop_infeasible = run_flag(checkpoint, run.params, "training.drop_infeasible")
    pretraining_losses = run.metric_history.get("recognizer/train_ctc_loss")
    num_classes = checkpoint.charset.num_classes if checkpoint.charset else 0
    report = ctc_length_report(
        manifest,
        width_downsampling,
        drop_infeasible,
        readings if checkpoint.state is not None else None,
        num_classes,
        pretraining_losses[-1][1] if pretraining_losses else None,
    )
    return _published(run, report, plot_ctc_lengths(manifest, width_downsampling, readings))


def audit_label_convention(
    run: TrainingRunRecord, checkpoint: RunCheckpoint, readings: list[LineReading], config: DiagnosticsConfig
) -> tuple[dict[str, Any], str]:
    if checkpoint.state is None:
        report = _not_checked("label_convention", "Label convention", checkpoint)
    else:
        report = label_convention_report(
            [reading.logits for reading in readings],
            [reading.reference for reading in readings],
            checkpoint.charset,
            config.label_convention_margin,
        )
    return _published(run, report)[:2]


def audit_charset_coverage(
    run: TrainingRunRecord, manifest: pd.DataFrame, charset: Charset, config: DiagnosticsConfig
) -> tuple[dict[str, Any], str, Figure]:
    report = charset_coverage_report(manifest, charset, config.rare_symbol_count)
    return _published(run, report, plot_charset_coverage(manifest, charset, config.rare_symbol_count))


def audit_gradient_spikes(
    run: TrainingRunRecord, checkpoint: RunCheckpoint, config: DiagnosticsConfig
) -> tuple[dict[str, Any], str, Figure]:
    precision = run_setting(checkpoint, run.params, "training.precision") or "fp32"
    report = gradient_spike_report(run.gradient_reports, config.gradient_problem_factor, precision)
    return _published(run, report, plot_gradient_spikes(run.gradient_reports))


def audit_best_model(run: TrainingRunRecord, checkpoint: RunCheckpoint) -> tuple[dict[str, Any], str, Figure]:
    validation_history = {metric: points for metric, points in run.metric_history.items() if metric.startswith("val/")}
    table = history_table(validation_history)
    cer_weight = float(run_setting(checkpoint, run.params, "training.combined_cer_weight"))
    report = best_model_report(table, cer_weight, existing_checkpoints(run.checkpoint_folder))
    return _published(run, report, plot_metric_history(table, cer_weight))


def audit_split_hygiene(
    run: TrainingRunRecord, manifest: pd.DataFrame, line_images: LineImageStore, config: DiagnosticsConfig
) -> tuple[dict[str, Any], str, Figure]:
    report = split_hygiene_report(
        manifest, line_images, config.near_duplicate_hash_size, config.near_duplicate_max_distance
    )
    return _published(run, report, plot_split_hygiene(report.details))


def audit_recognizer_readability(
    run: TrainingRunRecord, config: DiagnosticsConfig, training: TrainingConfig
) -> tuple[dict[str, Any], str]:
    # Judged by the project's gate as it is now, whatever the run was trained with: runs made before the gate
    # existed logged none, and a run trained with the gate opened is no more readable for it.
    max_val_cer = training.recognizer_pretraining.max_val_cer
    report = recognizer_readability_report(
        run.metric_history, max_val_cer, run.evaluation_summary, config.judge_gain_margin
    )
    as_json, markdown, _ = _published(run, report)
    return as_json, markdown


def summarise_diagnostics(run: TrainingRunRecord, *reports: dict[str, Any]) -> tuple[dict[str, Any], str]:
    summary = diagnostics_summary(reports, run.run_id, run.run_name)
    markdown = summary_markdown(summary)
    return summary, markdown


def fail_on_verdicts(summary: dict[str, Any], config: DiagnosticsConfig) -> None:
    """Runs after the summary is saved, so a failing run still leaves every report behind."""
    failing = failing_audits(summary, config.fail_on)
    if failing:
        headlines = {row["audit"]: row["headline"] for row in summary["audits"]}
        raise DiagnosticsFailedError(
            f"diagnostics.fail_on is '{config.fail_on}' and these audits reached it: {', '.join(failing)}. "
            + " ".join(f"[{audit}] {headlines[audit]}" for audit in failing)
            + " Their reports are in data/08_reporting/diagnostics/ (start with summary.md/<version>/summary.md); set "
            "diagnostics.fail_on: null to only report."
        )


def _published(
    run: TrainingRunRecord, report: AuditReport, figure: Figure | None = None
) -> tuple[dict[str, Any], str, Figure | None]:
    """The report as the catalog saves it (and the run record hook logs it)."""
    return {**report.to_dict(), "audited_run_id": run.run_id}, report.to_markdown(), figure


def _not_checked(audit: str, title: str, checkpoint: RunCheckpoint) -> AuditReport:
    return AuditReport(audit, title, [Finding("warning", f"not checked: {checkpoint.missing_reason}")])
