"""The audits registry: one entry per audit, checked against its function when it is made, and the one place an
audit that cannot run becomes a report saying why."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from htr_pipeline.diagnostics.registry import AUDIT_INPUTS, AUDITS, Audit, register_audit, run_audit
from htr_pipeline.diagnostics.verdicts import AuditReport, Finding, NotCheckedError


def counted(manifest: list[str], diagnostics: int) -> AuditReport:
    return AuditReport("counted", "Counted", [Finding("ok", f"{len(manifest)} lines, threshold {diagnostics}")])


def test_every_registered_audit_is_named_once_and_reads_known_inputs():
    names = [audit.name for audit in AUDITS]
    assert len(names) == len(set(names)) == 8
    assert all(set(audit.inputs) <= set(AUDIT_INPUTS) for audit in AUDITS)


def test_an_entry_whose_inputs_are_not_its_functions_parameters_stops_at_once():
    with pytest.raises(TypeError, match=r"audit 'counted': inputs \['diagnostics', 'manifest'\] do not match"):
        Audit("counted", "Counted", counted, ("diagnostics", "manifest"))
    with pytest.raises(TypeError, match=r"unknown inputs: \['lines'\]"):
        Audit("counted", "Counted", lambda lines: None, ("lines",))


def test_a_name_is_registered_once():
    with pytest.raises(ValueError, match="an audit named 'best_model' is already registered"):
        register_audit(Audit("best_model", "Counted", counted, ("manifest", "diagnostics")))


def test_the_inputs_are_handed_by_name_and_the_report_checked_against_the_entry():
    audit = Audit("counted", "Counted", counted, ("manifest", "diagnostics"))
    report = run_audit(audit, {"diagnostics": 3, "manifest": ["a", "b"], "run": "unused"})
    assert report.findings == [Finding("ok", "2 lines, threshold 3")] and report.figure is None
    with pytest.raises(TypeError, match=r"audit 'counted' returned the report of 'counted', without a figure"):
        run_audit(
            Audit("counted", "Counted", counted, ("manifest", "diagnostics"), plot=True),
            {"manifest": [], "diagnostics": 0},
        )
    misnamed = Audit("other", "Other", counted, ("manifest", "diagnostics"))
    with pytest.raises(TypeError, match="audit 'other' returned the report of 'counted'"):
        run_audit(misnamed, {"manifest": [], "diagnostics": 0})


def test_an_audit_that_cannot_run_reports_why_with_a_figure_where_it_draws_one():
    def needs_a_checkpoint(checkpoint: object) -> AuditReport:
        raise NotCheckedError("the run has no checkpoint folder tag")

    report = run_audit(
        Audit("drawn", "Drawn audit", needs_a_checkpoint, ("checkpoint",), plot=True), {"checkpoint": None}
    )
    assert (report.audit, report.title, report.verdict) == ("drawn", "Drawn audit", "warning")
    assert report.findings == [Finding("warning", "not checked: the run has no checkpoint folder tag")]
    assert isinstance(report.figure, Figure)
    assert "not checked: the run has no checkpoint folder tag" in [text.get_text() for text in report.figure.texts][1]
