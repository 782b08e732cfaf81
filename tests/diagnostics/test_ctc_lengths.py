import io
import math

import numpy as np
import pandas as pd
import pytest

from htr_pipeline.diagnostics.ctc_lengths import ctc_length_report, ctc_length_summary, plot_ctc_lengths
from htr_pipeline.diagnostics.recognizer_readings import LineReading


def _manifest(rows: list[tuple[str, int, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"sample_id": sid, "split": "train", "width": width, "transcription": text} for sid, width, text in rows]
    )


def _reading(sample_id: str, label_length: int, loss_nats: float, blank_share: float) -> LineReading:
    return LineReading(
        sample_id,
        "x" * label_length,
        4 * label_length,
        label_length,
        loss_nats,
        blank_share,
        np.zeros((4 * label_length, 5), dtype=np.float32),
    )


def test_lines_too_long_for_their_width_are_counted_with_the_width_and_factor_that_fit():
    # width_downsampling 4: T = ceil(width / 4).
    manifest = _manifest(
        [
            ("too_long", 40, "abcdefghijkl"),  # T 10 < L 12 + R 0
            ("repeats", 16, "aabb"),  # T 4 < L 4 + R 2
            ("fits", 100, "abcdefghijklmnopqrst"),  # T 25 >= L 20
            ("no_text", 40, None),  # not counted
        ]
    )
    summary = ctc_length_summary(manifest, width_downsampling=4)
    assert summary["samples_with_text"] == 3
    assert summary["infeasible_count"] == 2 and summary["infeasible_samples"] == ["too_long", "repeats"]
    assert summary["infeasible_share"] == 2 / 3
    assert summary["infeasible_by_split"] == {"train": 2}
    assert summary["min_slack"] == -2  # "too_long": 10 - 12; "repeats": 4 - 6
    # The longest need is 20 steps ("fits"): 80 px at factor 4. Factor 2 fits all: T = 20, 8, 50 >= 12, 6, 20.
    assert summary["width_px_for_every_label"] == 80
    assert summary["largest_feasible_downsampling"] == 2

    report = ctc_length_report(manifest, 4, drop_infeasible=False, readings=None, num_classes=30, logged_train_ctc=None)
    assert report.verdict == "problem"
    assert "2 labels (66.7%" in report.findings[0].message and "80 px" in report.findings[0].message
    dropped = ctc_length_report(manifest, 4, drop_infeasible=True, readings=None, num_classes=30, logged_train_ctc=None)
    assert dropped.verdict == "warning"


def test_all_feasible_with_a_reading_recognizer_is_ok_and_the_plot_renders():
    manifest = _manifest([("a", 64, "abc"), ("b", 128, "abcd")])
    readings = [_reading("a", 3, 0.6, 0.7), _reading("b", 4, 0.4, 0.6)]
    report = ctc_length_report(manifest, 4, False, readings, num_classes=30, logged_train_ctc=0.2)
    assert report.verdict == "ok", report.to_markdown()
    assert report.details["recognizer"]["mean_loss_per_character_nats"] == pytest.approx((0.2 + 0.1) / 2)
    assert report.details["recognizer"]["chance_loss_per_character_nats"] == pytest.approx(math.log(30))
    buffer = io.BytesIO()
    plot_ctc_lengths(manifest, 4, readings).savefig(buffer, format="png")
    assert buffer.getbuffer().nbytes > 1000


def test_a_summed_logged_loss_and_a_blank_collapse_are_reported():
    manifest = _manifest([(f"l{i}", 400, "x" * 40) for i in range(4)])
    # The previous system's shape: ~629 nats logged per sample for 40-character labels, a recognizer that emits
    # only blanks.
    readings = [_reading(f"l{i}", 40, 629.0, 1.0) for i in range(4)]
    report = ctc_length_report(manifest, 4, False, readings, num_classes=109, logged_train_ctc=629.0)
    messages = " ".join(finding.message for finding in report.findings)
    assert report.verdict == "problem"
    assert "4 of 4 clean lines read as nothing but blanks" in messages
    assert "15.7 nats per character, above the 4.69" in messages  # 629 / 40 > ln(109)
    assert "40.0 x the 15.7 nats per character" in messages
