"""The audits by name: one registry entry per audit, its function, the inputs it reads, whether it draws a plot.

The diagnostics pipeline is built from :data:`AUDITS`, in this order: one node per audit that hands the function
its inputs by name and saves ``diagnostics.<name>.json`` and ``diagnostics.<name>.markdown`` (and
``diagnostics.<name>.plot`` when ``plot``); the summary reads each audit's reports. A new audit is one module in
``diagnostics/`` (its ``NAME``, ``TITLE`` and function) and one line below; :func:`register_audit` adds one from
outside the package. An entry whose function does not take exactly its inputs, by name and in order, stops the
import, naming the audit.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from matplotlib.figure import Figure

from htr_pipeline.diagnostics import (
    best_model,
    charset_coverage,
    config_audit,
    ctc_lengths,
    gradient_spikes,
    label_convention,
    recognizer_readability,
    split_hygiene,
)
from htr_pipeline.diagnostics.verdicts import AuditReport, Finding, NotCheckedError

AuditInput = Literal[
    "run", "checkpoint", "readings", "manifest", "line_images", "charset", "data", "training", "diagnostics"
]
"""What an audit can read: the audited run's MLflow record (``run_inputs.AuditedRun``), its checkpoint (a
``TrainedRun``, or ``MissingCheckpoint``), the checkpoint's recognizer's readings of clean lines (``LineReading``),
the ingested ``manifest``, ``line_images`` and ``charset``, and the validated ``data``, ``training`` and
``diagnostics`` sections."""
AUDIT_INPUTS: tuple[AuditInput, ...] = typing.get_args(AuditInput)


@dataclass(frozen=True)
class Audit:
    name: str
    """Snake case: the reports' file names (``<name>.json``, ``.md``, ``.png``) and the summary's row."""
    title: str
    """The heading of its report (also when it could not be checked)."""
    function: Callable[..., AuditReport]
    """Takes ``inputs`` as keyword arguments; returns the report (with its figure when ``plot``), or raises
    :class:`~htr_pipeline.diagnostics.verdicts.NotCheckedError` with the reason it cannot run."""
    inputs: tuple[AuditInput, ...]
    plot: bool = False

    def __post_init__(self) -> None:
        unknown = [name for name in self.inputs if name not in AUDIT_INPUTS]
        parameters = list(inspect.signature(self.function).parameters)
        if unknown or parameters != list(self.inputs):
            raise TypeError(
                f"audit '{self.name}': inputs {list(self.inputs)} do not match its function "
                f"{self.function.__name__}{tuple(parameters)} (unknown inputs: {unknown}; the inputs an audit can "
                f"read: {', '.join(AUDIT_INPUTS)})"
            )


AUDITS: list[Audit] = [
    Audit(
        config_audit.NAME,
        config_audit.TITLE,
        config_audit.audit_config,
        ("run", "checkpoint", "data", "training"),
    ),
    Audit(
        ctc_lengths.NAME,
        ctc_lengths.TITLE,
        ctc_lengths.audit_ctc_lengths,
        ("run", "checkpoint", "readings", "manifest"),
        plot=True,
    ),
    Audit(
        label_convention.NAME,
        label_convention.TITLE,
        label_convention.audit_label_convention,
        ("checkpoint", "readings", "diagnostics"),
    ),
    Audit(
        charset_coverage.NAME,
        charset_coverage.TITLE,
        charset_coverage.audit_charset_coverage,
        ("manifest", "charset", "diagnostics"),
        plot=True,
    ),
    Audit(
        gradient_spikes.NAME,
        gradient_spikes.TITLE,
        gradient_spikes.audit_gradient_spikes,
        ("run", "checkpoint", "diagnostics"),
        plot=True,
    ),
    Audit(best_model.NAME, best_model.TITLE, best_model.audit_best_model, ("run", "checkpoint"), plot=True),
    Audit(
        split_hygiene.NAME,
        split_hygiene.TITLE,
        split_hygiene.audit_split_hygiene,
        ("manifest", "line_images", "diagnostics"),
        plot=True,
    ),
    Audit(
        recognizer_readability.NAME,
        recognizer_readability.TITLE,
        recognizer_readability.audit_recognizer_readability,
        ("run", "diagnostics", "training"),
    ),
]
"""Every audit the diagnostics pipeline runs, in the order of the summary."""


def register_audit(audit: Audit) -> None:
    """Add an audit after those of this package; a name already taken is an error."""
    if audit.name in {known.name for known in AUDITS}:
        raise ValueError(f"an audit named '{audit.name}' is already registered")
    AUDITS.append(audit)


def run_audit(audit: Audit, inputs: Mapping[str, Any]) -> AuditReport:
    """The audit's report on ``inputs`` (its inputs by name). An audit that cannot run gives one warning saying
    why, and a figure saying so where it draws one."""
    try:
        report = audit.function(**{name: inputs[name] for name in audit.inputs})
    except NotCheckedError as reason:
        figure = _not_checked_figure(audit.title, str(reason)) if audit.plot else None
        return AuditReport(audit.name, audit.title, [Finding("warning", f"not checked: {reason}")], figure=figure)
    if report.audit != audit.name or (report.figure is not None) != audit.plot:
        raise TypeError(
            f"audit '{audit.name}' returned the report of '{report.audit}', "
            f"{'with' if report.figure is not None else 'without'} a figure (registered with plot={audit.plot})"
        )
    return report


def _not_checked_figure(title: str, reason: str) -> Figure:
    figure = Figure(figsize=(8, 2))
    figure.text(0.02, 0.8, title, fontsize=12, weight="bold")
    figure.text(0.02, 0.7, f"not checked: {reason}", fontsize=9, wrap=True, verticalalignment="top")
    return figure
