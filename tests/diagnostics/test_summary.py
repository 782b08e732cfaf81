"""The verdict table of all audits, and which audits reach diagnostics.fail_on."""

import pytest

from htr_pipeline.diagnostics.summary import audit_section, diagnostics_summary, failing_audits, summary_markdown
from htr_pipeline.diagnostics.verdicts import AuditReport, Finding, worst_verdict


def _audit_reports() -> list[AuditReport]:
    return [
        AuditReport("config_audit", "Config", [Finding("ok", "all 80 logged params match")]),
        AuditReport(
            "best_model",
            "Best",
            [Finding("ok", "fine"), Finding("warning", "criteria disagree"), Finding("warning", "x")],
        ),
        AuditReport("split_hygiene", "Splits", [Finding("problem", "group w1 in train and valid")]),
    ]


def _reports() -> list[dict]:
    return [report.to_dict() for report in _audit_reports()]


def test_the_summary_keeps_each_verdict_and_the_first_worst_finding():
    summary = diagnostics_summary(_reports(), "abc123", "data_ingestion+training")
    assert summary["verdict"] == "problem"
    assert [(row["audit"], row["verdict"], row["findings"]) for row in summary["audits"]] == [
        ("config_audit", "ok", 1),
        ("best_model", "warning", 3),
        ("split_hygiene", "problem", 1),
    ]
    assert summary["audits"][1]["headline"] == "criteria disagree"
    sections = [
        audit_section(report.to_dict(), report.to_markdown(), has_figure=report.audit != "config_audit")
        for report in _audit_reports()
    ]
    markdown = summary_markdown(summary, sections)
    assert "| [split_hygiene](split_hygiene.md) | problem | 1 | group w1 in train and valid |" in markdown
    # Below the table, every audit's report in the table's order, one heading level down, with its figure.
    assert markdown.index("\n## Config\n") < markdown.index("\n## Best\n") < markdown.index("\n## Splits\n")
    assert markdown.count("\n# ") == 0 and markdown.startswith("# Diagnostics of run `abc123`")
    assert "![best_model](best_model.png)" in markdown and "config_audit.png" not in markdown


def test_an_audit_section_keeps_code_blocks_as_they_are():
    report = "# Title\n\n**Verdict: ok**\n\n## Table\n\n```\n# not a heading\n```\n"
    section = audit_section({"audit": "a"}, report, has_figure=False)
    assert section.markdown == "## Title\n\n**Verdict: ok**\n\n### Table\n\n```\n# not a heading\n```"


@pytest.mark.parametrize(
    ("fail_on", "failing"),
    [(None, []), ("problem", ["split_hygiene"]), ("warning", ["best_model", "split_hygiene"])],
)
def test_fail_on_names_the_audits_that_reach_it(fail_on, failing):
    assert failing_audits(diagnostics_summary(_reports(), "abc123", "training"), fail_on) == failing


def test_an_audit_without_findings_is_ok():
    assert AuditReport("a", "A", []).verdict == "ok"
    assert worst_verdict(["ok", "warning", "ok"]) == "warning"
