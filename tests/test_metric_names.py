"""The validation metric names: one list that logging, the config's monitors and model selection share."""

from __future__ import annotations

import subprocess
import sys
import typing

import pytest

from htr_pipeline.metric_names import (
    MONITOR_MODES,
    PAGE_MONITOR,
    PAGE_SCORE,
    VALIDATION_SCORES,
    Monitor,
    validation_metric,
)


def test_validation_metric_names_and_monitor_modes_are_one_list():
    assert [validation_metric(score) for score in VALIDATION_SCORES] == [
        "val/cer",
        "val/wer",
        "val/psnr",
        "val/ssim",
        "val/combined",
    ]
    assert validation_metric("cer", "val_degraded") == "val_degraded/cer"
    assert validation_metric(PAGE_SCORE) == PAGE_MONITOR == "val/page_f_measure"
    assert MONITOR_MODES == {
        "val/cer": "min",
        "val/psnr": "max",
        "val/ssim": "max",
        "val/combined": "max",
        "val/page_f_measure": "max",
    }
    assert typing.get_args(Monitor) == tuple(MONITOR_MODES)
    with pytest.raises(ValueError, match="unknown validation score 'accuracy'"):
        validation_metric("accuracy")


def test_the_config_schema_names_its_monitors_without_importing_the_metric_libraries_or_torch():
    probe = "import sys, htr_pipeline.config; print(sorted({'jiwer', 'skimage', 'scipy', 'torch'} & set(sys.modules)))"
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert imported.strip() == "[]"
