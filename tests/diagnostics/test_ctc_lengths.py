import io

import pandas as pd

from htr_pipeline.diagnostics.ctc_lengths import ctc_length_summary, plot_ctc_lengths


def _manifest(rows: list[tuple[str, int, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"sample_id": sid, "split": "train", "width": width, "transcription": text} for sid, width, text in rows]
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
    assert summary["min_slack"] == -2  # "too_long": 10 - 12; "repeats": 4 - 6
    # The longest need is 20 steps ("fits"): 80 px at factor 4. Factor 2 fits all: T = 20, 8, 50 >= 12, 6, 20.
    assert summary["width_px_for_every_label"] == 80
    assert summary["largest_feasible_downsampling"] == 2
    assert summary["verdict"] == "problem"


def test_all_feasible_is_ok_and_the_plot_renders():
    manifest = _manifest([("a", 64, "abc"), ("b", 128, "abcd")])
    assert ctc_length_summary(manifest, 4)["verdict"] == "ok"
    buffer = io.BytesIO()
    plot_ctc_lengths(manifest, 4).savefig(buffer, format="png")
    assert buffer.getbuffer().nbytes > 1000
