"""Nodes of diagnostics: find the run and its checkpoint, read clean lines with its recognizer, run one audit of
the registry per node, gather the verdicts."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pandas as pd
from PIL import Image

from htr_pipeline.config import DiagnosticsConfig
from htr_pipeline.data.line_store import LineImageStore
from htr_pipeline.devices import resolve_device
from htr_pipeline.diagnostics.recognizer_readings import LineReading, read_clean_lines, readable_clean_lines
from htr_pipeline.diagnostics.registry import Audit, run_audit
from htr_pipeline.diagnostics.run_inputs import AuditedCheckpoint, find_trained_run
from htr_pipeline.diagnostics.summary import (
    AuditSection,
    audit_section,
    diagnostics_summary,
    failing_audits,
    summary_markdown,
)
from htr_pipeline.evaluation.run import figure_image
from htr_pipeline.tracking import (
    LoggedTrainingRun,
    RunNotFoundError,
    checkpoint_folder_of_run,
    current_tracking_uri,
    latest_training_run_id,
    read_training_run,
)
from htr_pipeline.trained_run import TrainedRun


class DiagnosticsFailedError(Exception):
    """An audit reached ``diagnostics.fail_on``; every report was written before this is raised."""


class AuditedRunNotFoundError(Exception):
    """No run to audit: the message says which run and store were searched, and what to do."""


def find_training_run(config: DiagnosticsConfig) -> LoggedTrainingRun:
    tracking_uri = config.tracking_uri or current_tracking_uri()
    try:
        run = read_training_run(config.run_id or latest_training_run_id(tracking_uri), tracking_uri)
    except RunNotFoundError as error:
        raise AuditedRunNotFoundError(str(error)) from error
    return run


def load_run_checkpoint(run: LoggedTrainingRun, config: DiagnosticsConfig) -> AuditedCheckpoint:
    folder_of_run = partial(
        checkpoint_folder_of_run, config_key="diagnostics.checkpoint", tracking_uri=run.tracking_uri
    )
    return find_trained_run(config.checkpoint, config.checkpoint_name, run.checkpoint_folder, folder_of_run)


def read_lines_with_recognizer(
    checkpoint: AuditedCheckpoint, manifest: pd.DataFrame, line_images: LineImageStore, config: DiagnosticsConfig
) -> list[LineReading]:
    """The checkpoint's recognizer, with the charset it was trained with, on the clean lines of one split."""
    if not isinstance(checkpoint, TrainedRun):
        return []
    return read_clean_lines(
        checkpoint.recognizer,
        readable_clean_lines(manifest, config.split),
        line_images,
        checkpoint.charset,
        resolve_device(config.device, "diagnostics.device"),
        config.batch_size,
    )


def audit_node(audit: Audit) -> Callable[..., tuple[Any, ...]]:
    """The node function of one audit: its inputs by name in, its report as the catalog saves it out (JSON with the
    audited run's id, markdown, and the figure where it draws one, rendered once so the summary can read it back)."""

    def run_one_audit(run: LoggedTrainingRun, **inputs: Any) -> tuple[Any, ...]:
        report = run_audit(audit, {"run": run, **inputs})
        published = ({**report.to_dict(), "audited_run_id": run.run_id}, report.to_markdown())
        return (*published, figure_image(report.figure)) if audit.plot else published

    run_one_audit.__name__ = run_one_audit.__qualname__ = audit.function.__name__
    run_one_audit.__doc__ = audit.function.__doc__
    return run_one_audit


def summarise_audit(report: dict[str, Any], markdown: str, figure: Image.Image | None = None) -> AuditSection:
    """One audit's reports (JSON, markdown, and the figure where it draws one) as its section of the summary."""
    return audit_section(report, markdown, has_figure=figure is not None)


def summarise_diagnostics(run: LoggedTrainingRun, *sections: AuditSection) -> tuple[dict[str, Any], str]:
    """The verdict table, and the page that shows it above every audit's section."""
    summary = diagnostics_summary([section.report for section in sections], run.run_id, run.run_name)
    return summary, summary_markdown(summary, sections)


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
