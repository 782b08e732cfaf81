"""The block of figures a run ends with in the terminal, made from the summaries its pipelines saved.

Plain data in, lines of text out: the Kedro hook (``hooks.RunSummaryHook``) finds the summaries and prints the
lines. Anything that looks like a failure is a ``WARNING`` line, so a model that never learnt cannot finish
quietly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

NOTHING_READ_CER = 0.9
"""A corpus CER at or above this on clean lines means the recognizer reads (almost) nothing."""

RULE = "=" * 78
HEADLINE_CHARS = 90
"""An audit's first finding is cut to this length in the block (its report has it in full)."""


@dataclass(frozen=True)
class RunResults:
    """What the pipelines of one run saved (None for a pipeline that did not run) and where things are."""

    data: Mapping[str, Any] | None = None
    training: Mapping[str, Any] | None = None
    evaluation: Mapping[str, Any] | None = None
    diagnostics: Mapping[str, Any] | None = None
    inference: Mapping[str, Any] | None = None
    sweep: Mapping[str, Any] | None = None
    comparison: Mapping[str, Any] | None = None
    outputs: Sequence[tuple[str, str]] = field(default_factory=list)
    """``(dataset name, project-relative path)`` of the outputs a person opens first."""
    mlflow_run_id: str | None = None
    mlflow_ui_command: str | None = None
    mlflow_run_url: str | None = None
    """The run's page in that UI, opened on its model-training view."""


def run_summary_lines(results: RunResults) -> list[str]:
    """The closing block: figures per pipeline that ran, warnings, outputs, and the MLflow run to open."""
    lines = [RULE, "Run summary", RULE]
    if results.data is not None:
        lines += data_lines(results.data)
    if results.training is not None:
        lines += training_lines(results.training)
    if results.evaluation is not None:
        lines += evaluation_lines(results.evaluation)
    if results.diagnostics is not None:
        lines += diagnostics_lines(results.diagnostics)
    if results.inference is not None:
        lines += inference_lines(results.inference)
    if results.sweep is not None:
        lines += sweep_lines(results.sweep)
    if results.comparison is not None:
        lines += comparison_lines(results.comparison)
    warnings = failure_warnings(results)
    lines += [f"WARNING: {warning}" for warning in warnings]
    if results.outputs:
        lines.append("Outputs (relative to the project folder):")
        lines += [f"  {name:<28} {path}" for name, path in results.outputs]
    if results.mlflow_run_id is not None:
        lines.append(f"MLflow run {results.mlflow_run_id}: start the UI with `{results.mlflow_ui_command}`")
        if results.mlflow_run_url is not None:
            lines.append(f"  then open {results.mlflow_run_url}")
    lines.append(RULE)
    return lines


def mlflow_run_url(host: str, port: str | int, experiment_id: str, run_id: str) -> str:
    """The run's page; ``workflowType=machine_learning`` because MLflow 3's UI opens every experiment on its
    GenAI (traces) view otherwise, whatever the experiment's ``mlflow.experimentKind`` tag says."""
    return f"http://{host}:{port}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"


def data_lines(report: Mapping[str, Any]) -> list[str]:
    splits = " / ".join(f"{count} {split}" for split, count in sorted(report["samples_per_split"].items()))
    rejected = f"{report['rejects']} rejected, charset {report['charset_size']}"
    return [f"Data: {report['samples']} lines ({splits}), {rejected}"]


def training_lines(training: Mapping[str, Any]) -> list[str]:
    best_value = training["best_value_per_metric"]
    best_epoch = training["best_epoch_per_metric"]
    parts = [
        f"{label} {_number(best_value.get(metric), digits)}{unit} (epoch {best_epoch.get(metric)})"
        for metric, label, digits, unit in (("val/cer", "val CER", 4, ""), ("val/psnr", "val PSNR", 2, " dB"))
        if metric in best_value
    ]
    stopped = ", stopped early" if training.get("stopped_early") else ""
    return [f"Training: {training['epochs_run']} epochs{stopped}; best {'; best '.join(parts)}"]


