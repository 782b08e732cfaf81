"""The recognizer-readability audit: a recognizer that never read, and an in-loop gain the judge does not see."""

from __future__ import annotations

from htr_pipeline.diagnostics.recognizer_readability import recognizer_readability_report

PLATEAU = [(epoch, 1.0) for epoch in range(1, 6)]
"""The issue's real run before the gate: val CER 1.000 at every epoch of stage 1."""
READING = [(1, 1.0), (2, 0.6), (3, 0.21)]


def _summary(in_loop_gain: float, judge_gain: float | None) -> dict:
    summary = {"in_loop": {"cer_reduction": {"estimate": in_loop_gain, "ci_low": 0.0, "ci_high": 0.0}}}
    if judge_gain is not None:
        summary["judge"] = {"cer_reduction": {"estimate": judge_gain, "ci_low": 0.0, "ci_high": 0.0}}
    return summary


def test_a_run_whose_recognizer_never_read_is_a_problem():
    history = {"recognizer/val_cer": PLATEAU, "judge/val_cer": READING}
    report = recognizer_readability_report(history, 0.5, _summary(0.0, 0.0), 0.02)
    assert report.verdict == "problem"
    assert report.findings[0].message.startswith("the in-loop recognizer (stage 1) does not read: its best val CER")
    assert "1.000, above max_val_cer 0.5" in report.findings[0].message
    assert report.findings[1].verdict == "ok" and "0.210" in report.findings[1].message


def test_an_in_loop_gain_the_judge_does_not_confirm_is_a_warning():
    history = {"recognizer/val_cer": READING, "judge/val_cer": READING}
    fooled = recognizer_readability_report(history, 0.5, _summary(in_loop_gain=0.30, judge_gain=0.05), 0.02)
    assert fooled.verdict == "warning"
    assert "exceeds the judge's (0.0500) by more than 0.02" in fooled.findings[-1].message
    confirmed = recognizer_readability_report(history, 0.5, _summary(in_loop_gain=0.30, judge_gain=0.29), 0.02)
    assert confirmed.verdict == "ok" and confirmed.details["cer_gains"] == {"in_loop": 0.30, "judge": 0.29}


def test_no_judge_or_no_evaluation_is_said_not_passed():
    history = {"recognizer/val_cer": READING}
    without_judge = recognizer_readability_report(history, 0.5, _summary(0.3, None), 0.02)
    assert without_judge.verdict == "warning"
    assert "no val CER was logged" in without_judge.findings[1].message
    assert "the recognizer the generator was trained to please" in without_judge.findings[-1].message
    unevaluated = recognizer_readability_report(history, 0.5, None, 0.02)
    assert "never evaluated" in unevaluated.findings[-1].message
