"""A comparison as tables: markdown to read, CSV to analyse, LaTeX (booktabs) to include in a paper, plain data
for JSON, and the few lines the terminal shows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from htr_pipeline.diagnostics.verdicts import markdown_table
from htr_pipeline.experiments.comparison import (
    Comparison,
    ConfigurationRow,
    ProtocolRow,
    RunRow,
    SeedSpread,
    describe_baseline,
)
from htr_pipeline.experiments.figures import Interval, Statistic
from htr_pipeline.experiments.plots import plot_cer_against_psnr, plot_validation_curves
from htr_pipeline.run_summary import EXCLUDES_ZERO_MARK

LATEX_EXCLUDES_ZERO_MARK = r"\textsuperscript{\dag}"
NOT_PAIRED = "not paired"


def _number(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def interval_text(interval: Interval | None, digits: int, signed: bool = False) -> str:
    if interval is None:
        return "n/a"
    spec = f"{'+' if signed else ''}.{digits}f"
    if interval.excludes_zero and f"{max(abs(interval.ci_low), abs(interval.ci_high)):.{digits}f}" == f"{0:.{digits}f}":
        spec = f"{'+' if signed else ''}.1e"  # nonzero yet below the shown digits: say how small, not "0.0000"
    return f"{interval.estimate:{spec}} [{interval.ci_low:{spec}}, {interval.ci_high:{spec}}]"


def _difference_text(row: RunRow | ConfigurationRow, figure: Statistic, mark: str) -> str:
    if row.is_baseline:
        return "baseline"
    if row.unpaired:
        return NOT_PAIRED
    difference = row.differences.get(figure.name)
    text = interval_text(difference, figure.digits, signed=True)
    return f"{text} {mark}" if difference is not None and difference.excludes_zero else text


def _spread_text(spread: SeedSpread | None, digits: int) -> str:
    if spread is None:
        return "n/a"
    if spread.sd is None:
        return f"{spread.mean:.{digits}f}"
    return f"{spread.mean:.{digits}f} ± {spread.sd:.{digits}f} ({spread.low:.{digits}f}-{spread.high:.{digits}f})"


# ------------------------------------------------------------------------------------------------ plain data


def _interval_data(interval: Interval | None) -> dict[str, Any] | None:
    return None if interval is None else {**interval.as_dict(), "excludes_zero": interval.excludes_zero}


def comparison_summary(comparison: Comparison) -> dict[str, Any]:
    """Everything of the comparison as JSON types: what the summary file, MLflow and the run summary read."""
    return {
        "baseline_run_id": comparison.baseline.run_id,
        "compared_run_ids": [row.run.run_id for row in comparison.rows],
        "baseline": describe_baseline(comparison),
        "split": comparison.split,
        "lines": comparison.lines,
        "headline_recognizer": comparison.headline_recognizer,
        "bootstrap_resamples": comparison.bootstrap.resamples,
        "bootstrap_seed": comparison.bootstrap.seed,
        "confidence_level": comparison.bootstrap.confidence,
        "figures": [figure.name for figure in comparison.figures],
        "runs": [
            {
                "run_id": row.run.run_id,
                "label": row.run.label,
                "baseline": row.is_baseline,
                "paired_with": row.paired_with.run_id,
                "configuration": row.run.configuration,
                "seed": row.run.seed,
                "settings": {key: {"baseline": before, "run": after} for key, (before, after) in row.settings.items()},
                "figures": {name: _interval_data(value) for name, value in row.figures.items()},
                "differences": {name: _interval_data(value) for name, value in row.differences.items()},
                "unpaired": row.unpaired,
            }
            for row in comparison.rows
        ],
        "configurations": [
            {
                "configuration": row.configuration,
                "label": row.label,
                "baseline": row.is_baseline,
                "seeds": row.seeds,
                "run_ids": [run.run_id for run in row.runs],
                "figures": {
                    name: None if spread is None else vars(spread).copy() for name, spread in row.figures.items()
                },
                "differences": {name: _interval_data(value) for name, value in row.differences.items()},
                "difference_seed_sd": dict(row.difference_sd),
                "unpaired": row.unpaired,
            }
            for row in comparison.configurations
        ],
        "protocol": {
            run_id: [
                {
                    "lines": row.lines,
                    "recognizer": row.recognizer,
                    "reader": row.reader,
                    "cer": _interval_data(row.cer),
                    "wer": _interval_data(row.wer),
                    "note": row.note,
                }
                for row in rows
            ]
            for run_id, rows in comparison.protocol.items()
        },
    }


def comparison_frame(comparison: Comparison) -> pd.DataFrame:
    """One row per run, every number in its own column (CSV)."""
    records = []
    for row in comparison.rows:
        record: dict[str, Any] = {
            "run": row.run.label,
            "run_id": row.run.run_id,
            "baseline": row.is_baseline,
            "paired_with": row.paired_with.run_id,
            "configuration": row.run.configuration_label,
            "seed": row.run.seed,
            "settings_vs_baseline": row.settings_text,
            "not_paired_because": row.unpaired,
        }
        for figure in comparison.figures:
            value, difference = row.figures.get(figure.name), row.differences.get(figure.name)
            for suffix, number in (
                ("", value and value.estimate),
                ("_ci_low", value and value.ci_low),
                ("_ci_high", value and value.ci_high),
                ("_difference", difference and difference.estimate),
                ("_difference_ci_low", difference and difference.ci_low),
                ("_difference_ci_high", difference and difference.ci_high),
            ):
                record[f"{figure.name}{suffix}"] = number
            record[f"{figure.name}_difference_excludes_zero"] = None if difference is None else difference.excludes_zero
        records.append(record)
    return pd.DataFrame(records)


# ------------------------------------------------------------------------------------------------- markdown


def _run_records(comparison: Comparison) -> list[dict[str, str]]:
    records = []
    for row in comparison.rows:
        record = {"run": row.run.label, "settings that differ": row.settings_text}
        for figure in comparison.figures:
            record[figure.label] = interval_text(row.figures.get(figure.name), figure.digits)
            record[f"Δ {figure.label}"] = _difference_text(row, figure, EXCLUDES_ZERO_MARK)
        records.append(record)
    return records


def _configuration_records(comparison: Comparison) -> list[dict[str, str]]:
    records = []
    for row in comparison.configurations:
        record = {"configuration": row.label, "seeds": ", ".join(str(seed) for seed in row.seeds)}
        for figure in comparison.figures:
            record[f"{figure.label} (mean ± sd over seeds)"] = _spread_text(row.figures.get(figure.name), figure.digits)
            sd = row.difference_sd.get(figure.name)
            spread = "" if sd is None else f"; seeds sd {sd:.{figure.digits}f}"
            record[f"Δ {figure.label}"] = _difference_text(row, figure, EXCLUDES_ZERO_MARK) + spread
        records.append(record)
    return records


def _protocol_records(rows: Sequence[ProtocolRow]) -> list[dict[str, str]]:
    return [
        {
            "lines": row.lines,
            "read by": row.reader,
            "CER": row.note if row.cer is None else interval_text(row.cer, 4),
            "WER": row.note if row.wer is None else interval_text(row.wer, 4),
        }
        for row in rows
    ]


def markdown_report(comparison: Comparison, figure_files: Sequence[tuple[str, str]] = ()) -> str:
    """The comparison to read: what was compared and how, the table, seeds, the protocol, the plots."""
    settings = comparison.bootstrap
    percent = f"{100 * settings.confidence:g}%"
    runs_table = _run_records(comparison)
    lines = [
        "# Comparison of runs",
        "",
        f"- Baseline: {describe_baseline(comparison)}",
        f"- Test lines: {comparison.lines} lines of split `{comparison.split}`, read by the "
        f"`{comparison.headline_recognizer}` recognizer of each run.",
        f"- Figures: corpus CER and WER (total edits / total reference length) and mean PSNR and SSIM of the "
        f"restored lines, each with its {percent} bootstrap interval over lines.",
        f"- Δ: the run minus its baseline, with a {percent} **paired** bootstrap interval: {settings.resamples} "
        f"resamples of the test lines (seed {settings.seed}), the same lines for both runs, each rate recomputed "
        f"as a corpus ratio on every resample. {EXCLUDES_ZERO_MARK}: the interval excludes 0.",
        "- Settings that differ come from the validated config each run logged.",
        "",
        "## Runs",
        "",
        markdown_table(runs_table, list(runs_table[0])),
        "",
    ]
    unpaired = [row for row in comparison.rows if row.unpaired]
    if unpaired:
        lines += ["Not paired with the baseline (no difference is shown for them):", ""]
        lines += [f"- {row.unpaired}" for row in unpaired] + [""]
    if comparison.configurations:
        records = _configuration_records(comparison)
        lines += [
            "## Configurations over seeds",
            "",
            "Each configuration's figures over its seeds (mean ± standard deviation, min-max), and its difference to "
            "the baseline configuration: the mean over seeds of the per-seed differences, with the paired bootstrap "
            "interval over lines (each resample averaged over the seeds) and, beside it, the standard deviation of "
            "the per-seed differences (the spread training itself adds).",
            "",
            markdown_table(records, list(records[0])),
            "",
        ]
    lines += [
        "## GAN-HTR protocol",
        "",
        "Each run's lines as each recognizer reads them (corpus CER and WER with their intervals): clean and "
        "degraded lines by the recognizer trained on clean lines, degraded lines by the degraded-trained baseline, "
        "restored lines by the in-loop recognizer and by the judge.",
        "",
    ]
    for row in comparison.rows:
        records = _protocol_records(comparison.protocol[row.run.run_id])
        lines += [f"### {row.run.label}", "", markdown_table(records, list(records[0])), ""]
    if figure_files:
        lines += ["## Plots", ""]
        lines += [f"![{title}]({file})" for title, file in figure_files]
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- LaTeX

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "†": LATEX_EXCLUDES_ZERO_MARK,
    "->": r"$\rightarrow$",
}


def latex_text(text: str) -> str:
    """``text`` as LaTeX source: specials escaped, the few symbols we print spelt as LaTeX commands (ASCII only,
    so pdflatex with its default fonts typesets it)."""
    escaped, position = [], 0
    while position < len(text):
        for special, replacement in _LATEX_SPECIALS.items():
            if text.startswith(special, position):
                escaped.append(replacement)
                position += len(special)
                break
        else:
            escaped.append(text[position])
            position += 1
    return "".join(escaped)


def _latex_table(records: list[dict[str, str]], caption: str, label: str) -> str:
    frame = pd.DataFrame(records)
    frame.columns = [latex_text(str(column)) for column in frame.columns]
    frame = frame.map(lambda cell: latex_text(str(cell)))
    return frame.to_latex(
        index=False, escape=False, caption=caption, label=label, column_format="l" * len(frame.columns)
    )


def latex_tables(comparison: Comparison) -> str:
    """The runs table, the configurations table (with seeds) and the GAN-HTR protocol as ``booktabs`` tables:
    ``\\usepackage{booktabs}`` and ``\\input`` the file."""
    percent = f"{100 * comparison.bootstrap.confidence:g}\\%"
    note = (
        f"{comparison.lines} test lines read by the {latex_text(comparison.headline_recognizer)} recognizer; "
        f"{percent} bootstrap intervals over lines ({comparison.bootstrap.resamples} resamples); $\\Delta$: "
        f"difference to the baseline, paired over the same lines; {LATEX_EXCLUDES_ZERO_MARK}: the interval "
        "excludes 0."
    )
    tables = [
        "% Generated by htr-pipeline's comparison. Needs \\usepackage{booktabs}.",
        _latex_table(
            _run_records(comparison), f"Runs against {latex_text(describe_baseline(comparison))}. {note}", "tab:runs"
        ),
    ]
    if comparison.configurations:
        tables.append(
            _latex_table(
                _configuration_records(comparison),
                f"Configurations over seeds: mean $\\pm$ sd (min-max) over seeds. {note}",
                "tab:configurations",
            )
        )
    protocol = [
        {"run": row.run.label, **record}
        for row in comparison.rows
        for record in _protocol_records(comparison.protocol[row.run.run_id])
    ]
    tables.append(
        _latex_table(
            protocol,
            f"GAN-HTR protocol: corpus CER and WER by line kind and recognizer, {percent} bootstrap intervals.",
            "tab:protocol",
        )
    )
    return "\n".join(tables)


# ------------------------------------------------------------------------------------------------ all of it

VALIDATION_CURVES_FILE = "comparison_validation_curves.png"
CER_AGAINST_PSNR_FILE = "comparison_cer_against_psnr.png"
"""The pictures' file names in the catalog: the report links them by these names."""


@dataclass(frozen=True)
class ComparisonOutputs:
    summary: dict[str, Any]
    report: str
    table: pd.DataFrame
    latex: str
    validation_curves: Figure
    cer_against_psnr: Figure


def comparison_outputs(comparison: Comparison) -> ComparisonOutputs:
    """Every output of a comparison: summary (JSON), report (markdown), table (CSV), LaTeX, two pictures."""
    runs = [row.run for row in comparison.rows]
    return ComparisonOutputs(
        summary=comparison_summary(comparison),
        report=markdown_report(
            comparison,
            [
                ("Validation CER and PSNR by epoch, every run", VALIDATION_CURVES_FILE),
                ("CER against PSNR per run", CER_AGAINST_PSNR_FILE),
            ],
        ),
        table=comparison_frame(comparison),
        latex=latex_tables(comparison),
        validation_curves=plot_validation_curves(runs),
        cer_against_psnr=plot_cer_against_psnr(comparison),
    )