def evaluation_lines(evaluation: Mapping[str, Any]) -> list[str]:
    headline = evaluation["headline_recognizer"]
    figures = evaluation[headline]
    confidence = f"{100 * figures['confidence_level']:g}%"
    lines = [
        f"Evaluation on {evaluation.get('split', 'the split')} ({figures['lines']} lines), read by {headline}, "
        f"{confidence} intervals:"
    ]
    cer = (
        f"  CER degraded {_number(figures['cer_corpus_degraded'])}"
        + (f" -> restored {_number(figures['cer_corpus_enhanced'])}" if figures["generator_evaluated"] else "")
        + f" (clean {_number(figures['cer_corpus_clean'])})"
    )
    if figures.get("cer_reduction") is not None:
        cer += f"; reduction {_interval(figures['cer_reduction'], 4)}"
    lines.append(cer)
    if figures["generator_evaluated"]:
        lines.append(
            f"  PSNR degraded {_number(figures['psnr_db_mean_degraded'], 2)} dB -> restored "
            f"{_number(figures['psnr_db_mean_enhanced'], 2)} dB; gain {_interval(figures['psnr_gain_db'], 2)} dB"
        )
    return lines


def diagnostics_lines(diagnostics: Mapping[str, Any]) -> list[str]:
    lines = [f"Diagnostics of run {diagnostics['run_id']}: overall {diagnostics['verdict']}"]
    width = max((len(row["audit"]) for row in diagnostics["audits"]), default=0)
    for row in diagnostics["audits"]:
        finding = "" if row["verdict"] == "ok" else f"  {_shortened(row['headline'], HEADLINE_CHARS)}"
        lines.append(f"  {row['audit']:<{width}}  {row['verdict']:<7}{finding}".rstrip())
    return lines


DIBCO_SCORES = (
    ("f_measure", "F-measure", "higher"),
    ("pseudo_f_measure", "pseudo F-measure", "higher"),
    ("psnr_db", "PSNR (dB)", "higher"),
    ("drd", "DRD", "lower"),
)
"""The DIBCO scores inference reports against ground truth: key suffix, name, and which way is better."""


def inference_lines(inference: Mapping[str, Any]) -> list[str]:
    counts = {key: value for key, value in inference.items() if isinstance(value, int) and not isinstance(value, bool)}
    described = ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in counts.items())
    lines = [f"Inference: {described}" if described else "Inference: done"]
    scores = inference.get("mean_scores") or {}
    for key, name, _ in DIBCO_SCORES:
        if f"restored_{key}" in scores and f"degraded_{key}" in scores:
            lines.append(
                f"  {name:<17} input {scores[f'degraded_{key}']:.2f} -> restored {scores[f'restored_{key}']:.2f} "
                "(mean over images with ground truth)"
            )
    return lines


def _inference_warnings(inference: Mapping[str, Any]) -> list[str]:
    """Restored images that score worse against ground truth than the inputs did, score by score."""
    scores = inference.get("mean_scores") or {}
    worse = []
    for key, name, better in DIBCO_SCORES:
        restored, degraded = scores.get(f"restored_{key}"), scores.get(f"degraded_{key}")
        if restored is None or degraded is None:
            continue
        if (restored < degraded) if better == "higher" else (restored > degraded):
            worse.append(f"{name} {degraded:.2f} -> {restored:.2f}")
    if not worse:
        return []
    return [f"the restored images score worse against the ground truth than the inputs: {'; '.join(worse)}"]


def failure_warnings(results: RunResults) -> list[str]:
    """Each sign that the model failed, in words: a recognizer reading nothing, no gain over the input (in
    evaluation, or against inference's ground truth), a problem verdict."""
    warnings: list[str] = []
    if results.training is not None:
        best_cer = results.training["best_value_per_metric"].get("val/cer")
        if best_cer is not None and best_cer >= NOTHING_READ_CER:
            warnings.append(
                f"the recognizer reads (almost) nothing on restored validation lines: best val CER {best_cer:.4f}"
            )
    if results.evaluation is not None:
        warnings += _evaluation_warnings(results.evaluation)
    if results.inference is not None:
        warnings += _inference_warnings(results.inference)
    if results.diagnostics is not None:
        warnings += [
            f"diagnostics: {row['audit']} is a problem: {row['headline']}"
            for row in results.diagnostics["audits"]
            if row["verdict"] == "problem"
        ]
    if results.sweep is not None:
        warnings += _sweep_warnings(results.sweep)
    if results.comparison is not None:
        warnings += [
            f"not paired with the baseline: {run['unpaired']}" for run in results.comparison["runs"] if run["unpaired"]
        ]
    return warnings


