"""Validation summarises a per-line table, as evaluation does: corpus CER and WER, mean PSNR and SSIM.

That validation and evaluation score the same lines the same way is shown in tests/evaluation/test_scoring.py."""

from __future__ import annotations

import pytest

from htr_pipeline.metrics import combined_score
from htr_pipeline.training.validation import ValidationMetrics, summarise_validation
from tests.evaluation.test_aggregates import hand_made_table

CER_WEIGHT = 50.0


def test_validation_cer_is_corpus_level_not_the_per_line_mean():
    # Degraded: 2/4, 1/10 and 6/20 character edits: corpus 9/34, per-line mean 0.35.
    validation = summarise_validation(hand_made_table(), "degraded", CER_WEIGHT)
    assert validation.cer == 9 / 34
    assert validation.wer == 3 / 3
    assert validation.psnr_db == pytest.approx(20.0)
    assert validation.combined == combined_score(validation.psnr_db, 9 / 34, CER_WEIGHT)


def test_logged_names_and_monitor_values_come_from_one_list():
    metrics = ValidationMetrics(cer=0.1, wer=0.2, psnr_db=30.0, ssim=0.9, combined=25.0, lines=3)
    assert metrics.as_logged("val") == {
        "val/cer": 0.1,
        "val/wer": 0.2,
        "val/psnr": 30.0,
        "val/ssim": 0.9,
        "val/combined": 25.0,
    }
    assert list(metrics.as_logged("val_degraded")) == [
        "val_degraded/cer",
        "val_degraded/wer",
        "val_degraded/psnr",
        "val_degraded/ssim",
        "val_degraded/combined",
    ]
    assert metrics.value_of("val/psnr") == 30.0
