"""All audits of one run in one table, and the rule that fails the run (``diagnostics.fail_on``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from htr_pipeline.diagnostics.verdicts import Verdict, markdown_table, verdict_at_least, worst_verdict


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


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """The summary table, each audit linked to its own report (a sibling file, here and in MLflow)."""
    rows = [{**row, "audit": f"[{row['audit']}]({row['audit']}.md)"} for row in summary["audits"]]
    lines = [
        f"# Diagnostics of run `{summary['run_id']}` ({summary['run_name']})",
        "",
        f"**Overall verdict: {summary['verdict']}**",
        "",
        markdown_table(rows, ["audit", "verdict", "findings", "headline"]),
        "",
        "Each audit's full report is saved as `data/08_reporting/diagnostics/<audit>.md/<version>/<audit>.md` "
        "(and `.json`, `.png` the same way; `<version>` is this run's, the folder this summary is in), and logged "
        "to the diagnostics run in MLflow under `diagnostics/`.",
    ]
    return "\n".join(lines) + "\n"


def failing_audits(summary: Mapping[str, Any], fail_on: Verdict | None) -> list[str]:
    """The audits whose verdict reaches ``fail_on`` (none when it is None)."""
    if fail_on is None:
        return []
    return [row["audit"] for row in summary["audits"] if verdict_at_least(row["verdict"], fail_on)]
