"""The summary: computed only from the per-line table, corpus-level CER, deterministic bootstrap intervals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from htr_pipeline.evaluation.aggregates import summarise
from htr_pipeline.scoring.lines import COLUMNS


def hand_made_table(with_restored: bool = True, with_text: bool = True) -> pd.DataFrame:
    """Three lines of unequal length: 2/4, 1/10 and 6/20 character edits when degraded."""
    references = ["abcd", "abcdefghij", "abcdefghijklmnopqrst"] if with_text else ["", "", ""]
    has_text = [bool(reference) for reference in references]
    char_lengths = [len(reference) for reference in references]
    table = pd.DataFrame(
        {
            "sample_id": ["a", "b", "c"],
            "reference": references,
            "has_text": has_text,
            "width": [64, 160, 320],
            "reading_degraded": ["abxx", "abcdefghiz", "abcdefghijklmn"],
            "reading_restored": ["abcx", "abcdefghij", "abcdefghijklmnopq"] if with_restored else [None] * 3,
            "reading_clean": ["abcd", "abcdefghij", "abcdefghijklmnopqrs"],
            "char_edits_degraded": [2, 1, 6],
            "char_edits_restored": [1, 0, 3] if with_restored else [pd.NA] * 3,
            "char_edits_clean": [0, 0, 1],
            "word_edits_degraded": [1, 1, 1],
            "word_edits_restored": [1, 0, 1] if with_restored else [pd.NA] * 3,
            "word_edits_clean": [0, 0, 1],
            "char_reference_length": char_lengths,
            "word_reference_length": [1, 1, 1] if with_text else [0, 0, 0],
            "psnr_db_degraded": [20.0, 22.0, 18.0],
            "psnr_db_restored": [25.0, 26.0, 21.0] if with_restored else [np.nan] * 3,
            "ssim_degraded": [0.80, 0.85, 0.70],
            "ssim_restored": [0.90, 0.91, 0.80] if with_restored else [np.nan] * 3,
        }
    )
    for variant in ("degraded", "restored", "clean"):
        for unit in ("char", "word"):
            table[f"{unit}_edits_{variant}"] = table[f"{unit}_edits_{variant}"].astype("Int64")
            if not with_text:
                table[f"{unit}_edits_{variant}"] = pd.array([pd.NA] * 3, dtype="Int64")
        lengths = table["char_reference_length"]
        table[f"cer_{variant}"] = (table[f"char_edits_{variant}"] / lengths.where(lengths > 0)).astype("float64")
        word_lengths = table["word_reference_length"]
        table[f"wer_{variant}"] = (table[f"word_edits_{variant}"] / word_lengths.where(word_lengths > 0)).astype(
            "float64"
        )
    return table[COLUMNS]


def test_corpus_cer_is_total_edits_over_total_reference_length():
    summary = summarise(hand_made_table(), resamples=100, seed=0)
    assert summary["cer_corpus_degraded"] == pytest.approx((2 + 1 + 6) / (4 + 10 + 20))
    assert summary["cer_corpus_restored"] == pytest.approx((1 + 0 + 3) / 34)
    assert summary["cer_corpus_clean"] == pytest.approx(1 / 34)
    assert summary["cer_mean_per_line_degraded"] == pytest.approx((2 / 4 + 1 / 10 + 6 / 20) / 3)
    assert summary["wer_corpus_degraded"] == pytest.approx(1.0)
    assert (summary["lines"], summary["lines_with_text"]) == (3, 3)


def test_gains_and_gap_closed():
    summary = summarise(hand_made_table(), resamples=100, seed=0)
    assert summary["psnr_gain_db"]["estimate"] == pytest.approx(4.0)
    assert summary["ssim_gain"]["estimate"] == pytest.approx((0.10 + 0.06 + 0.10) / 3)
    assert summary["cer_reduction"]["estimate"] == pytest.approx(9 / 34 - 4 / 34)
    assert summary["cer_gap_closed"] == pytest.approx((9 - 4) / (9 - 1))
    assert summary["cer_gap_closed_note"] is None
    assert summary["psnr_db_mean_restored"] == pytest.approx(24.0)


def forty_lines(seed: int = 0) -> pd.DataFrame:
    """The hand-made lines repeated, with varied image scores, so bootstrap intervals are not degenerate."""
    rng = np.random.default_rng(seed)
    table = pd.concat([hand_made_table()] * 14, ignore_index=True).iloc[:40].copy()
    table["sample_id"] = [f"line_{index}" for index in range(len(table))]
    table["psnr_db_degraded"] = rng.uniform(15.0, 25.0, len(table))
    table["psnr_db_restored"] = table["psnr_db_degraded"] + rng.normal(3.0, 2.0, len(table))
    return table


def test_bootstrap_is_deterministic_for_a_seed_and_its_interval_holds_the_estimate():
    table = forty_lines()
    first, again = summarise(table, resamples=300, seed=11), summarise(table, resamples=300, seed=11)
    assert first == again
    assert summarise(table, resamples=300, seed=12)["psnr_gain_db"] != first["psnr_gain_db"]
    for gain in ("psnr_gain_db", "ssim_gain", "cer_reduction"):
        interval = first[gain]
        assert interval["ci_low"] <= interval["estimate"] <= interval["ci_high"], gain


def test_cer_reduction_is_resampled_as_a_corpus_ratio():
    # One resample, seed fixed: recompute its corpus ratio by hand from the same draw.
    table = hand_made_table()
    summary = summarise(table, resamples=1, seed=3, confidence=0.5)
    rng = np.random.default_rng(3)
    rng.integers(0, 3, size=(1, 3))  # the image-gain draw comes first
    lines = rng.integers(0, 3, size=(1, 3))[0]
    lengths = table["char_reference_length"].to_numpy()[lines].sum()
    degraded = table["char_edits_degraded"].to_numpy(dtype=int)[lines].sum() / lengths
    restored = table["char_edits_restored"].to_numpy(dtype=int)[lines].sum() / lengths
    assert summary["cer_reduction"]["ci_low"] == pytest.approx(degraded - restored)


def test_gap_closed_is_null_with_a_note_when_degraded_reads_no_worse_than_clean():
    table = hand_made_table()
    table["char_edits_clean"] = table["char_edits_degraded"]
    summary = summarise(table, resamples=50, seed=0)
    assert summary["cer_gap_closed"] is None
    assert "no gap to close" in summary["cer_gap_closed_note"]


def test_a_table_without_text_has_null_text_metrics():
    summary = summarise(hand_made_table(with_text=False), resamples=50, seed=0)
    assert summary["lines_with_text"] == 0
    for variant in ("degraded", "restored", "clean"):
        for name in ("cer_corpus", "cer_mean_per_line", "wer_corpus", "wer_mean_per_line"):
            assert summary[f"{name}_{variant}"] is None
    assert summary["cer_reduction"] is None and summary["cer_gap_closed"] is None
    assert summary["cer_gap_closed_note"]
    assert summary["psnr_gain_db"]["estimate"] == pytest.approx(4.0)


def test_a_recognizer_only_table_has_null_restored_metrics():
    summary = summarise(hand_made_table(with_restored=False), resamples=50, seed=0)
    assert summary["generator_evaluated"] is False
    assert summary["cer_corpus_restored"] is None and summary["psnr_db_mean_restored"] is None
    assert summary["psnr_gain_db"] is None and summary["cer_reduction"] is None and summary["cer_gap_closed"] is None
    assert summary["cer_corpus_clean"] == pytest.approx(1 / 34)


@pytest.mark.parametrize("with_restored", [True, False])
def test_summary_holds_only_plain_json_types(with_restored: bool):
    summary = summarise(hand_made_table(with_restored=with_restored), resamples=50, seed=0)
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="empty"):
        summarise(hand_made_table().iloc[:0], resamples=10, seed=0)
    with pytest.raises(ValueError, match="resamples"):
        summarise(hand_made_table(), resamples=0, seed=0)
