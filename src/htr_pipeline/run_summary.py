"""The block of figures a run ends with in the terminal, made from the summaries its pipelines saved.

Plain data in, lines of text out: the Kedro hook (``hooks.RunSummaryHook``) finds the summaries and prints the
lines. Anything that looks like a failure is a ``WARNING`` line, so a model that never learnt cannot finish
quietly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from htr_pipeline.metric_names import PAGE_MONITOR

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
    real_test: Mapping[str, Any] | None = None
    """The held-out real test's summary (``real_test_summary``); ``{"configured": False}`` when not asked for."""
    sweep: Mapping[str, Any] | None = None
    comparison: Mapping[str, Any] | None = None
    outputs: Sequence[tuple[str, str]] = field(default_factory=list)
    """``(dataset name, project-relative path)`` of the outputs a person opens first."""
    mlflow_run_id: str | None = None
    """The run to open: this session's, or the run a resumed training logged its epochs into."""
    session_run_id: str | None = None
    """This session's own run (None: the same as ``mlflow_run_id``, or no tracking)."""
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
    if results.real_test is not None and results.real_test.get("configured"):
        lines += real_test_lines(results.real_test)
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
        continued = results.session_run_id not in (None, results.mlflow_run_id)
        if continued:
            lines.append(
                f"MLflow run {results.mlflow_run_id} holds the resumed epochs (this session's run "
                f"{results.session_run_id} holds its parameters)"
            )
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
    if best_value.get(PAGE_MONITOR) is not None:
        scans = training.get("validation_pages_f_measure_scans")
        parts.append(
            f"val page F-measure {best_value[PAGE_MONITOR]:.2f} (epoch {best_epoch.get(PAGE_MONITOR)})"
            + (f" against {scans:.2f} for the scans" if scans is not None else "")
        )
    stopped = ", stopped early" if training.get("stopped_early") else ""
    epochs = training["epochs_run"]
    return [f"Training: {epochs} epoch{'' if epochs == 1 else 's'}{stopped}; best {'; best '.join(parts)}"]


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
        + (f" -> restored {_number(figures['cer_corpus_restored'])}" if figures["generator_evaluated"] else "")
        + f" (clean {_number(figures['cer_corpus_clean'])})"
    )
    if figures.get("cer_reduction") is not None:
        cer += f"; reduction {_interval(figures['cer_reduction'], 4)}"
    lines.append(cer)
    if figures["generator_evaluated"]:
        lines.append(
            f"  PSNR degraded {_number(figures['psnr_db_mean_degraded'], 2)} dB -> restored "
            f"{_number(figures['psnr_db_mean_restored'], 2)} dB; gain {_interval(figures['psnr_gain_db'], 2)} dB"
        )
    return lines


def real_test_lines(real_test: Mapping[str, Any]) -> list[str]:
    """The held-out real test: pages scored against their ground truth, lines read raw and restored."""
    lines = [f"Real test (no training saw it), {100 * real_test['confidence_level']:g}% intervals:"]
    pages = real_test.get("pages")
    if pages is not None:
        scores = "; ".join(
            f"{name} {pages[key]['degraded']:.2f} -> {pages[key]['restored']:.2f}"
            + (f", gain {_interval(pages[key]['gain'], 2)}" if key == "f_measure" else "")
            for key, name, _ in DIBCO_SCORES
            if key != "pseudo_f_measure"
        )
        lines.append(f"  {pages['pages']} pages, binarised by {pages['binarisation']} alike: {scores}")
    real_lines = real_test.get("lines")
    if real_lines is not None:
        headline = real_lines["headline_recognizer"]
        figures = real_lines[headline]
        lines.append(
            f"  {real_lines['lines']} lines, read by {headline}: CER raw {figures['cer_corpus_raw']:.4f} -> restored "
            f"{figures['cer_corpus_restored']:.4f}; reduction {_interval(figures['cer_reduction'], 4)}"
        )
    return lines


