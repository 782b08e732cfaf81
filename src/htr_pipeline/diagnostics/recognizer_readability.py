"""Does the run's recognizer read, and does the judge confirm the generator's CER gain?

Two ways a run can look fine and mean nothing: a stage-1 recognizer stuck on the all-blank plateau (val CER 1.0;
runs made before the gate between the stages could train a whole GAN against it), and a generator that learnt to
please the recognizer in its loop, which only a recognizer it never saw (the judge) can tell.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from htr_pipeline.config import DiagnosticsConfig, TrainingConfig
from htr_pipeline.diagnostics.run_inputs import AuditedRun
from htr_pipeline.diagnostics.verdicts import AuditReport, Finding, markdown_table
from htr_pipeline.training.recognizer_training import IN_LOOP_RECOGNIZER, JUDGE_RECOGNIZER

NAME = "recognizer_readability"
TITLE = "Recognizer readability: does the recognizer read, and does the judge confirm the gain?"

RECOGNIZERS_TRAINED = (("recognizer", "the in-loop recognizer (stage 1)"), (JUDGE_RECOGNIZER, "the judge recognizer"))
"""Metric prefix of each recognizer's pre-training, and how the findings name it."""


def recognizer_readability_report(
    metric_history: Mapping[str, list[tuple[int, float]]],
    max_val_cer: float,
    evaluation_summary: Mapping[str, Any] | None,
    judge_gain_margin: float,
) -> AuditReport:
    """Findings on each recognizer's best val CER against ``max_val_cer``, and on the share of the CER gap closed
    as the in-loop recognizer reads it against the judge's (a warning when larger by more than
    ``judge_gain_margin``)."""
    findings, rows = [], []
    for prefix, name in RECOGNIZERS_TRAINED:
        history = metric_history.get(f"{prefix}/val_cer", [])
        best = min((value for _, value in history), default=None)
        rows.append({"recognizer": prefix, "epochs_logged": len(history), "best_val_cer": best})
        findings.append(_reading_finding(name, best, max_val_cer))
    gains = _gains(evaluation_summary)
    findings.append(_gain_finding(gains, judge_gain_margin))
    return AuditReport(
        audit=NAME,
        title=TITLE,
        findings=findings,
        details={"recognizers": rows, "max_val_cer": max_val_cer, "cer_gap_closed": gains},
        markdown_sections=[markdown_table(rows, ["recognizer", "epochs_logged", "best_val_cer"])],
    )


def _reading_finding(name: str, best: float | None, max_val_cer: float) -> Finding:
    if best is None:
        return Finding("warning", f"{name}: no val CER was logged (trained elsewhere, or not at all), not checked")
    if best > max_val_cer:
        return Finding(
            "problem",
            f"{name} does not read: its best val CER is {best:.3f}, above max_val_cer {max_val_cer}. Every CER of "
            "this run, and the CTC term the generator trained with, are meaningless; retrain with more recognizer "
            "epochs or the real-lines preset (`kedro run --env real_lines`).",
        )
    return Finding("ok", f"{name} reads: best val CER {best:.3f} (max_val_cer {max_val_cer})")


def _gains(summary: Mapping[str, Any] | None) -> dict[str, float | None]:
    """Share of the degraded-to-clean corpus CER gap that restoration closes, by recognizer: each recognizer is
    measured against its own degraded and clean readings, so a judge that reads degraded lines better than the
    in-loop recognizer does not look as if it saw a smaller gain. ``None`` where the gap is undefined."""
    if summary is None:
        return {}
    names = (IN_LOOP_RECOGNIZER, JUDGE_RECOGNIZER)
    return {name: summary[name].get("cer_gap_closed") for name in names if name in summary}


def _gain_finding(gains: Mapping[str, float | None], margin: float) -> Finding:
    if not gains:
        return Finding("warning", "the run was never evaluated: run `kedro run --pipeline=evaluation` to compare gains")
    if JUDGE_RECOGNIZER not in gains:
        return Finding(
            "warning",
            "no judge read this run's evaluation (training.judge null, or a checkpoint made before the judge): the "
            "CER gain was measured only by the recognizer the generator was trained to please",
        )
    in_loop, judge = gains.get(IN_LOOP_RECOGNIZER), gains[JUDGE_RECOGNIZER]
    if in_loop is None or judge is None:
        return Finding(
            "warning", "the share of the CER gap closed is undefined for a recognizer (see the evaluation report)"
        )
    if in_loop - judge > margin:
        return Finding(
            "warning",
            f"restoration closes {in_loop:.3f} of the in-loop recognizer's degraded-to-clean CER gap but only "
            f"{judge:.3f} of the judge's (more than {margin} apart): the generator may be fooling its own "
            "recognizer; report the judge's figure",
        )
    return Finding(
        "ok",
        f"the judge confirms the CER gain: {in_loop:.3f} of the in-loop recognizer's degraded-to-clean gap closed, "
        f"{judge:.3f} of the judge's (margin {margin})",
    )


def audit_recognizer_readability(
    run: AuditedRun, diagnostics: DiagnosticsConfig, training: TrainingConfig
) -> AuditReport:
    """Judged by the project's gate as it is now, whatever the run was trained with: runs made before the gate
    existed logged none, and a run trained with the gate opened is no more readable for it."""
    return recognizer_readability_report(
        run.metric_history,
        training.recognizer_pretraining.max_val_cer,
        run.evaluation_summary,
        diagnostics.judge_gain_margin,
    )