def _evaluation_warnings(evaluation: Mapping[str, Any]) -> list[str]:
    headline = evaluation["headline_recognizer"]
    figures = evaluation[headline]
    warnings = []
    clean_cer = figures.get("cer_corpus_clean")
    if clean_cer is not None and clean_cer >= NOTHING_READ_CER:
        warnings.append(f"the {headline} recognizer reads (almost) nothing even on clean lines: CER {clean_cer:.4f}")
    if figures["generator_evaluated"]:
        reduction = figures.get("cer_reduction")
        if reduction is not None and reduction["estimate"] <= 0.0:
            warnings.append(
                f"restored lines are not read better than degraded ones: CER reduction {_interval(reduction, 4)}"
            )
        gain = figures.get("psnr_gain_db")
        if gain is not None and gain["estimate"] <= 0.0:
            warnings.append(f"restored images are not closer to the clean ones: PSNR gain {_interval(gain, 2)} dB")
    return warnings


EXCLUDES_ZERO_MARK = "†"
"""Marks a difference whose interval excludes 0, in every table of a comparison."""
COMPARISON_ROWS = 12
"""Runs of a comparison listed in the block (the report has them all)."""


def comparison_lines(comparison: Mapping[str, Any], limit: int = COMPARISON_ROWS) -> list[str]:
    """Each run's restored CER and PSNR with its paired difference to the baseline."""
    percent = f"{100 * comparison['confidence_level']:g}%"
    lines = [
        f"Comparison on {comparison['split']} ({comparison['lines']} lines, read by "
        f"{comparison['headline_recognizer']}) against {comparison['baseline']}; {percent} paired intervals, "
        f"{EXCLUDES_ZERO_MARK} excludes 0:"
    ]
    shown = comparison["runs"][:limit]
    width = max(len(run["label"]) for run in shown)
    for run in shown:
        cells = [
            _compared_figure(run, "cer_restored", "CER", 4, ""),
            _compared_figure(run, "psnr_db_restored", "PSNR", 2, " dB"),
        ]
        lines.append(f"  {run['label']:<{width}}  " + "; ".join(cells))
    if len(comparison["runs"]) > limit:
        lines.append(f"  ... {len(comparison['runs']) - limit} more runs in comparison_report")
    return lines


def _compared_figure(run: Mapping[str, Any], name: str, label: str, digits: int, unit: str) -> str:
    value = run["figures"].get(name)
    text = f"{label} {_number(None if value is None else value['estimate'], digits)}{unit}"
    difference = run["differences"].get(name)
    if run["baseline"]:
        return f"{text} (baseline)"
    if run["unpaired"]:
        return f"{text} (not paired)"
    if difference is None:
        return text
    mark = f" {EXCLUDES_ZERO_MARK}" if difference["excludes_zero"] else ""
    return f"{text} Δ {_signed_interval(difference, digits)}{mark}"


def _signed_interval(interval: Mapping[str, float], digits: int) -> str:
    return f"{interval['estimate']:+.{digits}f} [{interval['ci_low']:+.{digits}f}, {interval['ci_high']:+.{digits}f}]"


def sweep_lines(sweep: Mapping[str, Any]) -> list[str]:
    """The study as this worker left it: trials by state, what this worker ran and how long it took, the best."""
    counts = sweep["counts"]
    states = ", ".join(
        f"{counts[state]} {word}"
        for state, word in (
            ("COMPLETE", "complete"),
            ("PRUNED", "pruned"),
            ("FAIL", "failed (retried up to sweep.max_retries)"),
            ("RUNNING", "running in other workers"),
            ("WAITING", "waiting"),
        )
        if counts.get(state)
    )
    minutes = sweep["seconds"] / 60
    lines = [
        f"Sweep '{sweep['study_name']}' ({sweep['sampler']}, objective {sweep['objective']} on "
        f"{sweep['objective_split']}, seeds {', '.join(map(str, sweep['seeds']))}): {states}",
        f"  this worker ran {len(sweep['trials_run_here'])} trials in {minutes:.1f} min and trained stage 1 "
        f"{sweep['stage_one_trainings']} time{'s' if sweep['stage_one_trainings'] != 1 else ''}; study in "
        f"{sweep['storage']}",
    ]
    lines += [f"  best: {line}" for line in sweep.get("best", [])]
    return lines


def _sweep_warnings(sweep: Mapping[str, Any]) -> list[str]:
    warnings = [
        f"sweep: {row['label']} (seed {row['seed']}) never finished: {row['failures']} failed trials, no retry left"
        for row in sweep.get("failed_configurations", [])
    ]
    if not sweep["counts"].get("COMPLETE"):
        warnings.append("sweep: no trial completed, so there is nothing to compare")
    return warnings


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _interval(gain: Mapping[str, float], digits: int) -> str:
    return f"{gain['estimate']:.{digits}f} [{gain['ci_low']:.{digits}f}, {gain['ci_high']:.{digits}f}]"
