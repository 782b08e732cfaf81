"""The recognizer-readability audit: a recognizer that never read, and an in-loop gain the judge does not see."""

from __future__ import annotations

from htr_pipeline.diagnostics.recognizer_readability import recognizer_readability_report

PLATEAU = [(epoch, 1.0) for epoch in range(1, 6)]
"""The issue's real run before the gate: val CER 1.000 at every epoch of stage 1."""
READING = [(1, 1.0), (2, 0.6), (3, 0.21)]


def _summary(in_loop_gap_closed: float, judge_gap_closed: float | None) -> dict:
    summary = {"in_loop": {"cer_gap_closed": in_loop_gap_closed}}
    if judge_gap_closed is not None:
        summary["judge"] = {"cer_gap_closed": judge_gap_closed}
    return summary


def test_a_run_whose_recognizer_never_read_is_a_problem():
    history = {"recognizer/val_cer": PLATEAU, "judge/val_cer": READING}
    report = recognizer_readability_report(history, 0.5, _summary(0.0, 0.0), 0.1)
    assert report.verdict == "problem"
    assert report.findings[0].message.startswith("the in-loop recognizer (stage 1) does not read: its best val CER")
    assert "1.000, above max_val_cer 0.5" in report.findings[0].message
    assert report.findings[1].verdict == "ok" and "0.210" in report.findings[1].message


def test_an_in_loop_gain_the_judge_does_not_confirm_is_a_warning():
    history = {"recognizer/val_cer": READING, "judge/val_cer": READING}
    fooled = recognizer_readability_report(history, 0.5, _summary(0.95, judge_gap_closed=0.40), 0.1)
    assert fooled.verdict == "warning"
    assert (
        "closes 0.950 of the in-loop recognizer's degraded-to-clean CER gap but only 0.400"
        in fooled.findings[-1].message
    )
    # The main job on a fresh clone: the judge reads degraded lines better (0.858 vs 0.907), so its raw CER
    # reduction is smaller (0.548 vs 0.586), yet both see 0.978 of their own gap closed: no fooling.
    confirmed = recognizer_readability_report(history, 0.5, _summary(0.9778, judge_gap_closed=0.9776), 0.1)
    assert confirmed.verdict == "ok" and confirmed.details["cer_gap_closed"] == {"in_loop": 0.9778, "judge": 0.9776}


def test_no_judge_or_no_evaluation_is_said_not_passed():
    history = {"recognizer/val_cer": READING}
    without_judge = recognizer_readability_report(history, 0.5, _summary(0.3, None), 0.1)
    assert without_judge.verdict == "warning"
    assert "no val CER was logged" in without_judge.findings[1].message
    assert "the recognizer the generator was trained to please" in without_judge.findings[-1].message
    unevaluated = recognizer_readability_report(history, 0.5, None, 0.1)
    assert "never evaluated" in unevaluated.findings[-1].message
