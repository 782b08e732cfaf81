"""All audits of one run in one table, and the rule that fails the run (``diagnostics.fail_on``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from htr_pipeline.diagnostics.verdicts import Verdict, markdown_table, verdict_at_least, worst_verdict


@dataclass(frozen=True)
class AuditSection:
    """One audit's part of the summary: its JSON report (the verdict table's row) and its markdown report as a
    section of the summary page (:func:`audit_section`)."""

    report: Mapping[str, Any]
    markdown: str


def diagnostics_summary(reports: Sequence[Mapping[str, Any]], run_id: str, run_name: str) -> dict[str, Any]:
    """The verdict of each audit (from its JSON report), the worst one, and each audit's first finding."""
    rows = [
        {
            "audit": report["audit"],
            "verdict": report["verdict"],
            "findings": len(report["findings"]),
            "headline": _headline(report),
        }
        for report in reports
    ]
    return {
        "run_id": run_id,
        "run_name": run_name,
        "verdict": worst_verdict(row["verdict"] for row in rows),
        "audits": rows,
    }


def _headline(report: Mapping[str, Any]) -> str:
    """The first of the audit's worst findings."""
    worst = report["verdict"]
    return next(finding["message"] for finding in report["findings"] if finding["verdict"] == worst)


def summary_markdown(summary: Mapping[str, Any], sections: Sequence[AuditSection]) -> str:
    """The summary table, each audit linked to its own report (a sibling file, here and in MLflow), then each
    audit's section in the table's order: one page holds every finding."""
    rows = [{**row, "audit": f"[{row['audit']}]({row['audit']}.md)"} for row in summary["audits"]]
    lines = [
        f"# Diagnostics of run `{summary['run_id']}` ({summary['run_name']})",
        "",
        f"**Overall verdict: {summary['verdict']}**",
        "",
        markdown_table(rows, ["audit", "verdict", "findings", "headline"]),
        "",
        "Each audit's report follows. It is also saved on its own as "
        "`data/08_reporting/diagnostics/<audit>.md/<version>/<audit>.md` (and `.json`, `.png` the same way; "
        "`<version>` is this run's, the folder this summary is in), and logged to the diagnostics run in MLflow "
        "under `diagnostics/`.",
    ]
    markdown_of = {section.report["audit"]: section.markdown for section in sections}
    lines += ["", "\n\n".join(markdown_of[row["audit"]] for row in summary["audits"])]
    return "\n".join(lines) + "\n"


def audit_section(report: Mapping[str, Any], report_markdown: str, has_figure: bool) -> AuditSection:
    """An audit's reports as a section of the summary: its markdown with headings one level down, and its figure
    (the sibling ``<audit>.png``) below it when it draws one."""
    lines, in_code = [], False
    for line in report_markdown.rstrip("\n").splitlines():
        in_code = in_code != line.startswith("```")
        lines.append("#" + line if not in_code and line.startswith("#") else line)
    if has_figure:
        lines += ["", f"![{report['audit']}]({report['audit']}.png)"]
    return AuditSection(report, "\n".join(lines))


def failing_audits(summary: Mapping[str, Any], fail_on: Verdict | None) -> list[str]:
    """The audits whose verdict reaches ``fail_on`` (none when it is None)."""
    if fail_on is None:
        return []
    return [row["audit"] for row in summary["audits"] if verdict_at_least(row["verdict"], fail_on)]
