"""The one report shape every audit returns: findings, each with a verdict, and JSON-safe details.

An audit's verdict is the worst of its findings: ``ok`` < ``warning`` < ``problem``. An audit with no finding
is ``ok``. The pipeline saves :meth:`AuditReport.to_dict` as JSON (kedro-viz previews it),
:meth:`AuditReport.to_markdown` as the report people read, and :attr:`AuditReport.figure` where the audit draws
one. An audit that cannot run on a run raises :class:`NotCheckedError`; its report then says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from matplotlib.figure import Figure

Verdict = Literal["ok", "warning", "problem"]
VERDICTS: tuple[Verdict, ...] = ("ok", "warning", "problem")
"""From best to worst."""


def worst_verdict(verdicts: Iterable[Verdict]) -> Verdict:
    return max(verdicts, key=VERDICTS.index, default="ok")


def verdict_at_least(verdict: Verdict, threshold: Verdict) -> bool:
    return VERDICTS.index(verdict) >= VERDICTS.index(threshold)


@dataclass(frozen=True)
class Finding:
    verdict: Verdict
    message: str
    """One sentence a researcher can act on: what is wrong, where, and what to do."""


@dataclass
class AuditReport:
    audit: str
    """Snake-case name: ``config_audit``, ``ctc_length_report``, ... (also the report's file name)."""
    title: str
    findings: list[Finding]
    details: dict[str, Any] = field(default_factory=dict)
    """JSON-safe data behind the findings (tables as lists of records)."""
    markdown_sections: Sequence[str] = ()
    """Markdown blocks (tables, lists) shown under the findings."""
    figure: Figure | None = field(default=None, repr=False, compare=False)
    """The picture saved beside the report (``<audit>.png``), for the audits that draw one."""

    def with_figure(self, figure: Figure) -> AuditReport:
        return replace(self, figure=figure)

    @property
    def verdict(self) -> Verdict:
        return worst_verdict(finding.verdict for finding in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "audit": self.audit,
            "verdict": self.verdict,
            "findings": [asdict(finding) for finding in self.findings],
            **self.details,
        }

    def to_markdown(self) -> str:
        lines = [f"# {self.title}", "", f"**Verdict: {self.verdict}**", ""]
        lines += [f"- **{finding.verdict}**: {finding.message}" for finding in self.findings] or ["- No findings."]
        for section in self.markdown_sections:
            lines += ["", section.rstrip("\n")]
        return "\n".join(lines) + "\n"


class NotCheckedError(Exception):
    """An audit cannot run on this run (no checkpoint, settings that cannot be read back): its report is one
    warning saying why, and the other audits go on. The message is the reason."""


def markdown_table(records: Sequence[dict[str, Any]], columns: Sequence[str], limit: int | None = None) -> str:
    """A markdown table of ``records`` (at most ``limit`` rows, with a line saying how many were left out)."""
    if not records:
        return "(none)"
    shown = records if limit is None else records[:limit]
    rows = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    rows += ["| " + " | ".join(_cell(record.get(column)) for column in columns) + " |" for record in shown]
    if len(shown) < len(records):
        rows.append(f"\n{len(records) - len(shown)} more rows in the JSON report.")
    return "\n".join(rows)


def _cell(value: Any) -> str:
    if value is None:
        return "(absent)"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")