def _validation_page_warnings(training: Mapping[str, Any]) -> list[str]:
    """The valid split's real pages restored worse than their scans, at every epoch: the model harms real pages."""
    best, scans = training["best_value_per_metric"].get(PAGE_MONITOR), training.get("validation_pages_f_measure_scans")
    if best is None or scans is None or best >= scans:
        return []
    return [
        f"restoration makes the valid split's real pages worse at every epoch: best val page F-measure {best:.2f} "
        f"against {scans:.2f} for the scans ({', '.join(training['validation_pages'])}); runs that differ only by "
        "training.gan_seed can differ this much (README: Choosing a model on real pages): train another seed"
    ]


def _real_test_warnings(real_test: Mapping[str, Any]) -> list[str]:
    """Real pages restored worse than they came (by F-measure), real lines not read better once restored."""
    warnings = []
    pages = real_test.get("pages")
    if pages is not None and pages["f_measure"]["gain"]["estimate"] < 0.0:
        f_measure = pages["f_measure"]
        warnings.append(
            f"restored real pages score worse against their ground truth: F-measure {f_measure['degraded']:.2f} -> "
            f"{f_measure['restored']:.2f} ({len(f_measure['pages_worse'])} of {pages['pages']} pages worse)"
        )
    real_lines = real_test.get("lines")
    if real_lines is not None:
        reduction = real_lines[real_lines["headline_recognizer"]]["cer_reduction"]
        if reduction["estimate"] <= 0.0:
            warnings.append(
                f"restored real lines are not read better than raw ones: CER reduction {_interval(reduction, 4)}"
            )
    return warnings


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
    for skipped in inference.get("ground_truth_skipped") or []:
        lines.append(f"  no comparison for {skipped['file']}: {_shortened(skipped['reason'], HEADLINE_CHARS)}")
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
    warnings = []
    if worse:
        warnings.append(f"{WORSE_THAN_INPUT}: {'; '.join(worse)}")
    flagged, lines = inference.get("readings_flagged", 0), inference.get("lines", 0)
    if flagged:
        example = (inference.get("flagged_readings") or [{}])[0]
        warnings.append(
            f"{flagged} of {lines} line readings look like nothing useful (e.g. {example.get('file')}: "
            f"{_shortened(str(example.get('reading')), 30)!r}, {example.get('why')}); the checkpoint's recognizer "
            "does not read these lines: train on yours (README, inference)"
        )
    return warnings


class RunWithoutGainError(Exception):
    """A run that ended without what it was asked for: restored images no better than their input."""


WORSE_THAN_INPUT = "the restored images score worse against the ground truth than the inputs"


def run_failure(results: RunResults, evaluation_expects_gain: bool, inference_expects_gain: bool) -> str | None:
    """The one-line reason a run that ended did not give what it was asked for (a generator that does not beat
    its input, in evaluation or against inference's ground truth), or None. A setting that expects no gain
    (``evaluation.expect_gain``, ``inference.expect_gain``: false) keeps such a run a success with its WARNING."""
    failures = []
    if results.evaluation is not None and evaluation_expects_gain:
        failures += _evaluation_warnings(results.evaluation)
    if results.inference is not None and inference_expects_gain:
        failures += [
            warning for warning in _inference_warnings(results.inference) if warning.startswith(WORSE_THAN_INPUT)
        ]
    if not failures:
        return None
    settings = [
        key
        for key, ran in (("evaluation.expect_gain", results.evaluation), ("inference.expect_gain", results.inference))
        if ran is not None
    ]
    return (
        f"the run ended without a gain over its input: {'; '.join(failures)} (see the WARNING lines above; set "
        f"{' / '.join(settings)}: false for a smoke test or ablation that expects none)"
    )


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
        warnings += _validation_page_warnings(results.training)
    if results.evaluation is not None:
        warnings += _evaluation_warnings(results.evaluation)
    if results.inference is not None:
        warnings += _inference_warnings(results.inference)
    if results.real_test is not None and results.real_test.get("configured"):
        warnings += _real_test_warnings(results.real_test)
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
